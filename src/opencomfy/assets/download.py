"""Fetching a URL into an asset: source checks, redirects, streaming with progress.

Only http(s) URLs on the configured hosts are fetched (the spec's huggingface.co, civitai.com,
civitai.red by default). Redirects are followed by hand, at most MAX_REDIRECTS, and every hop
is checked and pinned (see `egress`): no URL, first or redirected, may reach this server or a
loopback, private, link-local or otherwise non-public address.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from yarl import URL

from opencomfy.assets import egress
from opencomfy.assets.errors import AssetError, InvalidAssetInput
from opencomfy.assets.formats import PICKLE_EXTENSIONS
from opencomfy.blobs import StagedBlob

if TYPE_CHECKING:
    from opencomfy.assets.service import AssetService
    from opencomfy.config import Config
    from opencomfy.tasks.service import TaskContext

MAX_REDIRECTS = 5
MODEL_EXTENSIONS = (".safetensors", ".gguf", *PICKLE_EXTENSIONS)
_FILENAME_RE = re.compile(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", re.IGNORECASE)


class DownloadFailed(AssetError):
    status, code = 422, "download_failed"

    def __init__(self, message: str, *, source_status: int | None = None) -> None:
        super().__init__(message, field="url")
        # The source's own refusal is passed on (the spec's 404 and 403 for URL uploads).
        if source_status == 404:
            self.status, self.code = 404, "source_not_found"
        elif source_status in (401, 403):
            self.status, self.code = 403, "source_forbidden"


@dataclass
class Fetched:
    staged: StagedBlob
    filename: str
    content_type: str | None


@dataclass(frozen=True)
class Hop:
    """One checked request target: the URL as aiohttp will send it and the addresses its
    host may be reached at."""

    url: URL
    host: str
    port: int
    addresses: list


def _parse(url: object) -> URL:
    """The URL parsed the way aiohttp will parse it (one parser for check and request)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidAssetInput("source_url must be a URL", field="source_url")
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError):
        raise InvalidAssetInput("the URL is malformed or has an invalid port", field="source_url") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host or port is None:
        raise InvalidAssetInput("only http(s) URLs can be downloaded", field="source_url")
    return parsed


def _points_at_server(ips: list, port: int, config: "Config") -> bool:
    """True when host:port reaches this server (loopback, a listen address, or any address)."""
    if port != config.port:
        return False
    listen = set(config.listen)
    return any(ip.is_loopback or ip.is_unspecified or str(ip) in listen or "0.0.0.0" in listen
               for ip in ips)


async def check_hop(url: object, *, config: "Config", first: bool = True) -> Hop:
    """Raise InvalidAssetInput unless this request target may be fetched.

    Every hop: http(s) only, never this server, and every address the host resolves to is
    public unless the allowlist names that address literally. The first hop's host must be
    on the allowlist; a redirect may leave it (the sources hand files to their CDNs) but
    only for public addresses."""
    parsed = _parse(url)
    host, port = parsed.raw_host or "", parsed.port or 0
    entries = egress.allow_entries(config.asset_download_hosts)
    if first and not any(e.admits_host(host, port) for e in entries):
        raise InvalidAssetInput(f"downloads are only allowed from {', '.join(config.asset_download_hosts)}",
                                field="source_url")
    try:
        addresses = await egress.lookup(host, port)
    except (OSError, asyncio.TimeoutError, UnicodeError):
        addresses = []
    if not addresses:
        raise InvalidAssetInput(f"the host {host} could not be resolved", field="source_url")
    ips = [egress.parse_ip(a["host"]) for a in addresses]
    if _points_at_server([ip for ip in ips if ip is not None], port, config):
        raise InvalidAssetInput("a download cannot point at this server", field="source_url")
    for ip in ips:
        problem = "unreadable" if ip is None else egress.address_problem(ip)
        if problem and not (ip is not None and any(e.admits_address(ip, port) for e in entries)):
            raise InvalidAssetInput(f"{host} resolves to a {problem} address ({ip}), which downloads "
                                    "may not reach", field="source_url")
    return Hop(url=parsed, host=host, port=port, addresses=addresses)


async def check_url(url: object, *, config: "Config", first: bool = True) -> tuple[str, int]:
    """Raise InvalidAssetInput unless the URL may be fetched; returns (host, port)."""
    hop = await check_hop(url, config=config, first=first)
    return hop.host, hop.port


