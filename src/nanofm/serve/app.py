"""`create_app(models)`: the FastAPI app serving loaded models (see routes.py), wrapped in the Guard (API key,
content type, body size, request metrics). GET / is the page, /health, /models, /metrics, /docs (OpenAPI)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from nanofm.errors import UserError
from nanofm.serve.batching import Batcher
from nanofm.serve.guard import Guard
from nanofm.serve.limits import ApiError, Limits
from nanofm.serve.metrics import Metrics
from nanofm.serve.models import Served
from nanofm.serve.page import PAGE
from nanofm.serve.routes import add_routes, batch_function
from nanofm.version import __version__

log = logging.getLogger("nanofm.serve")


def create_app(models: dict[str, Served], limits: Limits = Limits(), window_ms: float = 5.0, max_batch: int = 32,
               api_key: str | None = None) -> Guard:
    """The ASGI app: `uvicorn.run(create_app(load_served(paths)))`, or FastAPI's TestClient. `max_batch` 1 (or
    `window_ms` 0) serves one request at a time; text to image always does (its sampling is the batch)."""
    metrics = Metrics()
    batchers = {name: Batcher(name, batch_function(m), metrics, window_ms / 1000,
                              1 if m.kind == "text-to-image" else max_batch, limits.max_queue) for name, m in models.items()}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        for b in batchers.values():
            b.start()
        yield
        for b in batchers.values():
            await b.stop()

    app = FastAPI(title="nanofm serve", version=__version__, lifespan=lifespan,
                  description="nanofm's trained models over HTTP. Errors are {\"error\": {\"status\", \"field\", \"message\"}}.")
    _errors(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    @app.get("/health", summary="the server is up")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(models), "queued": {n: b.queue.qsize() if b.queue else 0 for n, b in batchers.items()}}

    @app.get("/models", summary="the loaded models: name, kind, endpoint, config summary, metrics of the run")
    async def list_models() -> list[dict[str, Any]]:
        return [{"name": m.name, "kind": m.kind, "endpoint": m.endpoint, "path": m.path, **m.info} for m in models.values()]

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    for name, m in models.items():
        add_routes(app, m, batchers[name], limits)
    uploads = {m.endpoint for m in models.values() if m.kind == "image-classification"}
    guard = Guard(app, limits.max_body_bytes, api_key, uploads, metrics, {m.endpoint for m in models.values()})
    guard.fastapi = app  # for app.openapi() and tests
    return guard


def _errors(app: FastAPI) -> None:
    """Every error as {"error": {"status", "field", "message"}} with its status."""

    def error(status: int, field: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(ApiError(status, field, message).body(), status, headers)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return error(e.status, e.field, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        if first.get("type") == "json_invalid":
            return error(400, "body", f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        loc = [x for x in first.get("loc", ()) if x != "body"]  # ["text", "list[str]", 1]: a union's branch, an index
        field = (str(loc[0]) + "".join(f"[{x}]" for x in loc[1:] if isinstance(x, int))) if loc else "body"
        return error(422, field, f"{field}: {first['msg']}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, "path", str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(UserError)
    async def user_error(_: Request, e: UserError) -> JSONResponse:
        return error(422, "input", str(e)[:300])

    @app.exception_handler(Exception)
    async def bug(_: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error(500, "server", f"an unexpected error ({type(e).__name__}); the server's log has the traceback")
