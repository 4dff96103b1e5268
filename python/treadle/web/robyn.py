"""Robyn adapter: Robyn carries the bytes, the kernel decides everything else.

``run_robyn`` (what ``treadle serve --server robyn`` calls) supervises one child process
per worker, each running ``python -m treadle.web.robyn``. Robyn 0.88 needs the help:

- It answers a path it has no route for with a plain-text 404, so one handler takes every
  method Robyn knows on ``/`` and ``/*path`` and the kernel answers 404 and 405. A method
  outside Robyn's list (``PROPFIND``) still gets Robyn's plain-text 405: it never reaches
  Python.
- It hands over the body already read, as ``str`` when it is valid UTF-8 and ``bytes``
  otherwise, and rewrites multipart bodies. Every body this API decodes is UTF-8 text, so
  bytes, compressed bodies and bodies that changed length are refused with 415. A route
  that streams its body (asset uploads) gets it here as one chunk, bytes or text alike,
  already whole in memory: a limitation of this server; multipart bodies stay refused.
- Its process never exits on SIGTERM or SIGINT: actix stops serving, Python keeps running.
  The child stops its own event loop once actix has drained; the supervisor forwards
  signals and kills a child that overstays ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from treadle.settings import Settings
from treadle.web.errors import ApiError
from treadle.web.kernel import Kernel
from treadle.web.request import BodyReader, ChunkReader, Headers, Request
from treadle.web.response import Response

log = logging.getLogger("treadle.server")

# What the child keeps for closing pools once draining is over; the rest of
# shutdown_timeout is for draining, and the supervisor kills at shutdown_timeout.
CLOSE_SECONDS = 1.5
# actix also waits for idle keep-alive connections, which look the same from here as a
# request still being read: once nothing has reached Python for this long, stop waiting.
QUIET_SECONDS = 2.0
PARENT_CHECK_SECONDS = 0.5


# --- translation ------------------------------------------------------------------------


def _query_string(params: Any) -> str:
    # Robyn keeps no raw query string, but its pairs are still percent-encoded, so
    # joining them loses nothing except the order between different names.
    if params.empty():
        return ""
    return "&".join(f"{key}={value}" for key, value in params.multi_items() if key or value)


def _declared_length(headers: Any) -> int | None:
    value = headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reader(body: str | bytes | None, headers: Any, binary: bool = False) -> BodyReader:
    async def read(limit: int) -> bytes:
        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            raise ApiError.payload_too_large(limit)
        encoding = headers.get("content-encoding")
        if encoding and encoding.strip().lower() != "identity":
            raise ApiError.unsupported_media_type(
                f"Content-Encoding {encoding} is not supported; send the body uncompressed"
            )
        if isinstance(body, bytes) and not binary:
            # Robyn gives bytes only for a body that is not UTF-8, which no route reads.
            raise ApiError.unsupported_media_type(
                "the request body is not UTF-8 text; send JSON, YAML or TOML in UTF-8"
            )
        data = body if isinstance(body, bytes) else (body or "").encode()
        if len(data) > limit:
            raise ApiError.payload_too_large(limit)
        if declared is not None and declared != len(data):
            # Robyn rewrote or lost the body (multipart, a body it could not decode):
            # refuse it rather than act on something the client did not send.
            raise ApiError.unsupported_media_type(
                "this request body cannot be passed through intact on this server; "
                "send uncompressed UTF-8 JSON, YAML or TOML"
            )
        return data

    return read


def _chunks(body: str | bytes | None, headers: Any) -> ChunkReader:
    async def read(limit: int) -> AsyncIterator[bytes]:
        data = await _reader(body, headers, binary=True)(limit)
        if data:
            yield data

    return read


def to_request(raw: Any) -> Request:
    """Our Request from Robyn's: headers arrive lower-cased, the body already read."""
    path = raw.url.path
    if "%" in path:
        path = unquote(path)  # Granian hands the kernel a decoded path; so do we
    headers = raw.headers
    return Request(
        raw.method,
        path,
        _query_string(raw.query_params),
        Headers(headers.get),
        _reader(raw.body, headers),
        raw.ip_addr or "",
        _chunks(raw.body, headers),
    )


