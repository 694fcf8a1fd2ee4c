"""SSRF guard: only public addresses are fetched, unless an explicit allow-list says otherwise.

Two layers, both needed:

* :meth:`AddressPolicy.check_url` runs before every request (including each
  redirect hop): scheme, host, and any IP literal in any spelling browsers and
  ``inet_aton`` accept (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``).
* A redirect from a public server never leads into the allow-listed ranges
  (:meth:`AddressPolicy.after_hop_to`).
* :class:`VettingResolver` is the aiohttp resolver: names are resolved once,
  every address is checked, and only checked addresses go back to the
  connector, so the connection goes to the address that was vetted (no DNS
  rebinding window between check and connect).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddress(OSError):
    """A URL or address the guard refuses. An ``OSError`` so aiohttp carries it as the cause."""


class BadUrl(ValueError):
    """A URL that is not an absolute http(s) URL with a host."""


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is an IP literal in any spelling, else ``None``.

    IPv4 follows ``inet_aton``: one to four dot-separated parts, each decimal,
    octal (leading ``0``) or hex (``0x``); the last part fills the remaining bytes.
    """
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    try:
        numbers = [_inet_aton_part(part) for part in parts]
    except ValueError:
        return None
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    value = 0
    for n in leading:
        value = value << 8 | n
    value = value << 8 * (5 - len(numbers)) | last
    return ipaddress.IPv4Address(value)


def _inet_aton_part(part: str) -> int:
    lowered = part.lower()
    if lowered.startswith("0x"):
        return int(lowered[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    if not part.isdigit():
        raise ValueError(part)
    return int(part, 10)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = non_public_reason(inner)
            return f"embeds {inner}, which is {reason}" if reason else None
    for label, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return label
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses pass; others only when an allow-list entry names them.

    ``allow`` is ``PIXSEARCH_DOWNLOAD_ALLOW``: comma-separated ``host:port``
    pairs (``127.0.0.1:8080``, ``[::1]:8080``, ``localhost:8080``) or CIDRs
    (``10.0.0.0/8``, a bare address counts as a /32 or /128).
    """

    networks: tuple[IPNetwork, ...] = ()
    endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def from_allow_list(cls, allow: str) -> AddressPolicy:
        networks: list[IPNetwork] = []
        endpoints: set[tuple[str, int]] = set()
        for raw in allow.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit() or not host:
                raise ValueError(
                    f"PIXSEARCH_DOWNLOAD_ALLOW entry {entry!r} is neither host:port nor a CIDR"
                )
            endpoints.add((_normalise_host(host), int(port)))
        return cls(tuple(networks), frozenset(endpoints))

    @property
    def opens_anything(self) -> bool:
        return bool(self.networks or self.endpoints)

    def after_hop_to(self, address: IPAddress | None) -> AddressPolicy:
        """The policy for the redirects a response from ``address`` sends the fetch on.

        A public server must not be able to send the fetcher into the allow-listed
        ranges, so after a hop to a public (or unknown) address only public addresses
        pass; a chain that stays inside the allow-list keeps it.
        """
        if not self.opens_anything or (address is not None and non_public_reason(address)):
            return self
        return PUBLIC_ONLY

    def allows(self, address: IPAddress, port: int, hostname: str = "") -> bool:
        if any(address in network for network in self.networks):
            return True
        names = {str(address), _normalise_host(hostname)} if hostname else {str(address)}
        return any((name, port) in self.endpoints for name in names)

    def check_address(self, address: IPAddress, port: int, hostname: str = "") -> None:
        """Raise :class:`BlockedAddress` unless ``address`` is public or allowed."""
        reason = non_public_reason(address)
        if reason is not None and not self.allows(address, port, hostname):
            shown = f"{hostname} ({address})" if hostname and hostname != str(address) else address
            raise BlockedAddress(f"{shown} is {reason}; refusing to fetch from it")

    def check_url(self, url: URL) -> None:
        """Refuse non-http(s) URLs and IP-literal hosts that are not public or allowed.

        Hosts that are names are checked when they resolve (:class:`VettingResolver`).
        """
        if url.scheme not in ALLOWED_SCHEMES:
            raise BadUrl(f"scheme {url.scheme or '(none)'!r} is not http or https")
        if not url.host:
            raise BadUrl("URL has no host")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = parse_ip_literal(url.raw_host or url.host)
        if address is not None:
            self.check_address(address, port, url.host)


PUBLIC_ONLY = AddressPolicy()
"""The policy without an allow-list: public addresses only."""


def _normalise_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    address = parse_ip_literal(host)
    return str(address) if address is not None else host


class VettingResolver(AbstractResolver):
    """Resolves with the system resolver, then refuses if any address is not allowed.

    Refusing the whole name (rather than dropping its bad addresses) keeps a
    name that mixes public and private records from being used as a probe.
    """

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or ThreadedResolver()
        self._addresses: dict[str, list[IPAddress]] = {}

    def address_of(self, host: str) -> IPAddress | None:
        """The address a connection to ``host`` went to, as far as resolving tells: a
        public one if the name has any (the cautious answer), ``None`` if never resolved."""
        literal = parse_ip_literal(host)
        if literal is not None:
            return literal
        addresses = self._addresses.get(host, [])
        public = [address for address in addresses if non_public_reason(address) is None]
        return (public or addresses or [None])[0]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        literal = parse_ip_literal(host)
        if literal is not None:
            self.policy.check_address(literal, port, host)
            return [_result(host, str(literal), port, literal)]
        results = await self._resolver.resolve(host, port, family)
        addresses = [ipaddress.ip_address(result["host"]) for result in results]
        for address in addresses:
            self.policy.check_address(address, port, host)
        self._addresses[host] = addresses
        return results

    async def close(self) -> None:
        await self._resolver.close()


def _result(hostname: str, host: str, port: int, address: IPAddress) -> ResolveResult:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return ResolveResult(hostname=hostname, host=host, port=port, family=family, proto=0, flags=0)
