"""The HTTP API on tiny runs of every kind, through FastAPI's TestClient: the answers equal the predictors',
and each limit, the API key, malformed JSON, wrong content types, an image bomb and a 10 MB body get a clear
JSON error with the right status."""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nanofm.serve.app import create_app
from nanofm.serve.limits import Limits
from nanofm.serve.models import load_served
from nanofm.serve.page import PAGE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def served(tiny_runs):
    return load_served([str(tiny_runs[k]) for k in ("fill", "translate", "classify", "tag", "vit", "t2i")], device="cpu")


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(served, Limits(max_chars=300, max_masks=3, max_items=4, max_steps=8, max_images=2))) as c:
        yield c


def _png(size=(28, 28), value=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _error(r, status: int, field: str) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status and error["field"] == field, error
    return error["message"]


# ---------------------------------------------------------------- answers equal the predictors'


def test_fill_mask_equals_the_predictor_alone_and_in_a_padded_batch(client, served):
    # the bug it catches: the batched forward pass letting padding into attention (a short text's answer
    # changed by a longer one beside it), or masks read at the wrong positions
    fill = served["mlm"].predictor
    texts = ["El niño [MASK] pan.", "La niña lee un [MASK] y mi madre [MASK] la carta."]
    r = client.post("/models/mlm/fill-mask", json={"text": texts, "top_k": 3})
    assert r.status_code == 200, r.text
    for text, got in zip(texts, r.json()["results"]):
        want = fill(text, 3)
        assert [[c["token"] for c in mask] for mask in got["masks"]] == [[t for t, _ in mask] for mask in want]
        assert np.allclose([[c["probability"] for c in m] for m in got["masks"]], [[p for _, p in m] for m in want], atol=1e-5)
    one = client.post("/models/mlm/fill-mask", json={"text": texts[0], "top_k": 3}).json()  # one text: one result
    assert [c["token"] for c in one["masks"][0]] == [t for t, _ in fill(texts[0], 3)[0]]


def test_translate_equals_the_predictor_with_its_attention(client, served):
    # the bug it catches: a batch mixing up its sentences, or an attention matrix of the wrong shape or tokens
    tr = served["translate"].predictor
    r = client.post("/models/translate/translate", json={"text": ["Soy estudiante.", "El gato duerme."], "beam": 2,
                                                          "attention": True})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    assert [g["translation"] for g in got] == tr(["Soy estudiante.", "El gato duerme."], beam=2)
    src, tgt, maps = tr.attention("Soy estudiante.", got[0]["translation"])
    att = got[0]["attention"]
    assert att["source"] == src and att["target"] == tgt
    assert np.allclose(att["weights"], maps[-1].mean(0).numpy(), atol=1e-5) and np.allclose(np.sum(att["weights"], 1), 1, atol=1e-4)
    plain = client.post("/models/translate/translate", json={"text": "Soy estudiante.", "beam": 2}).json()
    assert plain == {"translation": got[0]["translation"]}  # no attention unless asked


def test_classify_and_tag_equal_the_predictors(client, served):
    # the bug it catches: labels paired with the wrong probabilities, or tags shifted off their words
    text = "El niño come pan."
    got = client.post("/models/classify/classify", json={"text": text, "top_k": 2}).json()["labels"]
    assert [(g["label"], pytest.approx(g["probability"], abs=1e-5)) for g in got] == served["classify"].predictor(text, 2)
    got = client.post("/models/tag/tag", json={"text": text}).json()
    assert [(t["word"], t["tag"]) for t in got["tokens"]] == served["tag"].predictor(text)
    assert [(e["text"], e["type"]) for e in got["entities"]] == served["tag"].predictor.entities(text)


def test_image_classification_equals_the_predictor(client, served):
    # the bug it catches: an upload decoded differently from the predictor's reading (channels, size)
    files = [("files", ("a.png", _png((28, 28), 200), "image/png")), ("files", ("b.png", _png((56, 40), 30), "image/png"))]
    r = client.post("/models/vit/classify-image", files=files, data={"top_k": "2"})
    assert r.status_code == 200, r.text
    want = served["vit"].predictor([Image.open(io.BytesIO(f[1][1])) for f in files], 2)
    for got, w in zip(r.json()["results"], want):
        assert [(g["label"], pytest.approx(g["probability"], abs=1e-5)) for g in got["labels"]] == w


def test_generate_is_a_png_repeatable_by_seed(client, served):
    # the bug it catches: the seed ignored (a different image each time) or the PNG not the predictor's images
    body = {"caption": "un vestido rojo", "n": 2, "steps": 3, "guidance": 2.0, "seed": 7}
    a, b = (client.post("/models/unclip/generate", json=body) for _ in range(2))
    assert a.status_code == 200 and a.headers["content-type"] == "image/png" and a.content == b.content
    pixels = np.asarray(Image.open(io.BytesIO(a.content)))
    want = served["unclip"].predictor(["un vestido rojo"] * 2, steps=3, guidance=2.0, seed=7)  # (2, C, H, W)
    h, w = want.shape[-2:]
    assert pixels.shape[:2] == (h, 2 * w)
    assert np.abs(pixels[:, w:].astype(int) - (want[1].permute(1, 2, 0).squeeze(-1).numpy() * 255).round()).max() <= 1
    other = client.post("/models/unclip/generate", json={**body, "seed": 8})
    assert other.content != a.content


# ---------------------------------------------------------------- limits and bad input


@pytest.mark.parametrize("path, body, field, words", [
    ("/models/mlm/fill-mask", {"text": "[MASK] " + "a" * 300}, "text", "characters"),
    ("/models/mlm/fill-mask", {"text": "El [MASK] " + "niño " * 40}, "text", "tokens"),  # 32 tokens the model's length
    ("/models/mlm/fill-mask", {"text": "[MASK] [MASK] [MASK] [MASK]"}, "text", "--max-masks"),
    ("/models/mlm/fill-mask", {"text": "Sin máscara."}, "text", "no [MASK]"),
    ("/models/mlm/fill-mask", {"text": ["[MASK]."] * 5}, "text", "--max-items"),
    ("/models/mlm/fill-mask", {"text": ["[MASK].", "x" * 301]}, "text[1]", "characters"),
    ("/models/mlm/fill-mask", {"text": "[MASK]", "top_k": 0}, "top_k", "greater than or equal"),
    ("/models/mlm/fill-mask", {"text": "[MASK]", "k": 3}, "k", "Extra inputs"),
    ("/models/translate/translate", {"text": "   "}, "text", "empty"),
    ("/models/translate/translate", {"text": 5}, "text", "valid"),
    ("/models/unclip/generate", {"caption": "un bolso", "steps": 9}, "steps", "--max-steps"),
    ("/models/unclip/generate", {"caption": "un bolso", "n": 3, "steps": 2}, "n", "--max-images"),
])
def test_each_limit_is_a_422_naming_the_field(client, path, body, field, words):
    # the bug it catches: an over-long or malformed input reaching the model (a crash, a silent truncation,
    # minutes of work) instead of a clear error naming what to fix
    assert words in _error(client.post(path, json=body), 422, field)


def test_malformed_json_and_wrong_content_types(client):
    # the bug it catches: a 500 (or a misleading 422) for a body the server cannot read
    r = client.post("/models/mlm/fill-mask", content=b'{"text": "[MASK]"', headers={"content-type": "application/json"})
    assert "malformed JSON" in _error(r, 400, "body")
    r = client.post("/models/mlm/fill-mask", content=b"[MASK]", headers={"content-type": "text/plain"})
    assert "application/json" in _error(r, 415, "content-type")
    assert "multipart/form-data" in _error(client.post("/models/vit/classify-image", json={"files": []}), 415, "content-type")
    assert _error(client.post("/models/nope/fill-mask", json={"text": "x"}), 404, "path")


def test_images_over_the_pixel_limit_are_refused_before_decoding(client, served):
    # the bug it catches: a decompression bomb (a few bytes declaring 100,000 x 100,000 pixels) decoded into
    # 10 GB of memory; a damaged or non-image upload crashing the server
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    r = client.post("/models/vit/classify-image", files={"files": ("bomb.png", bomb, "image/png")})
    assert "too large" in _error(r, 413, "files[0]") and len(bomb) < 200
    with TestClient(create_app({"vit": served["vit"]}, Limits(max_pixels=1000))) as small:
        r = small.post("/models/vit/classify-image", files={"files": ("a.png", _png((40, 40)), "image/png")})
        assert "1,600 pixels" in _error(r, 413, "files[0]")
    r = client.post("/models/vit/classify-image", files={"files": ("x.png", b"not an image", "image/png")})
    assert "not an image" in _error(r, 422, "files[0]")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(buf, format="PNG")
    r = client.post("/models/vit/classify-image", files={"files": ("cut.png", buf.getvalue()[:400], "image/png")})
    assert _error(r, 422, "files[0]")


def test_a_10_mb_body_is_a_413_whether_declared_or_streamed(client):
    # the bug it catches: a huge body read whole into memory (declared by Content-Length, or streamed in
    # chunks with none) before anything refuses it
    big = b'{"text": "' + b"a" * 10_000_000 + b'"}'
    r = client.post("/models/mlm/fill-mask", content=big, headers={"content-type": "application/json"})
    assert "--max-body" in _error(r, 413, "body")
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))  # no Content-Length: chunked
    r = client.post("/models/mlm/fill-mask", content=chunks, headers={"content-type": "application/json"})
    assert "--max-body" in _error(r, 413, "body")
    assert client.get("/health").json()["status"] == "ok"


