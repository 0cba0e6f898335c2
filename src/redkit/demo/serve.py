"""Serve the demo with uvicorn on a socket bound beforehand, saying so once it serves.

Binding first turns a busy port into one clear error before anything starts; the
``on_ready`` callback runs only after the app's startup (catalog, signing key) succeeded
and the server accepts connections, so the URL is printed when it works.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); OSError when busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def serve(app: Any, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Run ``app`` on ``sock`` until Ctrl-C; ``on_ready()`` once it serves."""
    config = uvicorn.Config(app, log_level="warning")
    # uvicorn re-raises the Ctrl-C it handled once it has stopped: that is a normal end
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, on_ready).run(sockets=[sock])
