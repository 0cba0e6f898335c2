"""Topics relayed to browsers: SSE (a real server, dropped connections) and WebSocket."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit
from redkit.embedded import free_port
from redkit.integrations.asgi.events import EventStream

from .conftest import poll


def _app(ark: AsyncRedkit) -> Starlette:
    durable = ark.events.topic("orders", durable=True)
    fanout = ark.events.topic("ticks")
    return Starlette(
        routes=[
            Route("/durable", EventStream(durable, heartbeat=0.3)),
            Route("/fanout", EventStream(fanout, heartbeat=0.3)),
            WebSocketRoute("/ws", EventStream(fanout, heartbeat=0.3)),
        ]
    )


@contextmanager
def serving(url: str, prefix: str) -> Iterator[str]:
    """The app on a real server (uvicorn in a thread), so streams can really be dropped."""
    ark = AsyncRedkit(url, prefix=prefix)
    port = free_port()
    config = uvicorn.Config(
        _app(ark), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        ws="none", timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    poll(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        asyncio.run(ark.aclose())


def _events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """The next ``count`` SSE events (comments and the retry field skipped)."""
    out: list[dict[str, str]] = []
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                out.append(event)
                event = {}
                if len(out) == count:
                    return out
            continue
        if line.startswith(":") or line.startswith("retry:"):
            continue
        name, _, value = line.partition(": ")
        event[name] = value
    raise AssertionError(f"the stream ended after {out}")


def test_sse_resumes_a_durable_topic_after_a_dropped_connection(
    target_url: str, prefix: str
) -> None:
    rk = Redkit(target_url, prefix=prefix)
    orders = rk.events.topic("orders", durable=True)
    with serving(target_url, prefix) as base, httpx.Client(timeout=10) as http:
        with http.stream("GET", f"{base}/durable") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"
            orders.publish_many([{"n": 1}, {"n": 2}])
            first = _events(lines, 2)
        assert [json.loads(e["data"])["n"] for e in first] == [1, 2]
        missed = orders.publish_many([{"n": 3}, {"n": 4}])  # while the browser is away
        headers = {"Last-Event-ID": first[-1]["id"]}
        with http.stream("GET", f"{base}/durable", headers=headers) as stream:
            lines = stream.iter_lines()
            resumed = _events(lines, 2)
            assert [e["id"] for e in resumed] == missed
            new = orders.publish({"n": 5})
            assert _events(lines, 1)[0]["id"] == new
    rk.close()


def test_sse_reports_what_a_fanout_browser_missed(target_url: str, prefix: str) -> None:
    rk = Redkit(target_url, prefix=prefix)
    ticks = rk.events.topic("ticks")
    with serving(target_url, prefix) as base, httpx.Client(timeout=10) as http:
        with http.stream("GET", f"{base}/fanout") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"  # sent once the stream is subscribed
            seen = ticks.publish({"n": 1})
            event = _events(lines, 1)[0]
            assert (event["event"], event["id"]) == ("message", str(seen))
            assert json.loads(event["data"]) == {"n": 1}
        lost = ticks.publish_many([{"n": 2}, {"n": 3}])
        with http.stream("GET", f"{base}/fanout", headers={"Last-Event-ID": str(seen)}) as stream:
            lines = stream.iter_lines()
            gap = _events(lines, 1)[0]
            assert gap["event"] == "gap"
            assert json.loads(gap["data"]) == {
                "first": lost[0],
                "last": lost[1],
                "reason": "reconnect",
            }
    rk.close()


def test_idle_streams_get_heartbeats(standalone_url: str, prefix: str) -> None:
    with (
        serving(standalone_url, prefix) as base,
        httpx.Client(timeout=10) as http,
        http.stream("GET", f"{base}/durable") as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(lines) == ""
        assert next(lines) == ": ping"


def test_websocket_relays_a_topic(standalone_url: str, prefix: str) -> None:
    ark = AsyncRedkit(standalone_url, prefix=prefix)
    rk = Redkit(standalone_url, prefix=prefix)
    ticks = rk.events.topic("ticks")
    with TestClient(_app(ark)) as client, client.websocket_connect("/ws") as ws:
        seq = ticks.publish({"n": 1})
        frame = ws.receive_json()
        while frame["type"] == "ping":
            frame = ws.receive_json()
        assert frame == {"type": "message", "id": str(seq), "data": {"n": 1}}
    rk.close()
    asyncio.run(ark.aclose())


def test_fanout_clients_share_one_subscription(standalone_url: str, prefix: str) -> None:
    rk = Redkit(standalone_url, prefix=prefix)
    ticks = rk.events.topic("ticks")

    def subscribers() -> int:
        return int(rk.client.execute_command("PUBSUB", "NUMSUB", ticks.keys.channel)[1])

    with (
        serving(standalone_url, prefix) as base,
        httpx.Client(timeout=10) as http,
        http.stream("GET", f"{base}/fanout") as first,
        http.stream("GET", f"{base}/fanout") as second,
    ):
        streams = [first.iter_lines(), second.iter_lines()]
        assert [next(lines) for lines in streams] == ["retry: 2000"] * 2
        assert subscribers() == 1
        seq = ticks.publish("both")
        for lines in streams:
            assert _events(lines, 1)[0] == {"id": str(seq), "event": "message", "data": '"both"'}
    poll(lambda: subscribers() == 0)  # closed with its last client
    rk.close()
