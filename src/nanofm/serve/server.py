"""`nanofm serve`: load the models once, print the URL and what each serves, and run uvicorn until Ctrl-C
(uvicorn then stops accepting connections and lets the requests in flight finish before it exits)."""

from __future__ import annotations

import sys

from nanofm.serve.app import create_app
from nanofm.serve.limits import Limits
from nanofm.serve.models import Served, load_served

WHAT = {"fill-mask": "the likeliest words for each [MASK]", "translation": "translations (and their attention)",
        "text-classification": "labels of texts", "token-classification": "tags of words and entities",
        "image-classification": "classes of uploaded images", "text-to-image": "PNG images of captions"}


def serve(paths: list[str], host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          window_ms: float = 5.0, max_batch: int = 32, api_key: str | None = None, checkpoint: str = "best",
          device: str | None = None, drain_s: float = 30.0) -> None:
    import uvicorn

    if host in ("0.0.0.0", "::"):
        print(f"warning: --host {host} serves every network this machine is on"
              f"{'' if api_key else ', with no API key (--api-key)'}; 127.0.0.1 keeps it to this machine", file=sys.stderr)
    models = load_served(paths, checkpoint, device)
    app = create_app(models, limits, window_ms, max_batch, api_key)
    print(banner(models, host, port, bool(api_key)), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=drain_s,
                limit_concurrency=sum(limits.max_queue for _ in models) + 64)


def banner(models: dict[str, Served], host: str, port: int, keyed: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host == '0.0.0.0' else shown}:{port}/"
    lines = [f"nanofm serve: {url}  (API: {url}docs, metrics: {url}metrics{', API key required' if keyed else ''}; "
             "Ctrl-C to stop)"]
    lines += [f"  {m.name}: {m.kind}, {WHAT[m.kind]}: POST {m.endpoint}  ({m.path})" for m in models.values()]
    return "\n".join(lines)
