"""The client's IP address, trusting proxy headers only from proxies you name.

A request's socket peer is the only address nobody can forge. When the app sits behind
proxies (a load balancer, nginx, a CDN), the peer is the nearest proxy and the client is
in ``X-Forwarded-For`` or ``Forwarded`` — headers that anyone can also send. So the
header is read only when the peer is a *trusted proxy*, and then walked right to left
(the rightmost entries were appended by your proxies, the leftmost by whoever sent the
request), stopping at the first address that is not a trusted proxy::

    trusted = TrustedProxies(["10.0.0.0/8"])
    client_ip("10.0.0.5", {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}, trusted)
    # -> "203.0.113.7": 6.6.6.6 was written by the client itself and is ignored

Framework-free: a pure function over the peer address and the headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from redkit.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HeadersLike = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]

_NAMED: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
}
HEADERS = ("x-forwarded-for", "forwarded")


class TrustedProxies:
    """The networks whose proxy headers are believed.

    Args:
        networks: CIDRs or addresses (``"10.0.0.0/8"``, ``"203.0.113.9"``), or the names
            ``"loopback"`` and ``"private"``. Empty (the default) trusts no one, so the
            socket peer is always the client.
    """

    __slots__ = ("_networks",)

    def __init__(self, networks: Iterable[str | Network] | TrustedProxies = ()) -> None:
        if isinstance(networks, TrustedProxies):
            self._networks: tuple[Network, ...] = networks._networks
            return
        if isinstance(networks, str):
            networks = [networks]
        parsed: list[Network] = []
        for net in networks:
            for item in _NAMED.get(net, (net,)) if isinstance(net, str) else (net,):
                try:
                    parsed.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ConfigError(
                        f"trusted proxy {item!r} is not an IP address, a CIDR network, "
                        f"or one of {sorted(_NAMED)}"
                    ) from None
        self._networks = tuple(parsed)

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and any(
            ip in net for net in self._networks
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self._networks]!r})"


def parse_ip(text: str | None) -> IPAddress | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``; else None."""
    if not text:
        return None
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def header_values(headers: HeadersLike | Any, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), in order, from a mapping or pairs."""
    name = name.lower()
    getlist = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
    if callable(getlist):
        return [str(v) for v in getlist(name) or ()]
    if isinstance(headers, Mapping):
        return [str(v) for k, v in headers.items() if str(k).lower() == name]
    return [_text(v) for k, v in headers if _text(k).lower() == name]


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` values, left to right."""
    hops: list[str] = []
    for value in values:
        for element in _split_quoted(value, ","):
            found = ""
            for pair in _split_quoted(element, ";"):
                key, _, val = pair.strip().partition("=")
                if key.strip().lower() == "for":
                    found = val.strip()
            hops.append(found)
    return hops


def _split_quoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def client_ip(
    peer: str | None,
    headers: HeadersLike | Any = (),
    trusted: TrustedProxies | Iterable[str] = (),
    *,
    header: str = "x-forwarded-for",
) -> str | None:
    """The client address: the socket ``peer``, or what trusted proxies say it was.

    Args:
        peer: the socket peer address (``scope["client"][0]``, ``REMOTE_ADDR``).
        headers: the request headers (a mapping, or ``(name, value)`` pairs as in ASGI).
        trusted: the proxies whose ``header`` is believed.
        header: ``"x-forwarded-for"`` (default) or ``"forwarded"`` — the one header your
            proxies set. Only that one is read: a proxy that sets one passes the other
            through from the client unchanged.

    Returns:
        The address as a string, or None when there is no peer (e.g. a unix socket).
    """
    if not isinstance(trusted, TrustedProxies):
        trusted = TrustedProxies(trusted)
    current = parse_ip(peer)
    if current is None:
        return peer or None
    if current not in trusted:
        return str(current)
    hops = _hops(headers, header.lower())
    for raw in reversed(hops):
        ip = parse_ip(raw)
        if ip is None:
            break  # garbage behind a trusted proxy: that proxy is as far as we can see
        current = ip
        if ip not in trusted:
            break
    return str(current)


def _hops(headers: HeadersLike | Any, header: str) -> list[str]:
    if header not in HEADERS:
        raise ConfigError(f"proxy header must be one of {HEADERS}, got {header!r}")
    values = header_values(headers, header)
    if header == "forwarded":
        return forwarded_for(values)
    return [hop for value in values for hop in value.split(",")]
