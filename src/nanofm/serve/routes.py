"""One endpoint per loaded model, for what it was trained for: POST /models/NAME/{fill-mask, translate,
classify, tag, classify-image, generate}. Each checks its inputs against the Limits, then hands them to the
model's Batcher. A request's `text` may be one text (answered with one result) or a list (answered with
{"results": [...]}, one each)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from fastapi import FastAPI, File, Form, Response, UploadFile

from nanofm.serve.batching import Batcher, RunBatch
from nanofm.serve.limits import ApiError, Limits, check_items, check_text, open_image, token_limit
from nanofm.serve.models import Served, generate_png, tag, translate
from nanofm.serve.schemas import ClassifyRequest, FillMaskRequest, GenerateRequest, TagRequest, Texts, TranslateRequest

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"description": d} for s, d in ((401, "API key missing or wrong"), (413, "body or image too large"),
                                       (415, "wrong content type"), (422, "an input over a limit, or malformed"),
                                       (503, "the model's queue is full: retry after Retry-After seconds"),
                                       (504, "no answer within the per-request timeout"))}


def batch_function(m: Served) -> RunBatch:
    """(inputs, options) -> one output per input, run by the Batcher in the model's worker thread."""
    p = m.predictor
    return {
        "fill-mask": lambda xs, k: p(xs, k),
        "translation": lambda xs, o: translate(p, xs, *o),
        "text-classification": lambda xs, k: p(xs, k),
        "token-classification": lambda xs, _: tag(p, xs),
        "image-classification": lambda xs, k: p(xs, k),
        "text-to-image": lambda xs, _: [generate_png(p, *x) for x in xs],
    }[m.kind]


def add_routes(app: FastAPI, m: Served, batcher: Batcher, limits: Limits) -> None:
    limit = token_limit(m.model_len(), limits)

    def texts(text: Texts, check: Callable[[str, str], None] = lambda t, f: None) -> list[str]:
        items = [text] if isinstance(text, str) else text
        check_items(items, "text", limits)
        for i, t in enumerate(items):
            field = "text" if isinstance(text, str) else f"text[{i}]"
            check_text(t, field, limits, m.token_count, limit)
            check(t, field)
        return items

    def shape(text: Texts, outputs: list) -> Any:
        return outputs[0] if isinstance(text, str) else {"results": outputs}

    async def run(inputs: list, options: Any) -> list:
        return await batcher.submit(inputs, options, limits.timeout_s)

    post = dict(tags=[m.name], responses=ERRORS)
    if m.kind == "fill-mask":
        mask = m.predictor.tok.mask_id

        def masks(t: str, field: str) -> None:
            n = m.predictor.tok.encode(t).ids.count(mask)
            if not n:
                raise ApiError(422, field, "no [MASK] in the text: put [MASK] where a word should be guessed")
            if n > limits.max_masks:
                raise ApiError(422, field, f"{n} [MASK]s; the limit is {limits.max_masks} (--max-masks)")

        @app.post(m.endpoint, summary=f"{m.name}: the likeliest words for each [MASK]", **post)
        async def fill_mask(req: FillMaskRequest) -> Any:
            out = await run(texts(req.text, masks), req.top_k)
            return shape(req.text, [{"masks": [[{"token": w, "probability": q} for w, q in c] for c in o]} for o in out])

    elif m.kind == "translation":
        @app.post(m.endpoint, summary=f"{m.name}: translate (with the attention matrix on request)", **post)
        async def translate_(req: TranslateRequest) -> Any:
            return shape(req.text, await run(texts(req.text), (req.beam, req.attention)))

    elif m.kind == "text-classification":
        @app.post(m.endpoint, summary=f"{m.name}: the labels of a text, with probabilities", **post)
        async def classify(req: ClassifyRequest) -> Any:
            out = await run(texts(req.text), req.top_k)
            return shape(req.text, [{"labels": [{"label": c, "probability": q} for c, q in o]} for o in out])

    elif m.kind == "token-classification":
        @app.post(m.endpoint, summary=f"{m.name}: a tag for each word, and the entities", **post)
        async def tag_(req: TagRequest) -> Any:
            return shape(req.text, await run(texts(req.text), None))

    elif m.kind == "image-classification":
        @app.post(m.endpoint, summary=f"{m.name}: the likeliest classes of uploaded images", **post)
        async def classify_image(files: list[UploadFile] = File(description="one or more images (PNG, JPEG, ...)"),
                                 top_k: int = Form(3, ge=1, le=1000)) -> Any:
            check_items(files, "files", limits)
            images = [await asyncio.to_thread(open_image, await f.read(), f"files[{i}]", limits) for i, f in enumerate(files)]
            out = await run(images, top_k)
            return {"results": [{"file": f.filename, "labels": [{"label": c, "probability": q} for c, q in o]}
                                for f, o in zip(files, out)]}

    elif m.kind == "text-to-image":
        @app.post(m.endpoint, summary=f"{m.name}: images of a caption, side by side in one PNG", response_class=Response,
                  responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "a PNG"}}, tags=[m.name])
        async def generate(req: GenerateRequest) -> Response:
            check_text(req.caption, "caption", limits, len, limits.max_chars)
            if req.steps > limits.max_steps:
                raise ApiError(422, "steps", f"{req.steps} steps; the limit is {limits.max_steps} (--max-steps)")
            if req.n > limits.max_images:
                raise ApiError(422, "n", f"{req.n} images; the limit is {limits.max_images} (--max-images)")
            (png,) = await run([(req.caption, req.n, req.steps, req.guidance, req.seed)], None)
            return Response(png, media_type="image/png")