def filename_of(url: str, disposition: str | None) -> str:
    if disposition and (match := _FILENAME_RE.search(disposition)):
        name = unquote(match.group(1)).strip()
    else:
        name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = name.replace("/", "_").replace("\\", "_").strip(". ")
    return name[:255] or "download"


def _session(timeout: aiohttp.ClientTimeout) -> tuple[aiohttp.ClientSession, egress.PinnedResolver]:
    """A session whose connections go only to pinned (checked) addresses, with no proxy."""
    resolver = egress.PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False), resolver


async def _open(session: aiohttp.ClientSession, resolver: egress.PinnedResolver, method: str,
                url: str, *, config: "Config") -> tuple[aiohttp.ClientResponse, str]:
    """Send the request, following redirects ourselves: each hop is checked, then pinned."""
    for hop_number in range(MAX_REDIRECTS + 1):
        hop = await check_hop(url, config=config, first=hop_number == 0)
        resolver.pin(hop.host, hop.port, hop.addresses)
        resp = await session.request(method, hop.url, allow_redirects=False)
        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
            url = urljoin(str(hop.url), resp.headers["Location"])
            resp.release()
            continue
        return resp, str(hop.url)
    raise DownloadFailed(f"too many redirects (more than {MAX_REDIRECTS})")


async def fetch(url: str, *, service: "AssetService", config: "Config",
                ctx: "TaskContext | None" = None) -> Fetched:
    """Stream the URL into a staged blob, reporting progress; DownloadFailed on HTTP errors."""
    limit = int(config.max_download_size_mb * 1024 * 1024)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=20, sock_read=120)
    session, resolver = _session(timeout)
    async with session:
        try:
            resp, final_url = await _open(session, resolver, "GET", url, config=config)
        except aiohttp.ClientError as exc:
            raise DownloadFailed(f"could not reach the source: {exc}") from None
        async with resp:
            if resp.status != 200:
                raise DownloadFailed(f"the source answered HTTP {resp.status}", source_status=resp.status)
            total = resp.content_length
            if total is not None and total > limit:
                raise DownloadFailed(f"the file is larger than the {limit}-byte download limit")
            done = 0

            async def chunks():
                nonlocal done
                async for chunk in resp.content.iter_chunked(1 << 20):
                    done += len(chunk)
                    if ctx is not None:
                        ctx.check_cancelled()
                        await ctx.progress(done / total if total else 0.0,
                                           details={"bytes_downloaded": done, "total_bytes": total})
                    yield chunk

            try:
                staged = await service.stage_stream(chunks(), limit=limit)
            except aiohttp.ClientError as exc:
                raise DownloadFailed(f"the download broke off: {exc}") from None
            if total is not None and staged.size != total:
                staged.abort()
                raise DownloadFailed("the download ended early")
            return Fetched(staged=staged,
                           filename=filename_of(final_url, resp.headers.get("Content-Disposition")),
                           content_type=resp.headers.get("Content-Type", "").split(";")[0] or None)


async def remote_metadata(url: str, *, config: "Config") -> dict:
    """AssetMetadataResponse from a HEAD request (no body is downloaded)."""
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        session, resolver = _session(timeout)
        async with session:
            resp, final_url = await _open(session, resolver, "HEAD", url, config=config)
            async with resp:
                if resp.status >= 400:
                    raise DownloadFailed(f"the source answered HTTP {resp.status}")  # 422 here
                length = resp.content_length
                headers = resp.headers
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise DownloadFailed(f"could not reach the source: {exc}") from None
    filename = filename_of(final_url, headers.get("Content-Disposition"))
    lower = filename.lower()
    errors = []
    if lower.endswith(PICKLE_EXTENSIONS):
        errors.append({"code": "FORMAT_NOT_ALLOWED", "field": "format",
                       "message": 'File format "PickleTensor" is not allowed. Allowed formats: [SafeTensor]'})
    return {"content_length": length if length is not None else -1,
            "content_type": headers.get("Content-Type", "application/octet-stream").split(";")[0],
            "filename": filename, "name": PurePosixPath(filename).stem,
            "tags": ["models"] if lower.endswith(MODEL_EXTENSIONS) else [],
            "validation": {"is_valid": not errors, "errors": errors, "warnings": []}}
