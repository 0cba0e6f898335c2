"""Two demo processes on one server: sessions, rate limits and invalidations are shared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import psutil

from redkit.demo.limits import LOGIN_POLICY
from redkit.embedded import free_port

from .demo_process import demo_process, wait_until_up

LOGIN = {"username": "alice", "password": "redkit"}


def test_two_instances_share_sessions_limits_and_invalidations(
    target_url: str, prefix: str
) -> None:
    with (
        demo_process(target_url, prefix) as a_url,
        demo_process(target_url, prefix) as b_url,
        httpx.Client(base_url=a_url) as a,
        httpx.Client(base_url=b_url) as b,
    ):
        # a session made on A is valid on B
        cookie = a.post("/login", json=LOGIN).cookies["session"]
        b.cookies.set("session", cookie)
        assert b.get("/me").json() == {"user": "alice"}

        # B caches the product list; a price change on A is seen by B
        assert b.get("/products").json()["cache"] == "miss"
        assert b.get("/products").json()["cache"] == "hit"
        a.cookies.set("session", cookie)
        assert a.put("/products/2", json={"price": 11.0}).status_code == 200
        seen = b.get("/products").json()
        assert seen["cache"] == "miss"
        assert {p["id"]: p["price"] for p in seen["products"]}["2"] == 11.0

        # the login limit is one budget across both instances
        allowed = int(LOGIN_POLICY.split("/")[0])
        wrong = {"username": "bob", "password": "wrong"}
        statuses = [
            (a if i % 2 else b).post("/login", json=wrong).status_code for i in range(allowed - 1)
        ]  # one login was spent above
        assert statuses == [401] * (allowed - 1)
        assert a.post("/login", json=wrong).status_code == 429
        assert b.post("/login", json=wrong).status_code == 429


def test_two_instances_without_a_secret_accept_each_others_tokens(
    target_url: str, prefix: str
) -> None:
    with (
        demo_process(target_url, prefix, secret=None) as a_url,
        demo_process(target_url, prefix, secret=None) as b_url,
    ):
        token = httpx.post(a_url + "/login", json=LOGIN).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(b_url + "/token-check", headers=auth).json()["valid"] is True
        assert httpx.get(a_url + "/token-check", headers=auth).status_code == 200


def test_ctrl_c_stops_the_demo_and_its_embedded_server() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDKIT_PREFIX")}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process)
        servers = [p for p in psutil.Process(process.pid).children() if "valkey" in p.name()]
        assert len(servers) == 1, "the demo should run on its own embedded server"
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
        _, alive = psutil.wait_procs(servers, timeout=10)
        assert not alive, "the embedded server outlived the demo"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
