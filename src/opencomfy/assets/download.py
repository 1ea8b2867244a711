"""Fetching a URL into an asset: source checks, redirects, streaming with progress.

Only http(s) URLs on the configured hosts are fetched (the spec's huggingface.co, civitai.com,
civitai.red by default); no URL, first or redirected, may point back at this server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

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


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == h or host.endswith("." + h) for h in allowed)


async def _points_at_server(host: str, port: int, config: "Config") -> bool:
    """True when host:port reaches this server (loopback, a listen address, or any address)."""
    if port != config.port:
        return False
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    listen = set(config.listen)
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_loopback or ip.is_unspecified or str(ip) in listen or "0.0.0.0" in listen:
            return True
    return False


async def check_url(url: str, *, config: "Config", first: bool = True) -> tuple[str, int]:
    """Raise InvalidAssetInput unless the URL may be fetched; returns (host, port)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidAssetInput("source_url must be a URL", field="source_url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidAssetInput("only http(s) URLs can be downloaded", field="source_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidAssetInput("the URL has an invalid port", field="source_url") from None
    if first and not _host_allowed(parts.hostname, config.asset_download_hosts):
        raise InvalidAssetInput(f"downloads are only allowed from {', '.join(config.asset_download_hosts)}",
                                field="source_url")
    if await _points_at_server(parts.hostname, port, config):
        raise InvalidAssetInput("a download cannot point at this server", field="source_url")
    return parts.hostname, port


def filename_of(url: str, disposition: str | None) -> str:
    if disposition and (match := _FILENAME_RE.search(disposition)):
        name = unquote(match.group(1)).strip()
    else:
        name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = name.replace("/", "_").replace("\\", "_").strip(". ")
    return name[:255] or "download"


async def _open(session: aiohttp.ClientSession, method: str, url: str, *, config: "Config",
                headers: dict | None = None) -> tuple[aiohttp.ClientResponse, str]:
    """Send the request, following redirects ourselves so that each target is checked."""
    await check_url(url, config=config)
    for _ in range(MAX_REDIRECTS + 1):
        resp = await session.request(method, url, allow_redirects=False, headers=headers)
        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
            target = urljoin(url, resp.headers["Location"])
            resp.release()
            await check_url(target, config=config, first=False)
            url = target
            continue
        return resp, url
    raise DownloadFailed("too many redirects")


async def fetch(url: str, *, service: "AssetService", config: "Config",
                ctx: "TaskContext | None" = None) -> Fetched:
    """Stream the URL into a staged blob, reporting progress; DownloadFailed on HTTP errors."""
    limit = int(config.max_download_size_mb * 1024 * 1024)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=20, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            resp, final_url = await _open(session, "GET", url, config=config)
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
        async with aiohttp.ClientSession(timeout=timeout) as session:
            resp, final_url = await _open(session, "HEAD", url, config=config)
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