# --- one worker process ------------------------------------------------------------------


def _actix_running() -> bool:
    """Whether Robyn's actix threads are still draining connections (Linux names them)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm") as comm:
            if comm.read().startswith("actix"):
                return True
    return False


class Worker:
    """The Robyn handler, startup hook and shutdown sequence of one process."""

    def __init__(self, kernel: Kernel, settings: Settings) -> None:
        # Imported here, in the worker only: importing robyn parses sys.argv.
        from robyn import Headers as RobynHeaders
        from robyn import Response as RobynResponse
        from robyn.responses import StreamingResponse

        self._robyn = (RobynHeaders, RobynResponse, StreamingResponse)
        self.kernel = kernel
        self.drain_seconds = max(0.5, settings.shutdown_timeout - CLOSE_SECONDS - 1.0)
        self.in_flight = 0
        self.last_seen = 0.0
        self.exit_code = 0
        self._stopping = False
        self._parent = os.getppid()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, raw: Any) -> Any:
        self.in_flight += 1
        self.last_seen = time.monotonic()
        try:
            req = to_request(raw)
            return self.respond(await self.kernel.handle(req))
        except Exception:
            # kernel.handle never raises; this keeps a translation bug from reaching
            # the client as Robyn's plain-text 500.
            log.exception("robyn adapter failed", extra={"method": raw.method})
            req = Request(raw.method, "/", "", Headers(lambda name: None), _reader("", {}))
            return self.respond(self.kernel.error_response(req, ApiError.internal()))
        finally:
            self.in_flight -= 1
            self.last_seen = time.monotonic()

    def respond(self, response: Response) -> Any:
        """Robyn's response from ours."""
        robyn_headers, robyn_response, streaming_response = self._robyn
        headers = robyn_headers({})
        for name, value in response.headers:
            headers.append(name, value)  # append, not set: names may repeat
        if response.stream is not None:
            # Robyn adds no-cache headers to every stream and does not close the
            # iterator when the client goes away: it stops pulling from it.
            return streaming_response(
                response.stream,  # type: ignore[arg-type]  # any async iterator works
                status_code=response.status,
                headers=headers,
                media_type=headers.get("content-type") or "application/octet-stream",
            )
        return robyn_response(
            status_code=response.status, headers=headers, description=response.body
        )

    async def startup(self) -> None:
        # Robyn runs this on the loop that will serve requests, before it accepts.
        # An exception here would abort the process from Rust with a core dump.
        loop = asyncio.get_running_loop()
        try:
            await self.kernel.startup()
        except Exception as exc:
            log.error("startup failed: %s", exc, exc_info=True)
            self.exit_code = 1
            loop.call_soon(loop.stop)
            return
        # actix installs its own signal handlers after this hook and chains to these:
        # one signal starts both actix's graceful stop and ours.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: self._spawn(self.stop()))
        self._spawn(self._watch_parent())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_parent(self) -> None:
        # If the supervisor dies without stopping us, stop: a listener left behind on a
        # SO_REUSEPORT socket would quietly take a share of the next server's traffic.
        while os.getppid() == self._parent:
            await asyncio.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("robyn worker stopping", extra={"in_flight": self.in_flight})
        started = time.monotonic()
        self.last_seen = max(self.last_seen, started)
        # actix has stopped accepting; it still finishes requests it has begun reading.
        while time.monotonic() - started < self.drain_seconds and (
            self.in_flight
            or (_actix_running() and time.monotonic() - self.last_seen < QUIET_SECONDS)
        ):
            await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(self.kernel.shutdown(), CLOSE_SECONDS)
        except Exception:
            log.exception("shutdown did not complete")
        log.info("robyn worker stopped", extra={"seconds": round(time.monotonic() - started, 3)})
        asyncio.get_running_loop().stop()  # Robyn's Server.start returns once its loop stops


ROBYN_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT")


