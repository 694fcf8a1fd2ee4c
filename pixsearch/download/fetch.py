"""Safe HTTP fetching with aiohttp: one session per invocation, SSRF-checked at every hop.

Redirects are followed here rather than by aiohttp so each hop passes the
:mod:`~pixsearch.download.ssrf` checks. Connection errors, 429 and 5xx are
retried with exponential backoff and full jitter (a ``Retry-After`` is honoured
up to a cap); other 4xx are final. The body is capped while it streams in.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import aiohttp
from yarl import URL

from pixsearch.config import Settings
from pixsearch.download.budget import BytePool
from pixsearch.download.outcome import DownloadFailure
from pixsearch.download.ssrf import (
    AddressPolicy,
    BadUrl,
    BlockedAddress,
    VettingResolver,
)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ROBOTS_DIRECTIVES = frozenset({"noai", "noimageai"})
ROBOTS_TOKEN = "pixsearch"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    url: str
    body: bytes
    content_type: str
    reserved: int = 0
    """Bytes this body holds of the fetcher's pool; the caller releases them when done."""


class _Retryable(Exception):
    def __init__(self, failure: DownloadFailure, retry_after_s: float | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.retry_after_s = retry_after_s


class Fetcher:
    """Fetches image URLs for one invocation: ``async with Fetcher(settings) as fetcher``."""

    def __init__(self, settings: Settings, pool: BytePool | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.policy = AddressPolicy.from_allow_list(settings.download_allow)
        # One session per policy: each resolver vets (and caches) names for its policy.
        self._sessions: dict[AddressPolicy, aiohttp.ClientSession] = {}
        self._resolvers: dict[AddressPolicy, VettingResolver] = {}

    async def __aenter__(self) -> Fetcher:
        self._session_for(self.policy)
        return self

    def _session_for(self, policy: AddressPolicy) -> aiohttp.ClientSession:
        if policy not in self._sessions:
            self._resolvers[policy] = VettingResolver(policy)
            connector = aiohttp.TCPConnector(
                limit=self.settings.download_concurrency,
                limit_per_host=self.settings.download_per_host_concurrency,
                resolver=self._resolvers[policy],
                ttl_dns_cache=300,
            )
            self._sessions[policy] = aiohttp.ClientSession(
                connector=connector,
                headers={
                    "User-Agent": self.settings.download_user_agent,
                    "Accept": "image/avif,image/webp,image/*;q=0.9,*/*;q=0.5",
                },
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._sessions[policy]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for session in self._sessions.values():
            await session.close()

    async def fetch(self, url: str, deadline: float | None = None) -> Fetched:
        """The body at ``url``; :class:`DownloadFailure` with a reason code otherwise.

        ``deadline`` (event loop time) bounds all attempts together; by default
        ``download_total_timeout_s`` from now. A retry happens only if its wait
        ends before the deadline.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.settings.download_total_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                return await self._fetch_with_retries(url, deadline)
        except TimeoutError:
            raise DownloadFailure(
                "timeout", "not finished within PIXSEARCH_DOWNLOAD_TOTAL_TIMEOUT_S"
            ) from None

    async def _fetch_with_retries(self, url: str, deadline: float) -> Fetched:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                return await self._follow(url)
            except _Retryable as retry:
                delay = self._delay(attempt, retry.retry_after_s)
                if attempt >= self.settings.download_retries or loop.time() + delay >= deadline:
                    raise retry.failure from None
                attempt += 1
                await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.settings.download_retry_after_cap_s)
        return random.uniform(0, self.settings.download_backoff_s * 2**attempt)

    async def _follow(self, url: str) -> Fetched:
        assert self._sessions, "use Fetcher as an async context manager"
        current = _parse(url)
        policy = self.policy
        for _ in range(self.settings.download_max_redirects + 1):
            _check(policy, current)
            try:
                async with self._session_for(policy).get(
                    current, allow_redirects=False, timeout=self._timeout()
                ) as response:
                    if response.status in REDIRECTS and "Location" in response.headers:
                        hop = self._resolvers[policy].address_of(current.raw_host or "")
                        policy = policy.after_hop_to(hop)
                        current = _parse(str(current.join(URL(response.headers["Location"]))))
                        continue
                    return await self._accept(current, response)
            except (DownloadFailure, _Retryable):
                raise
            except Exception as error:  # noqa: BLE001 - classified, never swallowed
                raise _classify(error) from None
        raise DownloadFailure(
            "too_many_redirects",
            f"more than {self.settings.download_max_redirects} redirects (last: {current})",
        )

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.settings.download_total_timeout_s,
            sock_connect=self.settings.download_connect_timeout_s,
            sock_read=self.settings.download_read_timeout_s,
        )

    async def _accept(self, url: URL, response: aiohttp.ClientResponse) -> Fetched:
        status = response.status
        if status == 429 or status >= 500:
            raise _Retryable(
                DownloadFailure(f"http_{status}", f"HTTP {status} {response.reason or ''}".strip()),
                retry_after_s(response.headers.get("Retry-After")),
            )
        if not 200 <= status < 300:
            raise DownloadFailure(
                f"http_{status}", f"HTTP {status} {response.reason or ''}".strip()
            )
        if self.settings.download_respect_robots and robots_disallow(
            response.headers.getall("X-Robots-Tag", [])
        ):
            raise DownloadFailure(
                "robots_disallowed",
                "X-Robots-Tag forbids AI use (PIXSEARCH_DOWNLOAD_RESPECT_ROBOTS)",
            )
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type.startswith("text/"):
            raise DownloadFailure("not_image", f"server sent {content_type}, not an image")
        cap = self.settings.download_max_bytes
        length = response.content_length
        if length is not None and length > cap:
            raise _too_large(cap, f"Content-Length is {length}")
        # Content-Length counts compressed bytes: a compressed body is capped as it inflates.
        encoding = response.headers.get("Content-Encoding", "identity")
        known = length is not None and encoding == "identity"
        # Chunks, then their joined copy: twice the body while it is read.
        reserved = await self._reserve(2 * (length if known and length is not None else cap))
        try:
            body = await (response.read() if known else self._read_capped(response))
        except BaseException:
            self.release(reserved)
            raise
        kept = min(reserved, len(body))
        self.release(reserved - kept)
        return Fetched(url=str(url), body=body, content_type=content_type, reserved=kept)

    async def _reserve(self, n: int) -> int:
        return await self.pool.acquire(n) if self.pool is not None else 0

    def release(self, n: int) -> None:
        """Give ``n`` reserved bytes back to the pool (a :class:`Fetched`'s ``reserved``)."""
        if self.pool is not None and n:
            self.pool.release(n)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        cap = self.settings.download_max_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                response.close()
                raise _too_large(cap, "body kept streaming")
            chunks.append(chunk)
        return b"".join(chunks)


def robots_disallow(values: list[str], token: str = ROBOTS_TOKEN) -> bool:
    """Whether ``X-Robots-Tag`` values forbid AI use for everyone or for ``token``.

    ``noai`` and ``otherbot: noai, noimageai`` are directives; only those without
    a user-agent token, or with ours, apply (as img2dataset reads them).
    """
    for value in values:
        scope, sep, rest = value.partition(":")
        scope = scope.strip().lower()
        names_a_token = sep and scope and " " not in scope and "," not in scope
        if names_a_token and scope != token:
            continue
        directives = rest if names_a_token else value
        if {d.strip().lower() for d in directives.split(",")} & ROBOTS_DIRECTIVES:
            return True
    return False


def _parse(url: str) -> URL:
    try:
        return URL(url, encoded=False)
    except ValueError as error:
        raise DownloadFailure("bad_url", f"not a URL: {error}") from None


def _check(policy: AddressPolicy, url: URL) -> None:
    try:
        policy.check_url(url)
    except BadUrl as error:
        raise DownloadFailure("bad_url", str(error)) from None
    except BlockedAddress as error:
        raise DownloadFailure("blocked_address", str(error)) from None


def _classify(error: Exception) -> Exception:
    """An aiohttp or socket error as a final :class:`DownloadFailure` or a :class:`_Retryable`."""
    cause = error.__cause__ or getattr(error, "os_error", None)
    if isinstance(cause, BlockedAddress) or isinstance(error, BlockedAddress):
        return DownloadFailure("blocked_address", str(cause or error))
    if isinstance(error, TimeoutError):
        return _Retryable(DownloadFailure("timeout", f"timed out ({type(error).__name__})"))
    if isinstance(error, aiohttp.InvalidURL | ValueError):
        return DownloadFailure("bad_url", f"invalid URL: {error}")
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return DownloadFailure("dns", f"name does not resolve: {cause or error}")
    if isinstance(error, aiohttp.ClientSSLError):
        return DownloadFailure("tls", f"TLS failed: {error}")
    if isinstance(error, aiohttp.ClientResponseError):
        return DownloadFailure("bad_response", f"malformed HTTP response: {error.message}")
    if isinstance(error, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError | OSError):
        return _Retryable(DownloadFailure("connection", f"{type(error).__name__}: {error}"))
    return DownloadFailure("internal", f"{type(error).__name__}: {error}")


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP date), if any."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _too_large(cap: int, detail: str) -> DownloadFailure:
    return DownloadFailure(
        "too_large", f"larger than {cap} bytes ({detail}; PIXSEARCH_DOWNLOAD_MAX_BYTES)"
    )
