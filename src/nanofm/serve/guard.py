"""The checks every request passes before the app reads it, as an ASGI wrapper around the whole app: the API
key (401), the content type of a POST (415: JSON, or multipart/form-data for uploads) and the body size (413:
refused on its Content-Length, or once a streamed body passes the limit; the app only ever sees bodies within
it)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from nanofm.serve.limits import ApiError
from nanofm.serve.metrics import Metrics

ASGI = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class Guard:
    def __init__(self, app: ASGI, max_body: int, api_key: str | None, upload_paths: set[str], metrics: Metrics,
                 model_paths: set[str]):
        self.app, self.max_body, self.api_key, self.upload_paths = app, max_body, api_key, upload_paths
        self.metrics, self.model_paths = metrics, model_paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":  # lifespan
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_counted(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, send_counted)
        finally:
            self.metrics.request(*labels(scope["path"], self.model_paths), status, time.perf_counter() - start)

    async def _guarded(self, scope: dict, receive: Callable, send: Callable) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self._check_key(scope, headers)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                self._check_type(scope["path"], headers.get("content-type", ""))
                receive = await self._bounded_body(headers, receive)
        except ApiError as e:
            return await reply(send, e)
        await self.app(scope, receive, send)

    def _check_key(self, scope: dict, headers: dict[str, str]) -> None:
        if not self.api_key:
            return
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given:  # the page opened as /?api_key=KEY passes it on in a header
            given = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key") or [""])[0]
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            raise ApiError(401, "api_key", "this server needs an API key: send it as the X-API-Key header "
                           "(or Authorization: Bearer KEY; the page: open /?api_key=KEY)", {"WWW-Authenticate": "Bearer"})

    def _check_type(self, path: str, content_type: str) -> None:
        kind = content_type.split(";")[0].strip().lower()
        want = "multipart/form-data" if path in self.upload_paths else "application/json"
        if kind != want:
            raise ApiError(415, "content-type", f"{path} takes {want}, not {kind or 'a body without a content type'}")

    async def _bounded_body(self, headers: dict[str, str], receive: Callable) -> Callable:
        """A receive that replays the body, read here up to max_body bytes."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise ApiError(413, "body", f"a {int(declared):,}-byte body; the limit is {self.max_body:,} bytes (--max-body)")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                chunks, more = [], False
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                raise ApiError(413, "body", f"the body passed the limit of {self.max_body:,} bytes (--max-body)")
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()  # http.disconnect, when the client goes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay


def labels(path: str, model_paths: set[str]) -> tuple[str, str]:
    """(model, endpoint) of a path, from a bounded set of values: /models/NAME/fill-mask -> (NAME, fill-mask)."""
    if path in model_paths:
        _, name, endpoint = path.strip("/").split("/")
        return name, endpoint
    return "", path if path in ("/", "/health", "/models", "/metrics", "/docs", "/openapi.json") else "other"


async def reply(send: Callable, e: ApiError) -> None:
    body = json.dumps(e.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in e.headers.items())]
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
