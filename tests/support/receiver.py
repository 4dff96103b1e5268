"""A real webhook receiver: a local HTTP server that verifies every delivery with the
``standardwebhooks`` package (the reference receiving side), keeps what arrived, and
answers as each test scripts it."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.servers import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # Which of the path's secrets verified it (None: none did).
    verified_by: str | None
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.lock = threading.Condition()
        # Per path: the secrets to verify with, and the answers to give in turn (then 200).
        self.secrets: dict[str, list[str]] = defaultdict(list)
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, secret: str) -> None:
        with self.lock:
            self.secrets[path].append(secret)

    def script(self, path: str, *answers: Answer) -> None:
        with self.lock:
            self.scripts[path].extend(answers)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                got = [r for r in self.received if r.path == path]
                if len(got) >= count or time.monotonic() > deadline:
                    return got
                self.lock.wait(0.05)

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        verified_by = None
        with self.lock:
            secrets = list(self.secrets[path])
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified_by = secret
            break
        with self.lock:
            self.received.append(Received(path, headers, body, verified_by, time.time()))
            answer = self.scripts[path].popleft() if self.scripts[path] else Answer()
            self.lock.notify_all()
        return answer

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._handle(self.path, headers, body)
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # The default backlog of 5 drops connections when two server processes open
            # their pools at once (each attempt then fails and is retried).
            request_queue_size = 1024

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
