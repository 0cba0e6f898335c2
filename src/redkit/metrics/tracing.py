"""OpenTelemetry spans for every capability, fed by an observer (the OpenTelemetry API).

::

    from redkit.metrics.tracing import TracingObserver

    rk.observe(TracingObserver())         # the global tracer provider, or pass one

Each command, script, batch, wait and call into user code becomes a span (kind
``CLIENT``; name the event's, such as ``script lock_acquire``; attributes
``db.system.name`` = ``redis``, ``redkit.capability``) in the current trace, so a request
span shows the Redis work done for it. A failed operation sets the span's status to
error with the exception recorded. A capability's notes (``cache.hit``,
``ratelimit.rejected``) become events on the current span. The span is made when the
operation ended, with its measured start and end times.

Only the API is needed (``pip install 'redkit[tracing]'``); with no SDK configured the
spans cost next to nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from redkit._lazy import require
from redkit.metrics.names import capability, is_note, note_label

if TYPE_CHECKING:
    from redkit.ops import Event


class TracingObserver:
    """An observer that records every event as an OpenTelemetry span (or span event).

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` (default: the global one).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        trace = require("opentelemetry.trace", "tracing", "opentelemetry-api")
        self._trace = trace
        self.tracer = trace.get_tracer("redkit", tracer_provider=tracer_provider)
        self._client = trace.SpanKind.CLIENT
        self._error = trace.Status(trace.StatusCode.ERROR)

    def __call__(self, event: Event) -> None:
        """Record ``event`` (the observer protocol)."""
        if is_note(event):
            span = self._trace.get_current_span()
            if span.is_recording():
                span.add_event(event.name, {"redkit.name": note_label(event.data)})
            return
        end = time.time_ns()
        span = self.tracer.start_span(
            event.name,
            kind=self._client,
            start_time=end - int(event.seconds * 1e9),
            attributes={"db.system.name": "redis", "redkit.capability": capability(event.name)},
        )
        if event.error is not None:
            span.record_exception(event.error)
            span.set_status(self._error)
        span.end(end_time=end)
