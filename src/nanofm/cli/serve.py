"""`nanofm serve`: trained models behind an HTTP API and a web page (the library: nanofm.serve)."""

from __future__ import annotations

import argparse
import os

from nanofm.cli.args import positive_int

KEY_VARIABLE = "NANOFM_API_KEY"


def add(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `nanofm` parser."""
    from nanofm.serve.limits import Limits  # a dataclass only: no torch

    d = Limits()
    p = sub.add_parser(
        "serve",
        help="serve trained models over HTTP: a JSON API (OpenAPI at /docs), metrics, and a page to try them",
        description="Loads each RUN once (run folders, unCLIP folders, Hugging Face folders: as `nanofm predict`) and "
        "serves what it was trained for: POST /models/NAME/fill-mask, translate, classify, tag, classify-image "
        "(upload) or generate (PNG); GET / (a page to try every model), /health, /models, /metrics (Prometheus), "
        "/docs. NAME is the folder's name. Requests for one model that arrive together share a forward pass. "
        "Each limit below is answered with a JSON error naming the field: 413 (body, image pixels), 415 (content "
        "type), 422 (an input over a limit), 503 with Retry-After (queue full), 504 (timeout), 401 (API key). "
        "Prints the URL and what each model serves; Ctrl-C lets the requests in flight finish, then exits.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder (mlm, finetune, translation, image-classify), "
                   "an unCLIP folder, or a Hugging Face BERT or ViT folder")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine "
                   "only; 0.0.0.0 serves every network, with a warning)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--api-key", default=None, help=f"require this key on every request, as the X-API-Key header "
                   f"(or Authorization: Bearer; the page: /?api_key=KEY); default: the {KEY_VARIABLE} environment "
                   "variable, else none")
    p.add_argument("--batch-window-ms", type=float, default=5.0, help="how long a batch waits for more requests (default 5)")
    p.add_argument("--max-batch", type=positive_int, default=32, help="inputs per forward pass (default 32; 1 = no batching)")
    p.add_argument("--max-queue", type=positive_int, default=d.max_queue, help=f"requests waiting per model before 503 (default {d.max_queue})")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help=f"seconds a request may wait for its answer before 504 (default {d.timeout_s:g})")
    p.add_argument("--max-body", type=positive_int, default=d.max_body_bytes, help=f"bytes of a request body (default {d.max_body_bytes:,})")
    p.add_argument("--max-chars", type=positive_int, default=d.max_chars, help=f"characters of a text (default {d.max_chars:,})")
    p.add_argument("--max-tokens", type=positive_int, default=None, help="tokens of a text (default: the model's length)")
    p.add_argument("--max-masks", type=positive_int, default=d.max_masks, help=f"[MASK]s in a fill-mask text (default {d.max_masks})")
    p.add_argument("--max-items", type=positive_int, default=d.max_items, help=f"texts or images in one request (default {d.max_items})")
    p.add_argument("--max-pixels", type=positive_int, default=d.max_pixels, help=f"width x height of an uploaded image, read from its header before decoding (default {d.max_pixels:,})")
    p.add_argument("--max-steps", type=positive_int, default=d.max_steps, help=f"diffusion steps of text to image (default {d.max_steps})")
    p.add_argument("--max-images", type=positive_int, default=d.max_images, help=f"images per text-to-image request (default {d.max_images})")
    p.add_argument("--checkpoint", default="best", help="run folders: best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, else MPS, else the CPU)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> None:
    from nanofm.serve.limits import Limits
    from nanofm.serve.server import serve

    limits = Limits(max_body_bytes=args.max_body, max_chars=args.max_chars, max_tokens=args.max_tokens,
                    max_masks=args.max_masks, max_items=args.max_items, max_pixels=args.max_pixels,
                    max_steps=args.max_steps, max_images=args.max_images, max_queue=args.max_queue, timeout_s=args.timeout)
    serve(args.runs, args.host, args.port, limits, args.batch_window_ms, args.max_batch,
          args.api_key or os.environ.get(KEY_VARIABLE) or None, args.checkpoint, args.device)
