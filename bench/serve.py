"""`nanofm serve` under load, on loopback: requests per second and p50 / p99 latency for fill-mask on
bert-mini (4 layers, width 256; random weights with the corpus's tokenizer) and image classification on the
demo's ViT (/tmp/demo-curves/vision-finetune if present, else vit-fmnist-xs with random weights), at 1, 8
and 32 concurrent clients, with batching on (window 5 ms, max batch 32) and off (max batch 1).

The server runs in its own process (as `nanofm serve` does: uvicorn, one worker thread per model); the
clients are asyncio tasks in this one, each sending its next request when the last is answered.

    python bench/serve.py [--requests 256] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import socket
import statistics
import time
from pathlib import Path

import httpx
import numpy as np

from common import REPO, recorded

DEMO_VIT = REPO / "runs" / "demo" / "vision" / "mae-finetune"  # the demo's fine-tuned ViT, once `make demo` has run
TOKENIZER = REPO / "data" / "corpus-es" / "tokenizer.json"
CLIENTS = (1, 8, 32)


def build(kind: str, quick: bool):
    """(name, predictor) of the model the table measures."""
    from nanofm.families import create, get_config
    from nanofm.families.bert.model import BertForMaskedLM
    from nanofm.families.bert.pretrain import FillMask
    from nanofm.families.vit.task import ImageClassifier, ImageCollate
    from nanofm.text.wordpiece import WordPieceTokenizer, train_wordpiece
    from nanofm.vision.augment import AugmentConfig

    if kind == "fill-mask":
        if TOKENIZER.is_file() and not quick:
            tok = WordPieceTokenizer.load(TOKENIZER)
        else:  # a tiny tokenizer, learnt here in a moment
            import tempfile

            folder = Path(tempfile.mkdtemp())
            (folder / "t.txt").write_text("La capital de España es Madrid.\nEl niño come pan.\n" * 50)
            tok = train_wordpiece([folder / "t.txt"], vocab_size=100, min_frequency=1)
        preset = "bert-tiny-debug" if quick else "bert-mini"
        cfg = get_config(preset, vocab_size=tok.vocab_size, max_len=128, dropout=0.0, attn_dropout=0.0)
        return preset, FillMask(BertForMaskedLM(cfg), tok, "cpu")
    if DEMO_VIT.is_dir() and not quick:
        return "demo ViT", ImageClassifier.load(DEMO_VIT, device="cpu")
    preset = "vit-debug" if quick else "vit-fmnist-xs"
    return preset, ImageClassifier(create(preset), ImageCollate([0.5], [0.25], AugmentConfig()),
                                   [str(i) for i in range(10)], "cpu")


def serve(kind: str, quick: bool, port: int, max_batch: int) -> None:
    """The server process: one model, batching on (max_batch > 1) or off."""
    import uvicorn

    from nanofm.serve.app import create_app
    from nanofm.serve.limits import Limits
    from nanofm.serve.models import Served

    _, predictor = build(kind, quick)
    app = create_app({"m": Served("m", "bench/serve.py", predictor)}, Limits(max_queue=256), window_ms=5.0, max_batch=max_batch)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def request_of(kind: str) -> dict:
    if kind == "fill-mask":
        return {"url": "/models/m/fill-mask", "json": {"text": "La capital de [MASK] es Madrid.", "top_k": 5}}
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(buf, format="PNG")
    return {"url": "/models/m/classify-image", "files": {"files": ("x.png", buf.getvalue(), "image/png")}}


async def load(base: str, request: dict, clients: int, total: int) -> tuple[float, list[float], int]:
    """(wall seconds, latencies, errors) of `total` requests from `clients` concurrent clients."""
    latencies: list[float] = []
    errors = 0
    left = total

    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=httpx.Limits(max_connections=clients)) as c:
        async def client() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                r = await c.post(**request)
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        for _ in range(2):  # warm-up: connections, the first forward passes
            await c.post(**request)
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - t0, latencies, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(kind: str, batching: bool, args: argparse.Namespace) -> list[tuple]:
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(target=serve, args=(kind, args.quick, port, 32 if batching else 1))
    proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rows = []
        for clients in CLIENTS:
            total = max(args.requests, 4 * clients)
            wall, lat, errors = asyncio.run(load(base, request_of(kind), clients, total))
            q = statistics.quantiles(lat, n=100, method="inclusive")
            rows.append((clients, total / wall, q[49], q[98], errors))
        return rows
    finally:
        proc.terminate()
        proc.join(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=256, help="requests per row (at least 4 per client)")
    p.add_argument("--quick", action="store_true", help="tiny models and few requests (seconds): the tests")
    args = p.parse_args()
    if args.quick:
        args.requests = min(args.requests, 16)
    with recorded():
        run(args)


def run(args: argparse.Namespace) -> None:
    results = {}
    names = {}
    for kind in ("fill-mask", "image-classification"):
        names[kind] = build(kind, args.quick)[0]
        for batching in (True, False):
            results[kind, batching] = measure(kind, batching, args)
    print("\n| model | clients | batching | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for (kind, batching), rows in results.items():
        for clients, rps, p50, p99, errors in rows:
            print(f"| {kind}, {names[kind]} | {clients} | {'on' if batching else 'off'} | {rps:,.1f} | {p50 * 1000:,.1f} "
                  f"| {p99 * 1000:,.1f} | {errors} |")
    for kind in ("fill-mask", "image-classification"):
        on, off = results[kind, True][-1], results[kind, False][-1]
        print(f"\n{kind}, {CLIENTS[-1]} clients: batching gives {on[1] / off[1]:.2f}x the requests per second of "
              f"one at a time; p99 {on[3]:.3f} s with batching")
    on = results["fill-mask", True][-1]
    ratio = on[1] / results["fill-mask", False][-1][1]
    met = ratio >= 3 and on[3] < 1.0
    print(f"bar (32 clients, fill-mask: batching >= 3x one-at-a-time, p99 < 1 s): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
