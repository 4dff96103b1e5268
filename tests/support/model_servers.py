"""Real local model servers for the providers gateway's tests and benchmarks: an aiohttp
server in a thread of its own that speaks OpenAI chat completions (``POST
/v1/chat/completions``) and Anthropic Messages (``POST /v1/messages``), whole or streamed.

Each test scripts what the next calls get (per model name, in turn, then the default
answer): an error status with a ``Retry-After``, a delay before the answer, a delay
between stream events, or a stream cut off before its end.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.servers import free_port

API_KEY = "sk-test-model-server-key"
# The default answer: its words are streamed one event each.
WORDS = ["Hello", " from", " the", " model", "."]
INPUT_TOKENS = 11


@dataclass
class Script:
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0  # before the answer (its headers)
    gap: float = 0.0  # between stream events
    truncate_after: int | None = None  # stream events sent before the connection drops
    words: list[str] = field(default_factory=lambda: list(WORDS))


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


async def _health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


class ModelServer:
    def __init__(self, api_key: str | None = API_KEY) -> None:
        self.port = free_port()
        self.api_key = api_key
        self.scripts: dict[str, deque[Script]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        # What calls arrived (tests read it); off for a benchmark's long run.
        self.record = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, model: str, *answers: Script) -> None:
        with self.lock:
            self.scripts[model].extend(answers)

    def calls(self, model: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if model is None or s.body.get("model") == model]

    def _next(self, model: str) -> Script:
        with self.lock:
            queue = self.scripts.get(model)
            return queue.popleft() if queue else Script()

    # --- server ------------------------------------------------------------------------

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._run, name="model-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the model server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_get("/health", _health)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=2048)
        await site.start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _receive(self, request: web.Request) -> tuple[dict[str, Any], Script] | web.Response:
        body = orjson.loads(await request.read())
        if self.record:
            with self.lock:
                self.seen.append(Seen(request.path, dict(request.headers), body, time.monotonic()))
        if self.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            given = given or request.headers.get("x-api-key", "")
            if given != self.api_key:
                return web.json_response({"error": {"type": "authentication_error"}}, status=401)
        script = self._next(str(body.get("model")))
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.status != 200:
            headers = {"retry-after": script.retry_after} if script.retry_after else {}
            return web.json_response(
                {"error": {"type": "scripted", "message": "scripted failure"}},
                status=script.status,
                headers=headers,
            )
        return body, script

    async def _stream(
        self, request: web.Request, script: Script, events: list[bytes]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i, event in enumerate(events):
            if script.truncate_after is not None and i >= script.truncate_after:
                # Cut the connection mid-answer, as a crashing server would.
                assert request.transport is not None
                request.transport.close()
                return resp
            if script.gap and i:
                await asyncio.sleep(script.gap)
            await resp.write(event)
        await resp.write_eof()
        return resp

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        got = await self._receive(request)
        if isinstance(got, web.Response):
            return got
        body, script = got
        model = body["model"]
        out = len(script.words)
        usage = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": out, "total_tokens": 0}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(script.words)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            doc = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return b"data: " + orjson.dumps(doc) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": word}) for word in script.words]
        events.append(chunk({}, "stop"))
        last = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": usage,
        }
        events.append(b"data: " + orjson.dumps(last) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, script, events)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        got = await self._receive(request)
        if isinstance(got, web.Response):
            return got
        body, script = got
        model = body["model"]
        out = len(script.words)
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "".join(script.words)}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": out},
                }
            )

        def event(name: str, doc: dict[str, Any]) -> bytes:
            return b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps({"type": name, **doc}))

        start = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1},
        }
        events = [
            event("message_start", {"message": start}),
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            event("ping", {}),
        ]
        events += [
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}})
            for w in script.words
        ]
        events += [
            event("content_block_stop", {"index": 0}),
            event(
                "message_delta",
                {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": out}},
            ),
            event("message_stop", {}),
        ]
        return await self._stream(request, script, events)


def main() -> None:
    """Serve in the foreground (the benchmark runs it in a process of its own)."""
    parser = argparse.ArgumentParser(description="a local OpenAI / Anthropic model server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    server = ModelServer(api_key=args.api_key)
    server.port = args.port
    server.record = False
    server._run()


if __name__ == "__main__":
    main()
