"""Prometheus metrics for every capability, fed by an observer (``prometheus-client``).

::

    from redkit.metrics.prometheus import PrometheusObserver

    metrics = PrometheusObserver()        # registers in prometheus_client's default registry
    rk.observe(metrics)

Exposed (``namespace`` defaults to ``redkit``):

* ``redkit_operations_total{capability, operation, outcome}``: every command, script,
  batch, wait and call into user code, ``outcome`` ``ok`` or ``error``;
* ``redkit_operation_seconds{capability}``: their durations (a histogram);
* ``redkit_notes_total{note, name}``: what capabilities decided (``cache.hit`` with the
  namespace, ``ratelimit.rejected`` with the limiter's name ...). Rate-limited keys are
  never labels (one series per key would be unbounded); the dashboard ranks them.

Install the extra: ``pip install 'redkit[metrics]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redkit._lazy import require
from redkit.metrics.names import capability, is_note, note_label

if TYPE_CHECKING:
    from redkit.ops import Event

#: Histogram buckets in seconds: Redis calls take tens of microseconds to a few ms.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class PrometheusObserver:
    """An observer that counts and times every event in Prometheus metrics.

    Args:
        registry: a ``prometheus_client.CollectorRegistry`` (default: the global one).
        namespace: the metric name prefix.
    """

    def __init__(self, registry: Any = None, namespace: str = "redkit") -> None:
        prom = require("prometheus_client", "metrics", "prometheus-client")
        self.registry = registry if registry is not None else prom.REGISTRY
        self.operations = prom.Counter(
            "operations", "Redis operations run by redkit.",
            ("capability", "operation", "outcome"), namespace=namespace, registry=self.registry,
        )  # fmt: skip
        self.seconds = prom.Histogram(
            "operation_seconds", "Duration of redkit's Redis operations.", ("capability",),
            namespace=namespace, registry=self.registry, buckets=BUCKETS,
        )  # fmt: skip
        self.notes = prom.Counter(
            "notes", "Decisions reported by redkit capabilities (cache hits, rejections ...).",
            ("note", "name"), namespace=namespace, registry=self.registry,
        )  # fmt: skip

    def __call__(self, event: Event) -> None:
        """Count ``event`` (the observer protocol)."""
        if is_note(event):
            self.notes.labels(event.name, note_label(event.data)).inc()
            return
        cap = capability(event.name)
        outcome = "ok" if event.error is None else "error"
        self.operations.labels(cap, event.name, outcome).inc()
        self.seconds.labels(cap).observe(event.seconds)


def exposition(registry: Any = None) -> tuple[bytes, str]:
    """The registry's metrics in the Prometheus text format, and its content type."""
    prom = require("prometheus_client", "metrics", "prometheus-client")
    return prom.generate_latest(registry or prom.REGISTRY), prom.CONTENT_TYPE_LATEST
