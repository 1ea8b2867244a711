"""`S3BlobStore`: objects in any S3-compatible store, over aiohttp with SigV4-signed requests.

A small client of our own (path-style URLs, AWS Signature Version 4) keeps the dependency
list short: PUT (single or multipart), GET (streamed), HEAD, DELETE, bucket creation and
presigned GET URLs are all the store needs. Payloads are sent `UNSIGNED-PAYLOAD` so a large
file streams from disk without being read twice to hash it for the signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from opencomfy.blobs.base import BlobNotFound, BlobStore

UNSIGNED = "UNSIGNED-PAYLOAD"
MULTIPART_THRESHOLD = 128 * 1024 * 1024
PART_SIZE = 64 * 1024 * 1024


class S3Error(Exception):
    """The S3 server refused a request."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"S3 answered {status}: {body[:300]}")
        self.status = status


def _encode(value: str, *, safe: str) -> str:
    return quote(value, safe=safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class SigV4Signer:
    """AWS Signature Version 4 for the `s3` service (headers or query string)."""

    def __init__(self, *, access_key: str, secret_key: str, region: str) -> None:
        self.access_key, self.secret_key, self.region = access_key, secret_key, region

    def _key(self, date: str) -> bytes:
        k = _hmac(("AWS4" + self.secret_key).encode(), date)
        k = _hmac(k, self.region)
        k = _hmac(k, "s3")
        return _hmac(k, "aws4_request")

    @staticmethod
    def _canonical_query(params: dict[str, str]) -> str:
        return "&".join(f"{_encode(k, safe='-_.~')}={_encode(v, safe='-_.~')}"
                        for k, v in sorted(params.items()))

    def _signature(self, method: str, path: str, params: dict[str, str], headers: dict[str, str],
                   payload_hash: str, stamp: str) -> tuple[str, str]:
        signed = sorted(h.lower() for h in headers)
        canonical_headers = "".join(f"{h}:{headers_lower(headers)[h].strip()}\n" for h in signed)
        canonical = "\n".join([method, path, self._canonical_query(params), canonical_headers,
                               ";".join(signed), payload_hash])
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self._key(stamp[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
        return signature, ";".join(signed)

    def sign_headers(self, method: str, host: str, path: str, params: dict[str, str],
                     headers: dict[str, str], payload_hash: str = UNSIGNED) -> dict[str, str]:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        all_headers = {**headers, "host": host, "x-amz-date": stamp,
                       "x-amz-content-sha256": payload_hash}
        signature, signed = self._signature(method, path, params, all_headers, payload_hash, stamp)
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        all_headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                        f"SignedHeaders={signed}, Signature={signature}")
        del all_headers["host"]  # aiohttp sends the same Host itself
        return all_headers

    def presign(self, method: str, host: str, path: str, params: dict[str, str],
                expires_in: int) -> dict[str, str]:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        query = {**params, "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                 "X-Amz-Credential": f"{self.access_key}/{scope}", "X-Amz-Date": stamp,
                 "X-Amz-Expires": str(expires_in), "X-Amz-SignedHeaders": "host"}
        signature, _ = self._signature(method, path, query, {"host": host}, UNSIGNED, stamp)
        return {**query, "X-Amz-Signature": signature}


def headers_lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class S3BlobStore(BlobStore):
    """Objects under `prefix` in `bucket` at `endpoint` (path-style, e.g. SeaweedFS, MinIO, AWS)."""

    kind = "s3"

    def __init__(self, *, endpoint: str, bucket: str, access_key: str, secret_key: str,
                 region: str = "us-east-1", prefix: str = "", staging_dir: Path,
                 public_endpoint: str | None = None) -> None:
        parts = urlsplit(endpoint.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"S3 endpoint must be an http(s) URL, not {endpoint!r}")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        # Signed URLs handed to browsers may need another host name than the server uses.
        self.public_endpoint = (public_endpoint or self.endpoint).rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.signer = SigV4Signer(access_key=access_key, secret_key=secret_key, region=region)
        self._staging = staging_dir
        self._session: aiohttp.ClientSession | None = None

    @property
    def staging_dir(self) -> Path:
        return self._staging

    async def open(self) -> None:
        self._staging.mkdir(parents=True, exist_ok=True)
        for leftover in self._staging.glob(".staging-*"):
            leftover.unlink(missing_ok=True)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        status, _, _ = await self._request("HEAD", "")
        if status == 404:
            status, _, body = await self._request("PUT", "")
            if status not in (200, 409):
                raise S3Error(status, body.decode(errors="replace"))
        elif status >= 300:
            raise S3Error(status, "bucket check failed")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _path(self, key: str) -> str:
        object_key = self.prefix + key if key else ""
        path = "/" + _encode(self.bucket, safe="")
        return path + ("/" + _encode(object_key, safe="/-_.~") if object_key else "")

    async def _request(self, method: str, key: str, *, params: dict[str, str] | None = None,
                       data=None, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        assert self._session is not None, "S3BlobStore.open() was not called"
        path, params = self._path(key), params or {}
        signed = self.signer.sign_headers(method, self.host, path, params, headers or {})
        url = URL(self.endpoint + path + ("?" + SigV4Signer._canonical_query(params) if params else ""),
                  encoded=True)
        async with self._session.request(method, url, data=data, headers=signed) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        try:
            size = path.stat().st_size
            if size > MULTIPART_THRESHOLD:
                await self._put_multipart(key, path, content_type)
            else:
                headers = {"Content-Length": str(size)}
                if content_type:
                    headers["Content-Type"] = content_type
                with open(path, "rb") as f:
                    status, _, body = await self._request("PUT", key, data=f, headers=headers)
                if status != 200:
                    raise S3Error(status, body.decode(errors="replace"))
        finally:
            path.unlink(missing_ok=True)

    async def _put_multipart(self, key: str, path: Path, content_type: str | None) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        status, _, body = await self._request("POST", key, params={"uploads": ""}, headers=headers)
        match = re.search(rb"<UploadId>([^<]+)</UploadId>", body)
        if status != 200 or not match:
            raise S3Error(status, body.decode(errors="replace"))
        upload_id = match.group(1).decode()
        etags: list[str] = []
        try:
            with open(path, "rb") as f:
                while chunk := f.read(PART_SIZE):
                    params = {"partNumber": str(len(etags) + 1), "uploadId": upload_id}
                    status, resp_headers, body = await self._request(
                        "PUT", key, params=params, data=chunk,
                        headers={"Content-Length": str(len(chunk))})
                    if status != 200:
                        raise S3Error(status, body.decode(errors="replace"))
                    etags.append(headers_lower(resp_headers).get("etag", ""))
            xml = "".join(f"<Part><PartNumber>{i}</PartNumber><ETag>{etag}</ETag></Part>"
                          for i, etag in enumerate(etags, 1))
            status, _, body = await self._request(
                "POST", key, params={"uploadId": upload_id},
                data=f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode())
            if status != 200 or b"<Error>" in body:
                raise S3Error(status, body.decode(errors="replace"))
        except BaseException:
            await self._request("DELETE", key, params={"uploadId": upload_id})
            raise

    async def exists(self, key: str) -> bool:
        status, _, _ = await self._request("HEAD", key)
        if status not in (200, 404):
            raise S3Error(status, "HEAD failed")
        return status == 200

    async def iter_bytes(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        assert self._session is not None, "S3BlobStore.open() was not called"
        path = self._path(key)
        headers = self.signer.sign_headers("GET", self.host, path, {}, {})
        async with self._session.get(URL(self.endpoint + path, encoded=True), headers=headers) as resp:
            if resp.status == 404:
                raise BlobNotFound(key)
            if resp.status != 200:
                raise S3Error(resp.status, (await resp.read()).decode(errors="replace"))
            async for chunk in resp.content.iter_chunked(chunk_size):
                yield chunk

    async def delete(self, key: str) -> None:
        status, _, body = await self._request("DELETE", key)
        if status not in (200, 204, 404):
            raise S3Error(status, body.decode(errors="replace"))

    async def signed_url(self, key: str, *, expires_in: int = 3600,
                         filename: str | None = None, content_type: str | None = None) -> str | None:
        params: dict[str, str] = {}
        if filename:
            safe_name = filename.replace('"', "").replace("\\", "")
            params["response-content-disposition"] = f'inline; filename="{safe_name}"'
        if content_type:
            params["response-content-type"] = content_type
        path = self._path(key)
        host = urlsplit(self.public_endpoint).netloc
        query = self.signer.presign("GET", host, path, params, expires_in)
        return self.public_endpoint + path + "?" + SigV4Signer._canonical_query(query)


def s3_store_from_env(*, staging_dir: Path, endpoint: str, bucket: str, region: str,
                      prefix: str = "", public_endpoint: str | None = None) -> S3BlobStore:
    """An S3BlobStore whose keys come from the environment (never from the command line)."""
    access = os.environ.get("OPENCOMFY_S3_ACCESS_KEY") or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = os.environ.get("OPENCOMFY_S3_SECRET_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise ValueError("the S3 blob store needs OPENCOMFY_S3_ACCESS_KEY and OPENCOMFY_S3_SECRET_KEY "
                         "(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) in the environment")
    return S3BlobStore(endpoint=endpoint, bucket=bucket, access_key=access, secret_key=secret,
                       region=region, prefix=prefix, staging_dir=staging_dir,
                       public_endpoint=public_endpoint)
