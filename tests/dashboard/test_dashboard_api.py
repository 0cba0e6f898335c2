"""The dashboard's JSON API, auth hook, read-only mode and /metrics (Starlette's TestClient)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit
from redkit.dashboard import create_dashboard
from redkit.errors import ConfigError

ACT = {"X-Redkit-Dashboard": "1"}


@pytest.fixture
def client(target_url: str, prefix: str) -> Iterator[TestClient]:
    app = create_dashboard(AsyncRedkit(target_url, prefix=prefix), queues=["named"])
    with TestClient(app) as test_client:
        yield test_client


def test_queues_jobs_and_actions(client: TestClient, rk: Redkit) -> None:
    q = rk.queue("emails")
    job = q.enqueue("send", "a@b.c", job_id="welcome:1")
    q.enqueue("send", "later", job_id="later", delay=3600)
    assert client.get("/").status_code == 200
    assert "app.js" in client.get("/").text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../app.py").status_code == 404

    queues = {q["name"]: q for q in client.get("/api/queues").json()}
    assert set(queues) == {"emails", "named"}  # found by SCAN, and named in the options
    assert queues["emails"]["counts"]["waiting"] == 1
    assert queues["emails"]["counts"]["delayed"] == 1
    detail = client.get("/api/queue", params={"queue": "emails"}).json()
    assert detail["history"][-1]["waiting"] == 1  # sampled for the chart
    listed = client.get("/api/jobs", params={"queue": "emails", "state": "waiting"}).json()
    assert [j["id"] for j in listed] == ["welcome:1"]
    one = client.get("/api/job", params={"queue": "emails", "id": "welcome:1"}).json()
    assert one["payload"] == {"args": ["a@b.c"], "kwargs": {}}
    assert one["attempts"] == 0
    assert client.get("/api/job", params={"queue": "emails", "id": "nope"}).status_code == 404
    assert client.get("/api/jobs", params={"queue": "emails", "state": "x"}).status_code == 400
    assert client.get("/api/job", params={"queue": "emails"}).status_code == 400  # no id
    slashed = q.enqueue("send", "x", job_id="tenant/7 #1")  # any character
    found = client.get("/api/job", params={"queue": "emails", "id": "tenant/7 #1"}).json()
    assert found["id"] == slashed.id

    # actions need the header a cross-site form cannot send
    assert client.post("/api/job/promote?queue=emails&id=later").status_code == 403
    promoted = client.post("/api/job/promote?queue=emails&id=later", headers=ACT)
    assert promoted.json() == {"ok": True, "result": True}
    assert q.job("later").status() == "waiting"
    assert client.post(
        "/api/job/delete", params={"queue": "emails", "id": "welcome:1"}, headers=ACT
    ).json()["result"]
    assert job.status() is None
    purged = client.post("/api/queue/purge?queue=emails&state=waiting", headers=ACT).json()
    assert purged["result"] == 2
    assert client.post("/api/queue/explode?queue=emails", headers=ACT).status_code == 400
    assert client.post("/api/queue/pause?queue=emails", headers=ACT).json()["result"] is True
    assert q.is_paused()
    assert client.get("/api/queues").json()[0]["paused"] is True
    assert client.post("/api/queue/resume?queue=emails", headers=ACT).json()["result"] is True
    assert not q.is_paused()


def test_grouped_jobs_and_blocked_parents_in_the_queue_panel(
    client: TestClient, rk: Redkit
) -> None:
    q = rk.queue("tenants")
    q.enqueue("send", "a", job_id="grouped", group="acme")
    q.enqueue_flow(("report", ()), [("part", (1,))], job_id="parent")
    (found,) = [x for x in client.get("/api/queues").json() if x["name"] == "tenants"]
    assert (found["counts"]["waiting"], found["counts"]["blocked"]) == (2, 1)
    listed = client.get("/api/jobs", params={"queue": "tenants", "state": "waiting"}).json()
    assert listed[0]["id"] == "grouped"
    blocked = client.get("/api/jobs", params={"queue": "tenants", "state": "blocked"}).json()
    assert [j["id"] for j in blocked] == ["parent"]
    params = {"queue": "tenants", "state": "blocked"}
    assert client.post("/api/queue/purge", params=params, headers=ACT).json()["result"] == 1
    params["state"] = "waiting"
    assert client.post("/api/queue/purge", params=params, headers=ACT).json()["result"] == 2
    assert q.counts()["waiting"] == 0


def test_read_only_and_auth_hook(target_url: str, prefix: str, rk: Redkit) -> None:
    rk.queue("q").enqueue("t", job_id="j")

    async def allow(request: Request) -> bool | RedirectResponse:
        if request.headers.get("x-user") == "admin":
            return True
        if request.headers.get("x-user"):
            return False
        return RedirectResponse("/login")

    app = create_dashboard(AsyncRedkit(target_url, prefix=prefix), auth=allow, read_only=True)
    with TestClient(app, follow_redirects=False) as c:
        assert c.get("/api/queues").status_code == 307
        assert c.get("/", headers={"x-user": "eve"}).status_code == 403
        admin = {"x-user": "admin"}
        assert c.get("/api/overview", headers=admin).json()["read_only"] is True
        refused = c.post("/api/job/delete?queue=q&id=j", headers={**admin, **ACT})
        assert refused.status_code == 403
        assert "read-only" in refused.json()["error"]
    assert rk.queue("q").job("j").status() == "waiting"


def test_two_dashboards_in_one_process_are_independent(target_url: str, rk: Redkit) -> None:
    other = Redkit(target_url, prefix=rk.keys.prefix + "b")
    rk.queue("mine").enqueue("t")
    other.queue("theirs").enqueue("t")
    a = create_dashboard(AsyncRedkit(target_url, prefix=rk.keys.prefix))
    b = create_dashboard(AsyncRedkit(target_url, prefix=other.keys.prefix), read_only=True)
    parent = Starlette(routes=[Mount("/a", a), Mount("/b", b)])
    with TestClient(parent) as c:
        assert [q["name"] for q in c.get("/a/api/queues").json()] == ["mine"]
        assert [q["name"] for q in c.get("/b/api/queues").json()] == ["theirs"]
        assert c.get("/b/api/overview").json()["read_only"] is True
        assert c.get("/a/api/overview").json()["read_only"] is False
    other.queue("theirs").purge("waiting")
    other.close()
    with pytest.raises(ConfigError, match="poll"):
        create_dashboard(AsyncRedkit(target_url, prefix="x"), poll=0)


def test_metrics_endpoint_is_scraped_and_parsed(target_url: str, prefix: str, rk: Redkit) -> None:
    ark = AsyncRedkit(target_url, prefix=prefix)
    rk.queue("emails").enqueue("send", job_id="one")
    app = Starlette()

    async def page(request: Request) -> object:  # the app's own work, observed
        cache = ark.cache("products")
        await cache.get_or_set("p1", lambda: {"price": 3})
        await cache.get_or_set("p1", lambda: {"price": 3})
        limiter = ark.rate_limiter("1/minute", name="api")
        await limiter.hit("alice")
        await limiter.hit("alice")
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ok")

    app.add_route("/page", page)
    app.mount("/dashboard", create_dashboard(ark))
    with TestClient(app) as c:
        assert c.get("/page").text == "ok"
        scraped = c.get("/dashboard/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    assert samples[("redkit_notes_total", (("name", "products"), ("note", "cache.hit")))] == 1
    assert samples[("redkit_notes_total", (("name", "api"), ("note", "ratelimit.rejected")))] == 1
    assert samples[("redkit_queue_jobs", (("queue", "emails"), ("state", "waiting")))] == 1
    assert samples[("redkit_queue_workers", (("queue", "emails"),))] == 0
    ratelimit_ops = [
        v for (name, labels), v in samples.items()
        if name == "redkit_operations_total" and ("capability", "ratelimit") in labels
    ]  # fmt: skip
    assert sum(ratelimit_ops) == 2  # the app's two checks; the dashboard's reads are not counted


def test_demo_mounts_the_dashboard(target_url: str, prefix: str, rk: Redkit) -> None:
    from redkit.demo.app import create_app

    rk.queue("demo-q").enqueue("t")
    app = create_app(AsyncRedkit(target_url, prefix=prefix), jwt_key="k" * 32)
    with TestClient(app) as c:
        assert "redkit dashboard" in c.get("/dashboard/").text
        assert "dashboard/" in c.get("/").text
        names = [q["name"] for q in c.get("/dashboard/api/queues").json()]
        assert "demo-q" in names


def test_events_lag_per_group_and_dead_letters(client: TestClient, rk: Redkit) -> None:
    assert client.get("/api/events").json() == {"topics": [], "dead_letters": []}
    orders = rk.events.topic("orders", durable=True)
    billing = orders.consumer("billing", count=2)
    billing.create()
    orders.publish_many([{"order": i} for i in range(5)])
    billing.read(timeout=1)
    rk.events.publish("news", {"fan-out": True})
    data = client.get("/api/events").json()
    topics = {t["name"]: t for t in data["topics"]}
    (group,) = topics["orders"]["groups"]
    assert (group["name"], group["pending"], group["lag"]) == ("billing", 2, 3)
    assert topics["orders"]["length"] == 5
    assert topics["news"]["sequence"] == 1
    assert data["dead_letters"] == []
