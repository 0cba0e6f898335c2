"""The observers of redkit.metrics: Redis counters per minute, Prometheus, OpenTelemetry."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from redkit import AsyncRedkit, Redkit, ops
from redkit.errors import ConfigError, DataError, RateLimitExceededError
from redkit.metrics import Recorder
from redkit.metrics.names import capability
from redkit.metrics.prometheus import PrometheusObserver
from redkit.metrics.recorder import read_series, read_top_keys
from redkit.metrics.tracing import TracingObserver

from ..queue.conftest import running


def test_event_names_map_to_capabilities() -> None:
    assert capability("script lock_acquire") == "locks"
    assert capability("script rl_gcra") == "ratelimit"
    assert capability("script sess_create") == capability("script tok_check") == "sessions"
    assert capability("cache.hit") == "cache"
    assert capability("GET") == capability("batch") == "redis"
    assert capability("batch sess_take") == capability("batch tok_check") == "sessions"
    assert capability("call load_user") == "user"


def _exercise(rk: Redkit) -> None:
    cache = rk.cache("products")
    cache.get_or_set("a", lambda: 1)
    cache.get_or_set("a", lambda: 1)
    limiter = rk.rate_limiter("2/minute", name="api")
    for _ in range(3):
        limiter.hit("alice")
    limiter.hit("bob")
    with rk.lock("l"):
        pass


def test_recorder_writes_one_bucket_per_minute(rk: Redkit) -> None:
    recorder = Recorder(rk, interval=60)
    remove = rk.observe(recorder)
    _exercise(rk)
    remove()
    assert rk.run(recorder.flush_flow()) > 0
    assert rk.run(recorder.flush_flow()) == 0  # nothing new: no write at all
    series = rk.run(read_series(rk.keys, minutes=2))
    assert series.total("cache.hit|products") == 1
    assert series.total("cache.load|products") == 1
    assert series.total("ratelimit.rejected|api") == 1
    assert series.total("op|locks") >= 2  # acquire and release
    assert series.total("op|ratelimit") == 4
    assert series.labels("cache.hit") == ["products"]
    assert rk.run(read_top_keys(rk.keys, minutes=2)) == [("api", "alice", 1)]
    bucket = rk.keys.group("metrics").key("m", str(series.minutes[-1]))
    assert 0 < rk.client.ttl(bucket) <= 7200
    with pytest.raises(ConfigError, match="interval"):
        Recorder(rk, interval=0)


def test_recorder_loop_flushes_on_stop(rk: Redkit) -> None:
    recorder = Recorder(rk, interval=30).start()
    rk.rate_limiter("1/minute", name="login").hit("x")
    rk.rate_limiter("1/minute", name="login").hit("x")
    recorder.stop()  # writes what is left
    assert rk.run(read_series(rk.keys, minutes=2)).total("ratelimit.rejected|login") == 1
    assert rk.observers == []


async def test_async_recorder(ark: AsyncRedkit) -> None:
    recorder = await Recorder(ark, interval=30).astart()
    cache = ark.cache("c")
    await cache.get_or_set("k", lambda: 2)
    await recorder.astop()
    series = await ark.run(read_series(ark.keys, minutes=2))
    assert series.total("cache.load|c") == 1
    assert ark.observers == []


def test_prometheus_counts_every_capability(rk: Redkit) -> None:
    registry = CollectorRegistry()
    rk.observe(PrometheusObserver(registry))
    _exercise(rk)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    notes = dict(samples)
    assert notes[("redkit_notes_total", (("name", "products"), ("note", "cache.hit")))] == 1
    assert notes[("redkit_notes_total", (("name", "api"), ("note", "ratelimit.rejected")))] == 1
    ops = {labels: v for (name, labels), v in samples.items() if name == "redkit_operations_total"}
    caps = {dict(labels)["capability"] for labels in ops}
    assert {"cache", "ratelimit", "locks"} <= caps
    assert samples[("redkit_operation_seconds_count", (("capability", "ratelimit"),))] == 4


def test_tracing_makes_a_span_per_operation(rk: Redkit) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = TracingObserver(provider)
    rk.observe(observer)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        rk.cache("products").get_or_set("a", lambda: 1)
        limiter = rk.rate_limiter("1/minute", name="api")
        limiter.hit("k")
        with pytest.raises(RateLimitExceededError):
            limiter.acquire("k", timeout=0)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    request = spans["request"]
    gcra = spans["script rl_gcra"]
    assert gcra.attributes is not None
    assert gcra.attributes["redkit.capability"] == "ratelimit"
    assert gcra.parent is not None
    assert gcra.parent.span_id == request.context.span_id
    assert [e.name for e in request.events].count("ratelimit.rejected") == 1
    assert "cache.load" in [e.name for e in request.events]
    key = rk.keys.group("x").key("s")
    rk.client.set(key, "text")
    with pytest.raises(DataError):
        rk.run(ops.command("HGET", key, "f"))
    (failed,) = [s for s in exporter.get_finished_spans() if s.name == "HGET"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.events[0].name == "exception"


def test_the_grafana_dashboard_queries_metrics_that_exist(rk: Redkit) -> None:
    import json
    import re
    from pathlib import Path

    board = json.loads((Path(__file__).parents[2] / "docs/grafana/redkit.json").read_text())
    registry = CollectorRegistry()
    rk.observe(PrometheusObserver(registry))
    _exercise(rk)
    exposed = {
        s.name
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    } | {"redkit_queue_jobs", "redkit_queue_workers"}
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        for name in re.findall(r"\bredkit_[a-z_]+", expr):
            assert name in exposed, f"{name} in {expr!r} is not a metric redkit exposes"


def test_a_workers_claims_reach_the_queues_observers(rk: Redkit) -> None:
    seen: list[str] = []
    rk.observe(lambda event: seen.append(event.name))
    q = rk.queue("observed")

    @q.task
    def noop() -> None:
        return None

    job = noop.enqueue()
    with running(q):
        job.result(timeout=10)
    assert "XADD" in seen  # a plain job: one command
    assert "script queue_take" in seen  # run on the worker's own connections


def test_recorder_memory_is_bounded_between_writes(rk: Redkit) -> None:
    recorder = Recorder(rk, top_keys=2)
    for i in range(1000):
        note = ops.Note("ratelimit.rejected", ("api", f"ip-{i}"))
        recorder(ops.Event(note.name, 0.0, None, note, note.data))
    for _ in range(5):
        note = ops.Note("ratelimit.rejected", ("api", "ip-0"))
        recorder(ops.Event(note.name, 0.0, None, note, note.data))
    rk.run(recorder.flush_flow())
    top = rk.run(read_top_keys(rk.keys, minutes=2))
    assert len(top) == 2  # trimmed to top_keys in Redis
    assert top[0] == ("api", "ip-0", 6)
    assert rk.run(read_series(rk.keys, minutes=2)).total("ratelimit.rejected|api") == 1005
