"""The SSRF guard, address class by address class, without any network."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from yarl import URL

from pixsearch.download.ssrf import (
    AddressPolicy,
    BadUrl,
    BlockedAddress,
    VettingResolver,
    non_public_reason,
    parse_ip_literal,
)

DENY_ALL = AddressPolicy()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "not globally routable"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),
        ("198.18.0.1", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),
        ("::ffff:127.0.0.1", "embeds 127.0.0.1, which is loopback"),
        ("::ffff:169.254.169.254", "embeds 169.254.169.254, which is link-local"),
        ("2002:7f00:1::", "embeds 127.0.0.1, which is loopback"),
        ("64:ff9b::a00:1", "embeds 10.0.0.1, which is private"),
    ],
)
def test_non_public_addresses_are_named(address: str, reason: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("127.0.0.1.", "127.0.0.1"),
    ],
)
def test_odd_ipv4_spellings_are_decoded(host: str, expected: str) -> None:
    assert parse_ip_literal(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..1", "a.0x1"]
)
def test_names_and_invalid_numbers_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://2130706433/a.jpg",
        "http://0x7f.1/a.jpg",
        "http://0177.0.0.1:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "https://10.0.0.5/x",
        "http://0/",
    ],
)
def test_urls_with_blocked_literals_are_refused(url: str) -> None:
    with pytest.raises(BlockedAddress):
        DENY_ALL.check_url(URL(url))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "gopher://x/", "/a"]
)
def test_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(BadUrl):
        DENY_ALL.check_url(URL(url))


def test_public_literal_and_names_pass_the_url_check() -> None:
    DENY_ALL.check_url(URL("http://8.8.8.8/a.jpg"))
    DENY_ALL.check_url(URL("https://images.example.com/a.jpg"))


def test_allow_list_entries() -> None:
    policy = AddressPolicy.from_allow_list(" 127.0.0.1:8080, 10.0.0.0/8 ,[::1]:9000,localhost:7000")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.allows(loopback, 8080)
    assert not policy.allows(loopback, 8081)
    assert policy.allows(ipaddress.ip_address("10.200.0.1"), 1)
    assert policy.allows(ipaddress.ip_address("::1"), 9000)
    assert policy.allows(loopback, 7000, hostname="localhost")
    assert not policy.allows(loopback, 7000)
    policy.check_url(URL("http://127.0.0.1:8080/x"))
    policy.check_url(URL("http://2130706433:8080/x"))
    with pytest.raises(BlockedAddress):
        policy.check_url(URL("http://127.0.0.1:8081/x"))
    with pytest.raises(BlockedAddress):
        policy.check_url(URL("http://169.254.169.254/"))


def test_allow_list_is_empty_by_default_and_rejects_garbage() -> None:
    assert AddressPolicy.from_allow_list("") == AddressPolicy()
    with pytest.raises(ValueError, match="neither host:port nor a CIDR"):
        AddressPolicy.from_allow_list("localhost")


class _FixedResolver(VettingResolver):
    """The vetting resolver over a fixed name table instead of DNS."""

    def __init__(self, policy: AddressPolicy, table: dict[str, list[str]]) -> None:
        super().__init__(policy, resolver=_TableResolver(table))


class _TableResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int, family: object) -> list[dict[str, object]]:
        return [
            {"hostname": host, "host": a, "port": port, "family": 2, "proto": 0, "flags": 0}
            for a in self.table[host]
        ]

    async def close(self) -> None:
        return None


def test_resolver_refuses_names_with_any_blocked_address() -> None:
    table = {
        "good.example": ["93.184.216.34"],
        "rebind.example": ["93.184.216.34", "127.0.0.1"],
        "meta.example": ["169.254.169.254"],
    }
    resolver = _FixedResolver(DENY_ALL, table)
    results = asyncio.run(resolver.resolve("good.example", 80))
    assert [r["host"] for r in results] == ["93.184.216.34"]
    for name in ("rebind.example", "meta.example"):
        with pytest.raises(BlockedAddress, match=name):
            asyncio.run(resolver.resolve(name, 80))


def test_resolver_checks_literals_it_is_handed() -> None:
    resolver = _FixedResolver(DENY_ALL, {})
    with pytest.raises(BlockedAddress):
        asyncio.run(resolver.resolve("2130706433", 80))


def test_a_public_hop_closes_the_allow_list_for_the_rest_of_the_chain():
    """A public server redirecting into an allow-listed range is refused; a chain that
    stays inside the allow-list keeps it."""
    policy = AddressPolicy.from_allow_list("127.0.0.1:8080,10.1.0.0/16")
    loopback, private = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.1.2.3")
    after_public = policy.after_hop_to(ipaddress.ip_address("93.184.216.34"))
    for address, port in ((loopback, 8080), (private, 80)):
        policy.check_address(address, port)
        with pytest.raises(BlockedAddress):
            after_public.check_address(address, port)
    after_public.check_address(ipaddress.ip_address("93.184.216.35"), 443)
    assert policy.after_hop_to(loopback) is policy
    assert policy.after_hop_to(None) == after_public  # unknown peer: the strict side
