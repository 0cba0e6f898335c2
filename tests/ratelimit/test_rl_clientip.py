"""Client IP: the socket peer unless a trusted proxy says otherwise, walked right to left."""

from __future__ import annotations

import pytest

from redkit.errors import ConfigError
from redkit.integrations.clientip import TrustedProxies, client_ip, forwarded_for, parse_ip

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])


def test_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    headers = {"X-Forwarded-For": "1.1.1.1", "Forwarded": "for=2.2.2.2"}
    assert client_ip("203.0.113.9", headers, PROXIES) == "203.0.113.9"
    assert client_ip("203.0.113.9", headers, PROXIES, header="forwarded") == "203.0.113.9"
    assert client_ip("203.0.113.9", headers) == "203.0.113.9", "nothing trusted by default"


def test_walks_right_to_left_past_trusted_proxies_only() -> None:
    # the client sent "6.6.6.6" itself; our proxies appended the real hops
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7"), (b"x-forwarded-for", b"10.1.1.1")]
    assert client_ip("10.0.0.2", headers, PROXIES) == "198.51.100.7"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.2", {"x-forwarded-for": "10.9.9.9, 10.1.1.1"}, PROXIES) == "10.9.9.9"


def test_trusted_peer_without_header_is_the_client() -> None:
    assert client_ip("10.0.0.2", {}, PROXIES) == "10.0.0.2"


def test_garbage_stops_at_the_last_trusted_hop() -> None:
    headers = {"X-Forwarded-For": "1.2.3.4, not-an-ip, 10.1.1.1"}
    assert client_ip("10.0.0.2", headers, PROXIES) == "10.1.1.1"


def test_forwarded_header() -> None:
    value = 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=198.51.100.8;by=x'
    assert forwarded_for([value]) == ["6.6.6.6", '"[2001:db8:cafe::17]:4711"', "198.51.100.8"]
    headers = {"Forwarded": value}
    assert client_ip("10.0.0.2", headers, PROXIES, header="forwarded") == "198.51.100.8"
    trusted = TrustedProxies(["10.0.0.0/8", "198.51.100.0/24"])
    assert client_ip("10.0.0.2", headers, trusted, header="forwarded") == "2001:db8:cafe::17"
    hidden = {"Forwarded": "for=_hidden, for=unknown"}
    assert client_ip("10.0.0.2", hidden, PROXIES, header="forwarded") == "10.0.0.2"


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4:8080 ", "1.2.3.4"),
        ("[::1]:80", "::1"),
        ('"[2001:db8::1]"', "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("nope", None),
        ("", None),
        ("[::1", None),
    ],
)
def test_parse_ip(text: str, ip: str | None) -> None:
    parsed = parse_ip(text)
    assert (None if parsed is None else str(parsed)) == ip


def test_named_networks_and_errors() -> None:
    trusted = TrustedProxies(["loopback", "private"])
    assert client_ip("127.0.0.1", {"X-Forwarded-For": "192.168.1.1, 8.8.8.8"}, trusted) == "8.8.8.8"
    assert client_ip(None, {}) is None
    with pytest.raises(ConfigError, match="trusted proxy"):
        TrustedProxies(["10.0.0.0/33"])
    with pytest.raises(ConfigError, match="proxy header"):
        client_ip("10.0.0.1", {}, PROXIES, header="x-real-ip")
