"""Shared fixtures: small real datasets and a loopback HTTP server."""

from __future__ import annotations

import http.server
import os
import socketserver
import threading
from collections.abc import Iterator

import pytest
import torch

from saddlepoint.data import load_dataset


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (make test runs one worker per core), each worker gets an equal share
    of the cores for torch's intra-op threads instead of every worker taking them all."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


# Every device this machine has: CPU always, CUDA when torch sees a GPU. Tests that take the
# ``device`` fixture run once per device; those marked ``device`` are what make test-device runs.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session", params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """One available device per parametrization (session-scoped, so hypothesis accepts it)."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits at their native 8x8 size (fast, always available)."""
    return load_dataset("digits")


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int | None]] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, declared = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args) -> None:  # keep test output clean
        pass


class LoopbackServer:
    """Serves registered byte strings on 127.0.0.1; ``declared`` fakes a longer Content-Length
    to simulate a transfer cut short."""

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"routes": {}, "hits": []})
        self.handler = handler
        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, path: str, body: bytes, declared: int | None = None) -> str:
        self.handler.routes[path] = (body, declared)
        return self.base + path

    @property
    def hits(self) -> list[str]:
        return self.handler.hits

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def trained_digits(digits):
    """The default CNN trained on digits (about 98% test accuracy, a few seconds)."""
    from saddlepoint.train import TrainConfig, train_classifier

    result = train_classifier(digits, "cnn", TrainConfig(epochs=10, device="cpu"), progress=False)
    return result.model, digits
