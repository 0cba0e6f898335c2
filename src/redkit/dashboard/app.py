"""The dashboard as a Starlette app: :func:`create_dashboard` builds one (no module state).

::

    from redkit.dashboard import create_dashboard

    app.mount("/dashboard", create_dashboard(ark, auth=is_admin))

Routes (relative to where it is mounted): ``/`` the page, ``/static/*`` its assets (in
the package: it works offline), ``/api/*`` JSON, ``/metrics`` Prometheus text.
Actions are POSTs that must carry the header ``X-Redkit-Dashboard: 1``: a form on
another site cannot set it, so a logged-in admin's browser cannot be made to purge a
queue by a link.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from redkit.dashboard.data import Dashboard
from redkit.errors import ConfigError, RedkitError

if TYPE_CHECKING:
    from redkit.facade import AsyncRedkit

Auth = Callable[[Request], "bool | Response | Awaitable[bool | Response]"]
ACTION_HEADER = "x-redkit-dashboard"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def create_dashboard(
    ark: AsyncRedkit,
    *,
    queues: Sequence[str] = (),
    auth: Auth | None = None,
    read_only: bool = False,
    record: bool = True,
    metrics: bool | None = None,
    registry: Any = None,
    minutes: int = 30,
    poll: float = 2.0,
    sample_every: float = 5.0,
) -> Starlette:
    """The dashboard for ``ark``'s Redis (its prefix), as a Starlette app to mount or serve.

    Args:
        ark: the application's asyncio facade.
        queues: queue names to show besides those found in Redis.
        auth: ``auth(request)`` (sync or async) returns True to let a request in, False
            to refuse it (403), or a response to send instead (a redirect to your login
            page, a 401 asking for credentials). Every route asks it, the page and the
            metrics included. None lets everyone in: mount it behind your own auth.
        read_only: show everything, refuse every action.
        record: observe ``ark`` with a :class:`~redkit.metrics.Recorder`, so the charts
            fill (other processes start their own to be counted).
        metrics: serve ``/metrics`` in the Prometheus format and observe ``ark`` with a
            :class:`~redkit.metrics.prometheus.PrometheusObserver` (default: when
            ``prometheus-client`` is installed; True requires it).
        registry: the ``prometheus_client`` registry to fill and serve (default: one of
            this dashboard's own).
        minutes: how far back the charts reach.
        poll: seconds between the page's refreshes.
        sample_every: seconds between two samples of a queue's counts for its chart
            (taken while someone watches; kept in Redis, 360 samples per queue).
    """
    if not (isinstance(poll, (int, float)) and 0.2 <= poll <= 300):
        raise ConfigError(f"poll must be from 0.2 to 300 seconds, got {poll!r}")
    board = Dashboard(
        ark, queues=queues, read_only=read_only, record=record, minutes=minutes,
        sample_every=sample_every,
    )  # fmt: skip
    if metrics is None:
        metrics = importlib.util.find_spec("prometheus_client") is not None
    exporter = _Exporter(ark, board, registry) if metrics else None
    guard = _Guard(auth, board)

    async def page(request: Request) -> Response:
        html = _asset("index.html").decode().replace("__POLL_MS__", str(int(poll * 1000)))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("app.js", "app.css"):
            return Response(status_code=404)
        return Response(_asset(name), media_type=_TYPES[name[name.rindex(".") :]])

    routes = [
        Route("/", guard(page)),
        Route("/static/{name}", guard(static)),
        Route("/api/overview", guard(lambda r: board.overview())),
        Route("/api/queues", guard(lambda r: board.queues())),
        Route("/api/queue", guard(lambda r: board.queue_detail(_arg(r, "queue")))),
        Route("/api/jobs", guard(_jobs(board))),
        Route("/api/job", guard(_job(board))),
        Route("/api/job/{action}", guard(_act(board, on_job=True)), methods=["POST"]),
        Route("/api/queue/{action}", guard(_act(board, on_job=False)), methods=["POST"]),
        Route("/api/ratelimits", guard(lambda r: board.ratelimits())),
        Route("/api/caches", guard(lambda r: board.caches())),
        Route("/api/sessions", guard(lambda r: board.sessions())),
        Route("/api/events", guard(lambda r: board.events())),
    ]
    if exporter is not None:
        routes.append(Route("/metrics", guard(exporter.serve)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await board.start()  # run on its own; a parent app's lifespan may call it instead
        yield
        await board.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = board
    return app


def _asset(name: str) -> bytes:
    return resources.files("redkit.dashboard").joinpath("static").joinpath(name).read_bytes()


def _json(data: Any, status: int = 200) -> Response:
    body = orjson.dumps(data, default=repr, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status, media_type="application/json")


class _Guard:
    """Wraps a handler: auth, the first request starts recording, errors as JSON."""

    def __init__(self, auth: Auth | None, board: Dashboard) -> None:
        self.auth, self.board = auth, board

    def __call__(
        self, handler: Callable[[Request], Awaitable[Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if self.auth is not None:
                allowed = self.auth(request)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if isinstance(allowed, Response):
                    return allowed
                if not allowed:
                    return _json({"error": "not allowed"}, 403)
            await self.board.start()
            try:
                result = await handler(request)
            except PermissionError as exc:
                return _json({"error": str(exc)}, 403)
            except ConfigError as exc:
                return _json({"error": str(exc)}, 400)
            except RedkitError as exc:
                return _json({"error": str(exc)}, 503)
            return result if isinstance(result, Response) else _json(result)

        return endpoint


def _arg(request: Request, name: str) -> str:
    """A required query parameter (queue names and job ids may hold any character)."""
    value = request.query_params.get(name)
    if value is None:
        raise ConfigError(f"the query parameter {name!r} is missing")
    return value


def _jobs(board: Dashboard) -> Callable[[Request], Awaitable[Any]]:
    async def handler(request: Request) -> Any:
        query = request.query_params
        try:
            start, count = int(query.get("start", 0)), int(query.get("count", 50))
        except ValueError:
            raise ConfigError("start and count must be integers") from None
        state = query.get("state", "waiting")
        return await board.jobs(_arg(request, "queue"), state, start, min(count, 500))

    return handler


def _job(board: Dashboard) -> Callable[[Request], Awaitable[Any]]:
    async def handler(request: Request) -> Any:
        found = await board.job(_arg(request, "queue"), _arg(request, "id"))
        return found if found is not None else _json({"error": "no such job"}, 404)

    return handler


def _act(board: Dashboard, *, on_job: bool) -> Callable[[Request], Awaitable[Any]]:
    async def handler(request: Request) -> Any:
        if request.headers.get(ACTION_HEADER) != "1":
            return _json({"error": f"actions need the header {ACTION_HEADER}: 1"}, 403)
        job = _arg(request, "id") if on_job else None
        done = await board.act(
            _arg(request, "queue"), request.path_params["action"], job,
            request.query_params.get("state"),
        )  # fmt: skip
        return {"ok": True, "result": done}

    return handler


class _Exporter:
    """``/metrics``: the observer's registry, plus the queues' job counts read at scrape."""

    def __init__(self, ark: AsyncRedkit, board: Dashboard, registry: Any) -> None:
        from redkit._lazy import require
        from redkit.metrics.prometheus import PrometheusObserver

        prom = require("prometheus_client", "metrics", "prometheus-client")
        self.prom, self.board = prom, board
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.observer = PrometheusObserver(self.registry)
        ark.observe(self.observer)
        self.jobs = prom.Gauge(
            "redkit_queue_jobs", "Jobs per queue and state (read when scraped).",
            ("queue", "state"), registry=self.registry,
        )  # fmt: skip
        self.workers = prom.Gauge(
            "redkit_queue_workers", "Live workers per queue (read when scraped).", ("queue",),
            registry=self.registry,
        )  # fmt: skip

    async def serve(self, request: Request) -> Response:
        for queue in await self.board.queues():
            for state, count in queue["counts"].items():
                self.jobs.labels(queue["name"], state).set(count)
            self.workers.labels(queue["name"]).set(queue["workers"])
        body = self.prom.generate_latest(self.registry)
        return Response(body, media_type=self.prom.CONTENT_TYPE_LATEST)
