"""A bounded load test of a real `nanofm serve` on loopback: a fixed number of requests from a few concurrent
clients (it stops by itself). Below the queue limit nothing fails; above it the extra requests get 503 with
Retry-After (not crashes or timeouts); /health answers throughout; Ctrl-C drains and exits cleanly."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.conftest import start_server, stop_server


@pytest.fixture(scope="module")
def server(tiny_runs):
    proc, url = start_server([tiny_runs["fill"], tiny_runs["t2i"]], "--max-queue", "3", "--timeout", "60")
    yield url, proc
    if proc.poll() is None:
        proc.kill()


def _fire(url: str, path: str, body: dict, clients: int, total: int) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=60.0) as c, ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda _: c.post(path, json=body), range(total)))


def _health_during(url: str, stop: threading.Event, seen: list) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        r = httpx.get(url + "/health", timeout=5.0)
        seen.append((r.status_code, time.perf_counter() - t0))
        time.sleep(0.05)


def test_under_load_below_and_above_the_queue_limit(server):
    # the bug it catches: errors or lost answers under concurrency; a full queue crashing the server or
    # leaving requests to time out instead of a prompt 503; slow sampling blocking /health (the event loop)
    url, proc = server
    stop, health = threading.Event(), []
    watcher = threading.Thread(target=_health_during, args=(url, stop, health))
    watcher.start()
    try:
        below = _fire(url, "/models/mlm/fill-mask", {"text": "El niño [MASK] pan."}, clients=3, total=30)
        above = _fire(url, "/models/unclip/generate", {"caption": "un vestido rojo", "steps": 100}, clients=10, total=20)
    finally:
        stop.set()
        watcher.join()
    assert [r.status_code for r in below] == [200] * 30
    answers = [[[(c["token"], c["probability"]) for c in m] for m in r.json()["masks"]] for r in below]
    assert all([[w for w, _ in m] for m in a] == [[w for w, _ in m] for m in answers[0]] for a in answers)  # the same
    assert all(abs(q - q0) < 1e-5 for a in answers for m, m0 in zip(a, answers[0]) for (_, q), (_, q0) in zip(m, m0))
    # answer every time: the same words, the same probabilities up to float rounding (a batch of 3 and one of 1
    # multiply in different orders)
    codes = [r.status_code for r in above]
    assert set(codes) == {200, 503} and codes.count(503) >= 5, codes
    assert all(r.headers["Retry-After"] == "1" and r.json()["error"]["field"] == "model" for r in above if r.status_code == 503)
    assert len(health) >= 3 and all(code == 200 and s < 2.0 for code, s in health), health
    assert proc.poll() is None  # still serving
    metrics = httpx.get(url + "/metrics").text
    assert 'nanofm_requests_total{model="unclip",endpoint="generate",status="503"}' in metrics


def test_ctrl_c_drains_and_exits(tiny_runs):
    # the bug it catches: Ctrl-C dropping the request in flight, or the process hanging instead of exiting
    proc, url = start_server([tiny_runs["t2i"]])
    result: list = []
    worker = threading.Thread(target=lambda: result.append(httpx.post(
        url + "/models/unclip/generate", json={"caption": "un bolso", "steps": 100, "n": 4}, timeout=60)))
    worker.start()
    time.sleep(0.3)  # the request is in flight
    code, out, err = stop_server(proc)
    worker.join(60)
    assert result and result[0].status_code == 200 and result[0].content[:8] == b"\x89PNG\r\n\x1a\n"
    assert code == 0, err
    assert f"nanofm serve: {url}/" in out and "unclip: text-to-image" in out and "/models/unclip/generate" in out
