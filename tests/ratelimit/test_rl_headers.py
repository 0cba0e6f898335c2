"""The HTTP presentation: IETF RateLimit fields, Retry-After, problem+json."""

from __future__ import annotations

import json
import math

from redkit.ratelimit import Limit, LimitState, RateLimitResult
from redkit.ratelimit.http import fingerprint, headers, problem


def _result(allowed: bool, retry: float) -> RateLimitResult:
    states = (
        LimitState(Limit(10, 1), 0 if not allowed else 7, 0.4),
        LimitState(Limit(1000, 3600), 993, 3597.2),
    )
    return RateLimitResult(allowed, retry, states)


def test_admitted_headers() -> None:
    got = dict(headers(_result(True, 0.0)))
    assert got == {
        "RateLimit-Policy": '"10-per-1s";q=10;w=1, "1000-per-3600s";q=1000;w=3600',
        "RateLimit": '"10-per-1s";r=7;t=1, "1000-per-3600s";r=993;t=3598',
    }


def test_rejected_headers_and_problem() -> None:
    result = _result(False, 0.25)
    got = dict(headers(result))
    assert got["Retry-After"] == "1"
    assert got["RateLimit"].startswith('"10-per-1s";r=0;t=1')
    body = json.loads(problem(result, "/x"))
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"
    assert body["instance"] == "/x"
    never = dict(headers(_result(False, math.inf)))
    assert never["Retry-After"] == "86400"


def test_burst_is_the_quota_and_fingerprints_hide_secrets() -> None:
    states = (LimitState(Limit(1, 60, 5), 4, 12.0),)
    got = dict(headers(RateLimitResult(True, 0.0, states)))
    assert got["RateLimit-Policy"] == '"1-per-60s-b5";q=5;w=60'
    print_ = fingerprint("sk_live_secret")
    assert "secret" not in print_
    assert print_ == fingerprint(b"sk_live_secret")
