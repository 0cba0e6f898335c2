"""Two demo processes on one server: sessions, rate limits and invalidations are shared."""

from __future__ import annotations

import httpx

from redkit.demo.limits import LOGIN_POLICY

from .demo_process import demo_process

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