def serve(settings: Settings) -> int:
    """Run one Robyn process until a signal; the process's exit code."""
    from robyn.robyn import FunctionInfo, HttpMethod, Server, SocketHeld

    from treadle.app import build_kernel

    with contextlib.suppress(ImportError):
        import uvloop  # Granian serves on uvloop too; compare like with like

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Server.start makes its own loop through the policy, but asks for the current one
    # first and panics if there is none.
    asyncio.set_event_loop(asyncio.new_event_loop())

    worker = Worker(build_kernel(settings), settings)
    server = Server()
    handler = FunctionInfo(worker.handle, True, 1, {}, {})
    for method in ROBYN_METHODS:
        for path in ("/", "/*path"):  # "/*path" does not match "/"
            server.add_route(getattr(HttpMethod, method), path, handler, False)
    server.add_startup_handler(FunctionInfo(worker.startup, True, 0, {}, {}))
    try:
        sock = SocketHeld(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        return 2
    # One actix thread per process: the handlers share this process's single event
    # loop, so more threads only parse HTTP faster for a loop that cannot keep up.
    # The 0.88 stub lists client and keep-alive timeouts that the binary does not take.
    server.start(sock, 1)  # type: ignore[call-arg]
    if _actix_running():
        # Draining ran out of time. Tearing the interpreter down under live actix
        # threads makes them panic on their way out, so leave without teardown.
        logging.shutdown()
        os._exit(worker.exit_code)
    return worker.exit_code


def main() -> int:
    from treadle import logs

    settings = Settings.from_env()
    logs.setup(settings.log_level)
    return serve(settings)


# --- the supervisor ----------------------------------------------------------------------


def _ip_literal(host: str) -> str:
    # Robyn's socket takes only an IP literal ("localhost" is a ValueError).
    return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])


def _check_port_free(host: str, port: int) -> None:
    """Raise OSError if something listens there already.

    Robyn binds with SO_REUSEPORT, so a second Robyn on the same port would start
    without complaint and share its traffic; a plain bind does complain.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _exit_code(returncode: int, stopped: bool) -> int:
    if stopped and returncode == -signal.SIGTERM:
        # Our SIGTERM reached a worker still starting, before its handlers were in place:
        # it had nothing in flight, so that is a clean stop.
        return 0
    return 128 - returncode if returncode < 0 else returncode


def _supervise(children: list[subprocess.Popen[bytes]], grace: float) -> int:
    kill_at: float | None = None

    def stop(signum: int = 0, frame: object = None) -> None:
        nonlocal kill_at
        if kill_at is None:
            kill_at = time.monotonic() + grace
            for child in children:
                if child.poll() is None:
                    # SIGTERM even for Ctrl-C: on SIGINT actix drops requests in flight.
                    child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while any(child.poll() is None for child in children):
            if kill_at is None and any(child.returncode is not None for child in children):
                log.error("a robyn worker exited; stopping the others")
                stop()
            if kill_at is not None and time.monotonic() > kill_at:
                for child in children:
                    if child.poll() is None:
                        log.error("robyn worker %s did not stop in time; killing it", child.pid)
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(child.pid, signal.SIGKILL)
                        child.wait()
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [_exit_code(child.returncode, kill_at is not None) for child in children]
    return next((code for code in codes if code), 0)


def run_robyn(settings: Settings) -> int:
    """Serve with Robyn in ``settings.workers`` child processes until SIGTERM or SIGINT."""
    try:
        settings = settings.replace(host=_ip_literal(settings.host))
        _check_port_free(settings.host, settings.port)
    except OSError as exc:
        print(
            f"treadle: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    env = {**os.environ, **settings.to_env()}
    children = [
        # Own sessions: a terminal's Ctrl-C reaches only us, and we stop them gracefully.
        subprocess.Popen(
            [sys.executable, "-m", "treadle.web.robyn"], env=env, start_new_session=True
        )
        for _ in range(settings.workers)
    ]
    return _supervise(children, settings.shutdown_timeout)


if __name__ == "__main__":
    sys.exit(main())
