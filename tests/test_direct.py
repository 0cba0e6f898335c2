"""The sync driver's direct command path: the same replies, errors, retries and pool as
redis-py's ``execute_command``, and only for clients whose path it may replace."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
import redis

from redkit import Redkit, Settings, direct, errors, ops
from redkit.scripts import Script

from .flavours import poll

ECHO = Script("test_direct_echo", b"return ARGV[1]", hashlib.sha1(b"return ARGV[1]").hexdigest(), 1)


def _direct(rk: Redkit) -> bool:
    return isinstance(rk._driver._execute, direct.DirectExecute)


def test_redkit_made_standalone_clients_take_it(target_url: str, rk: Redkit) -> None:
    assert _direct(rk) is not rk.cluster
    if not rk.cluster:
        assert direct.supports(redis.Redis.from_url(target_url))


def test_clients_whose_path_is_their_own_keep_it(standalone_url: str, prefix: str) -> None:
    class Instrumented(redis.Redis):
        def execute_command(self, *args: Any, **options: Any) -> Any:
            return super().execute_command(*args, **options)

    assert not direct.supports(Instrumented.from_url(standalone_url))
    assert not direct.supports(redis.Redis.from_url(standalone_url, single_connection_client=True))
    patched = redis.Redis.from_url(standalone_url)
    patched.execute_command = patched.execute_command  # type: ignore[method-assign]
    assert not direct.supports(patched)
    with Redkit(client=Instrumented.from_url(standalone_url), prefix=prefix) as rk:
        assert not _direct(rk)
        assert rk.ping()


def test_replies_are_those_of_execute_command(target_url: str, rk: Redkit) -> None:
    """Reply callbacks apply as redis-py applies them (SET -> True, HGETALL -> dict ...)."""

    def commands(key: str) -> list[tuple[Any, ...]]:
        return [
            ("SET", key + "s", "v"),
            ("GET", key + "s"),
            ("HSET", key, "a", 1, "b", 2),
            ("HGETALL", key),
            ("EXPIRE", key, 100),
            ("TTL", key),
            ("EXISTS", key),
            ("PING",),
        ]

    group = rk.keys.group("direct")  # one slot: both sets of keys live on one node
    mine = [rk.run(ops.command(*c)) for c in commands(group.key("mine"))]
    theirs = [rk.client.execute_command(*c) for c in commands(group.key("theirs"))]
    assert mine == theirs
    assert mine[0] is True
    assert mine[3] == {b"a": b"1", b"b": b"2"}


def test_errors_and_scripts(rk: Redkit) -> None:
    key = rk.keys.group("direct").key("text")
    rk.run(ops.command("SET", key, "abc"))
    with pytest.raises(errors.RedisCommandError, match="not an integer"):
        rk.run(ops.command("INCR", key))
    rk.client.script_flush()  # the next EVALSHA answers NOSCRIPT: loaded and run again
    assert rk.run(ops.evaluate(ECHO, [key], ["back"])) == b"back"
    assert rk.run(ops.evaluate(ECHO, [key], ["again"])) == b"again"


def _cut_while_waiting(rk: Redkit, admin: Redkit, name: str) -> Any:
    """Run ``WAIT 1 1500`` (it blocks 1.5 s: no replica answers) on ``rk``'s connection
    named ``name`` and close that connection on the server while the command waits."""
    rk.run(ops.command("CLIENT", "SETNAME", name))  # the one pooled connection
    outcome: list[Any] = []

    def wait() -> None:
        try:
            outcome.append(rk.run(ops.command("WAIT", 1, 1500)))
        except errors.RedkitError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    # blocked now ("b"): once WAIT has returned, CLIENT LIST still says cmd=wait
    ids = poll(
        lambda: [
            c["id"]
            for c in admin.client.client_list()
            if c["name"] == name and c["cmd"] == "wait" and "b" in c["flags"]
        ],
        15.0,
    )
    for client_id in ids:
        admin.client.client_kill_filter(_id=client_id)
    waiter.join(10)
    return outcome[0]


def test_a_connection_lost_mid_command_is_retried_like_redis_py(
    standalone_url: str, prefix: str
) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk, Redkit(standalone_url) as admin:
        assert _direct(rk)
        assert _cut_while_waiting(rk, admin, "direct-" + prefix) == 0  # sent again, answered
        settings = Settings.from_env(url=standalone_url, prefix=prefix, retries=0)
        with Redkit(settings=settings) as once:
            assert _direct(once)
            lost = _cut_while_waiting(once, admin, "once-" + prefix)
            assert isinstance(lost, errors.ConnectionError)  # no retries: the loss is the error
            assert once.run(ops.command("PING")) is True  # and the next call connects anew


def test_threads_share_the_pool(rk: Redkit) -> None:
    key = rk.keys.group("direct").key("count")
    threads, each = 8, 300

    def work() -> None:
        for _ in range(each):
            rk.run(ops.command("INCR", key))

    running = [threading.Thread(target=work) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert int(rk.run(ops.command("GET", key))) == threads * each
    if not rk.cluster:
        pool = rk.client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= threads
        assert not pool._in_use_connections  # every connection went back


def test_it_sends_the_bytes_redis_py_sends(standalone_url: str) -> None:
    """Packed with hiredis at once, the command is byte for byte what redis-py's own
    packer sends; arguments that packer reshapes (a command name with a space, a
    bytearray) or refuses take redis-py's path, with redis-py's result."""
    client = redis.Redis.from_url(standalone_url)
    run = direct.DirectExecute(client)
    assert run._hiredis
    conn = client.connection_pool.get_connection()
    try:
        for args in [
            ("SET", "k", "välue"), ("SET", b"k", b"\x00\xff"), ("ECHO", 12), ("ECHO", 1.5),
            ("ECHO", 10**20), ("ECHO", memoryview(b"view")), ("ECHO", "")
        ]:  # fmt: skip
            assert direct._hiredis_pack(args) == b"".join(conn.pack_command(*args))
    finally:
        client.connection_pool.release(conn)
    key = "redkit-test-direct-bytes"
    try:
        assert run("SET", key, bytearray(b"from a bytearray")) is True
        assert run("GET", key) == b"from a bytearray"
        assert run("CONFIG GET", "maxmemory-policy") == client.config_get("maxmemory-policy")
        with pytest.raises(redis.DataError):
            run("SET", key, None)
    finally:
        client.delete(key)
        client.close()
