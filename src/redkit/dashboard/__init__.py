"""The web dashboard: queues, rate limits, caches and sessions in one page.

:func:`create_dashboard` builds a Starlette app (mount it in any FastAPI or Starlette
app, or run ``redkit dashboard``); see ``docs/dashboard.md``.
"""

from redkit.dashboard.app import create_dashboard
from redkit.dashboard.data import Dashboard

__all__ = ["Dashboard", "create_dashboard"]