def test_the_api_key_is_needed_on_every_request_when_set(served):
    # the bug it catches: an endpoint (the page, the metrics, the docs, an upload) left open when a key is set,
    # or a key accepted in one form only
    with TestClient(create_app({"mlm": served["mlm"]}, api_key="s3cret")) as c:
        for path in ("/", "/health", "/models", "/metrics", "/docs", "/openapi.json"):
            assert _error(c.get(path), 401, "api_key")
        body = {"text": "El [MASK] come pan."}
        assert _error(c.post("/models/mlm/fill-mask", json=body), 401, "api_key")
        assert _error(c.post("/models/mlm/fill-mask", json=body, headers={"X-API-Key": "wrong"}), 401, "api_key")
        assert c.post("/models/mlm/fill-mask", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/models/mlm/fill-mask", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/?api_key=s3cret").status_code == 200


# ---------------------------------------------------------------- the other endpoints


def test_health_models_docs_and_metrics(client):
    # the bug it catches: an endpoint missing from the OpenAPI schema, /models without what each model does,
    # metrics that count nothing or are not in Prometheus's format
    assert client.get("/health").json()["status"] == "ok"
    models = {m["name"]: m for m in client.get("/models").json()}
    assert {n: m["kind"] for n, m in models.items()} == {
        "mlm": "fill-mask", "translate": "translation", "classify": "text-classification", "tag": "token-classification",
        "vit": "image-classification", "unclip": "text-to-image"}
    assert models["mlm"]["config"]["d_model"] == 64 and "eval/loss" in models["mlm"]["metrics"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {m["endpoint"] for m in models.values()} <= set(paths)
    assert client.get("/docs").status_code == 200
    client.post("/models/mlm/fill-mask", json={"text": "El [MASK] come pan."})
    client.post("/models/mlm/fill-mask", json={"text": "nada"})
    text = client.get("/metrics").text
    assert re.search(r'nanofm_requests_total\{model="mlm",endpoint="fill-mask",status="200"\} [1-9]', text)
    assert re.search(r'nanofm_errors_total\{model="mlm",endpoint="fill-mask"\} [1-9]', text)
    assert re.search(r'nanofm_request_seconds_bucket\{model="mlm",endpoint="fill-mask",le="\+Inf"\} [1-9]', text)
    assert re.search(r'nanofm_batch_size_count\{model="mlm"\} [1-9]', text)
    assert 'nanofm_queue_length{model="mlm"} 0' in text


def test_the_page_loads_nothing_from_elsewhere(client):
    # the bug it catches: a script, style or font from a CDN, which breaks the page offline
    page = client.get("/").text
    assert page == PAGE and "<script>" in page and "viewport" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "@import" not in page
