"""`nanofm serve` under load, on loopback: requests per second and p50 / p99 latency for fill-mask on
bert-mini (4 layers, width 256; random weights with the corpus's tokenizer) and image classification on the
demo's ViT (/tmp/demo-curves/vision-finetune if present, else vit-fmnist-xs with random weights), at 1, 8
and 32 concurrent clients, with batching on (window 5 ms, max batch 32) and off (max batch 1).

The server runs in its own process (as `nanofm serve` does: uvicorn, one worker thread per model); the
clients are asyncio tasks in this one, each on its own keep-alive connection, sending its next request when
the last is answered (a minimal HTTP/1.1 client, so that the server's cost is what is measured).

    python bench/serve.py [--requests 256] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
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
TEXT = "La capital de [MASK] es Madrid."  # the fill-mask request's text


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


def serve(kind: str, quick: bool, port: int, max_batch: int, stack: str) -> None:
    """The server process: one model, batching on (max_batch > 1) or off; uvicorn's event loop and HTTP parser
    as `nanofm serve` picks them ("auto": uvloop and httptools when installed) or its pure-Python ones ("plain")."""
    import uvicorn

    from nanofm.serve.app import create_app
    from nanofm.serve.limits import Limits
    from nanofm.serve.models import Served

    _, predictor = build(kind, quick)
    app = create_app({"m": Served("m", "bench/serve.py", predictor)}, Limits(max_queue=256), window_ms=5.0, max_batch=max_batch)
    plain = dict(loop="asyncio", http="h11") if stack == "plain" else {}
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **plain)


def request_of(kind: str) -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive) of the kind measured."""
    if kind == "fill-mask":
        path, ctype = "/models/m/fill-mask", "application/json"
        body = json.dumps({"text": TEXT, "top_k": 5}).encode()
    else:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(buf, format="PNG")
        boundary = "nanofmbench"
        path, ctype = "/models/m/classify-image", f"multipart/form-data; boundary={boundary}"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """(status, body) of one request on an open keep-alive connection."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length")
    return int(lines[0].split()[1]), await reader.readexactly(length)


async def load(port: int, request: bytes, clients: int, total: int) -> tuple[float, list[float], int]:
    """(wall seconds, latencies, errors) of `total` requests from `clients` concurrent clients, each on its own
    keep-alive connection. The client is a few lines over asyncio streams (as wrk is over sockets), so that
    what is measured is the server, not an HTTP library's own cost on the same two cores."""
    latencies: list[float] = []
    errors = 0
    left = total
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]

    async def client(reader, writer) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            status, _ = await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - t0)
            errors += status != 200

    status, body = await exchange(*conns[0], request)  # warm-up, and a check that the answer is the model's
    if status != 200:
        raise RuntimeError(f"the server answered {status}: {body[:300]!r}")
    json.loads(body)
    for reader, writer in conns:
        await exchange(reader, writer, request)
    t0 = time.perf_counter()
    await asyncio.gather(*(client(*c) for c in conns))
    wall = time.perf_counter() - t0
    for _, writer in conns:
        writer.close()
    return wall, latencies, errors


def stack_of(choice: str) -> str:
    if choice == "plain":
        return "asyncio event loop, h11 HTTP parser (uvicorn's pure-Python ones)"
    from importlib.util import find_spec

    return (f"{'uvloop' if find_spec('uvloop') else 'asyncio'} event loop, "
            f"{'httptools' if find_spec('httptools') else 'h11'} HTTP parser (what uvicorn picks, as nanofm serve does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(kind: str, batching: bool, args: argparse.Namespace) -> list[tuple]:
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(target=serve, args=(kind, args.quick, port, 32 if batching else 1,
                                                                           args.stack))
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
            wall, lat, errors = asyncio.run(load(port, request_of(kind), clients, total))
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
    p.add_argument("--stack", choices=["auto", "plain"], default="auto",
                   help="auto: the event loop and HTTP parser nanofm serve uses (uvloop, httptools); plain: asyncio and h11")
    args = p.parse_args()
    if args.quick:
        args.requests = min(args.requests, 16)
    with recorded():
        run(args)


def forward_times(quick: bool) -> None:
    """The fill-mask predictor alone (no HTTP): median ms per call of 1, 8 and 32 texts, what batching shares."""
    import torch

    _, predictor = build("fill-mask", quick)
    with torch.inference_mode():
        for n in (1, 8, 32):
            predictor([TEXT] * n, 5)  # warm-up
            times = []
            for _ in range(5 if quick else 40):
                t0 = time.perf_counter()
                predictor([TEXT] * n, 5)
                times.append(time.perf_counter() - t0)
            ms = 1000 * statistics.median(times)
            print(f"fill-mask forward, {n} text{'s' if n > 1 else ''} in one call: {ms:.2f} ms, {ms / n:.3f} ms a text")


def run(args: argparse.Namespace) -> None:
    results = {}
    names = {}
    forward_times(args.quick)
    print(f"server stack: {stack_of(args.stack)}")
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
