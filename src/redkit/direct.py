"""The sync driver's command path: redis-py's, without the layers redkit does not use.

``Redis.execute_command`` takes a pooled connection, sends the command, reads the reply
under the connection's ``Retry`` and applies the client's reply callback. Since redis-py
5.3 it also times every command for its own observability hooks, dispatches events and
checks for a special command on each call; on a loopback server that is about a fifth of
a command's client-side cost. :class:`DirectExecute` does the same steps as
``execute_command`` (the same pool, the same retries with the same backoff, the same
disconnect on failure, the same reply callbacks, the same reconnect after a maintenance
notification) and nothing else. redkit reports every call to its own observers
(:meth:`redkit.client.CoreBase.observe`), which is where its metrics and traces come from.

It is used only for a plain ``redis.Redis`` whose ``execute_command`` is redis-py's own:
a subclass that overrides it, or an instrumentation that wraps it (OpenTelemetry's
redis instrumentation does), keeps its own path, and so do cluster clients and
single-connection clients.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from typing import Any

import redis
import redis.utils

# redis-py packs commands with hiredis when it is installed (HiredisRespSerializer)
_hiredis_pack: Any = None
with contextlib.suppress(ImportError):
    from hiredis import pack_command as _hiredis_pack

# redis-py before 5.3 needs the command's name to hand out a connection; later it warns
_NAMED = (
    inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default
    is inspect.Parameter.empty
)


def supports(client: Any) -> bool:
    """Whether ``client``'s commands may take :class:`DirectExecute`."""
    if type(client) is not redis.Redis or "execute_command" in vars(client):
        return False
    execute = redis.Redis.__dict__.get("execute_command")
    return (  # redis-py's own function (a wrapper's type is not FunctionType)
        type(execute) is types.FunctionType
        and execute.__module__ == "redis.client"
        and client.connection is None  # a single-connection client has one
    )


class DirectExecute:
    """``execute(*args)``: one command on ``client``'s pool, as ``execute_command`` runs it
    (positional arguments only: redkit passes no options)."""

    __slots__ = ("_callbacks", "_hiredis", "_pool")

    def __init__(self, client: redis.Redis) -> None:
        self._pool: Any = client.connection_pool
        self._callbacks: dict[Any, Any] = client.response_callbacks
        # the pool's connections pack with hiredis (no packer of the user's own): so may we
        self._hiredis = (
            _hiredis_pack is not None
            and redis.utils.HIREDIS_AVAILABLE
            and self._pool.connection_kwargs.get("command_packer") is None
        )

    def __call__(self, *args: Any) -> Any:
        pool = self._pool
        conn: Any = pool.get_connection(args[0]) if _NAMED else pool.get_connection()
        packed = None
        head = args[0]
        if self._hiredis and type(head) is str and " " not in head:
            # what redis-py's HiredisRespSerializer sends, without its per-call argument
            # scan (it splits a command name with a space and turns a bytearray into bytes:
            # those, and what hiredis refuses, take redis-py's path)
            try:
                packed = [_hiredis_pack(args)]
            except TypeError:
                packed = None

        def attempt() -> Any:
            if packed is None:
                conn.send_command(*args)
            else:
                conn.send_packed_command(packed)
            return conn.read_response()

        try:
            reply = conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())
        finally:
            try:
                if getattr(conn, "_should_reconnect", False):  # a maintenance notification
                    conn.disconnect()
                    conn.connect()
            finally:
                pool.release(conn)
        callback = self._callbacks.get(args[0])
        return reply if callback is None else callback(reply)
