"""Observability fed by ``rk.observe``: compact counters in Redis for the dashboard
(:class:`~redkit.metrics.recorder.Recorder`), Prometheus metrics
(:mod:`redkit.metrics.prometheus`, optional) and OpenTelemetry spans
(:mod:`redkit.metrics.tracing`, optional)."""

from redkit.metrics.recorder import Recorder, Series

__all__ = ["Recorder", "Series"]
