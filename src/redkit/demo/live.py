"""The live orders panel: every order placed on any demo instance, pushed to every page.

Placing an order publishes ``order:created`` on a durable topic (see
:mod:`redkit.demo.orders`); ``GET /events/orders`` relays that topic to the page as
Server-Sent Events. The page's ``EventSource`` resumes after a dropped connection with
``Last-Event-ID``, so an order placed while the connection was down still shows up.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from redkit import AsyncRedkit
from redkit.events import AsyncTopic
from redkit.integrations.asgi.events import EventStream

TOPIC = "order:created"


def topic(ark: AsyncRedkit) -> AsyncTopic:
    """The topic new orders are published to (the last thousand are kept)."""
    return ark.events.topic(TOPIC, durable=True, maxlen=1000)


def install(app: FastAPI, ark: AsyncRedkit) -> None:
    """Serve ``GET /events/orders``: the orders topic as Server-Sent Events."""
    stream = EventStream(topic(ark), heartbeat=15.0)
    app.router.routes.append(Route("/events/orders", stream, methods=["GET"]))
