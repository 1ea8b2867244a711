"""Where a download may connect: the address classifier, the host allowlist and a resolver
that pins each host to the addresses that were checked.

A URL's host is resolved once per hop; every address it resolves to must be public (or
named literally on the allowlist), and the connection then goes to exactly those addresses,
so a DNS answer that changes between the check and the connect (rebinding) reaches nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LOOKUP_TIMEOUT_S = 20.0


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (NAT64, 6to4, Teredo, IPv4-compatible)."""
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why a download may not connect to this address, or None for a public address.

    Python's `is_global` alone is not enough (it calls multicast, site-local, NAT64 and
    6to4 addresses global), so each kind is checked, and IPv6 forms that carry an IPv4
    address are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            problem = address_problem(ip.ipv4_mapped)
            return f"IPv4-mapped {problem}" if problem else None
        inner = _embedded_ipv4(ip)
        if inner is not None and (problem := address_problem(inner)):
            return f"IPv6-embedded {problem}"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not globally routable"  # e.g. shared address space 100.64.0.0/10
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (brackets and a %-encoded zone allowed)."""
    try:
        return ipaddress.ip_address(unquote(host).strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class AllowEntry:
    """One `--asset-download-host`: a name (its subdomains too) or an address, optionally
    with a port. Only an address entry lets a download reach a non-public address."""

    host: str
    port: int | None
    address: IPAddress | None

    @classmethod
    def parse(cls, text: str) -> "AllowEntry":
        text = text.strip().lower().rstrip(".")
        host, port = text, None
        if text.startswith("["):  # [v6] or [v6]:port
            inside, _, rest = text[1:].partition("]")
            host = inside
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif text.count(":") == 1:
            name, _, digits = text.partition(":")
            if digits.isdigit():
                host, port = name, int(digits)
        return cls(host=host, port=port, address=parse_ip(host))

    def admits_host(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.address is not None:
            return parse_ip(host) == self.address
        host = host.lower().rstrip(".")
        return host == self.host or host.endswith("." + self.host)

    def admits_address(self, ip: IPAddress, port: int) -> bool:
        if self.address is None or (self.port is not None and self.port != port):
            return False
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return ip == self.address or mapped == self.address


def allow_entries(hosts: tuple[str, ...]) -> tuple[AllowEntry, ...]:
    return tuple(AllowEntry.parse(h) for h in hosts if h.strip())


async def lookup(host: str, port: int) -> list[ResolveResult]:
    """Every address the host resolves to (an IP literal: itself), as aiohttp wants them."""
    literal = parse_ip(host)
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [_result(host, str(literal), port, family, 0)]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), _LOOKUP_TIMEOUT_S)
    return [_result(host, str(info[4][0]), port, info[0], info[2]) for info in infos]


def _result(hostname: str, address: str, port: int, family: int, proto: int) -> ResolveResult:
    # Numeric flags: the connection must not look the name up a second time.
    return {"hostname": hostname, "host": address, "port": port, "family": family,
            "proto": proto, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}


def _pin_key(host: str) -> str:
    return host.lower().rstrip(".")


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for downloads: answers only with the addresses pinned for a host
    after they were checked; any other host is an error (nothing is looked up here)."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], list[ResolveResult]] = {}

    def pin(self, host: str, port: int, addresses: list[ResolveResult]) -> None:
        self._pins[(_pin_key(host), port)] = list(addresses)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = self._pins.get((_pin_key(host), port))
        if not found:
            raise OSError(f"{host}:{port} was not checked before connecting")
        if family in (socket.AF_INET, socket.AF_INET6):
            found = [r for r in found if r["family"] == family] or found
        return [r.copy() for r in found]  # copies: aiohttp may change what it is given

    async def close(self) -> None:
        self._pins.clear()
