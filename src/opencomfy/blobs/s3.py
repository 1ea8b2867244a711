"""`S3BlobStore`: objects in any S3-compatible store (SeaweedFS, MinIO, AWS) through aiobotocore.

One aiobotocore client per store, made on first use on the running loop and closed by
`close()`. Addressing is path-style, and payloads go `UNSIGNED-PAYLOAD` without checksums,
so a staged file streams from disk once: it is never read a second time to hash it for the
signature or a CRC.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from opencomfy.blobs.base import BlobNotFound, BlobStore

MULTIPART_THRESHOLD = 128 * 1024 * 1024
PART_SIZE = 64 * 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


class S3Error(Exception):
    """The S3 server refused a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"S3 answered {status}: {message[:300]}")
        self.status = status


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _is_missing(err: ClientError) -> bool:
    return _status(err) == 404 or err.response.get("Error", {}).get("Code") in _MISSING


def _s3_error(err: ClientError) -> S3Error:
    error = err.response.get("Error", {})
    return S3Error(_status(err), f"{error.get('Code', '')} {error.get('Message', '')}".strip())


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
        # Signed URLs handed to browsers may need another host name than the server uses.
        self.public_endpoint = (public_endpoint or self.endpoint).rstrip("/")
        self.bucket = bucket
        self.region = region
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._credentials = (access_key, secret_key)
        self._staging = staging_dir
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()

    @property
    def staging_dir(self) -> Path:
        return self._staging

    async def _s3(self) -> Any:
        """The store's aiobotocore client, created on the running loop the first time."""
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                config = AioConfig(
                    signature_version="s3v4", connect_timeout=10,
                    s3={"addressing_style": "path", "payload_signing_enabled": False},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
                stack = contextlib.AsyncExitStack()
                client = await stack.enter_async_context(get_session().create_client(
                    "s3", endpoint_url=self.endpoint, region_name=self.region,
                    aws_access_key_id=self._credentials[0],
                    aws_secret_access_key=self._credentials[1], config=config))
                client.meta.events.register("before-sign.s3.GetObject", self._presign_for_public_host)
                self._client, self._exit_stack = client, stack
        return self._client

    def _presign_for_public_host(self, request, **_) -> None:
        # The host is part of a SigV4 signature, so a URL for another host name must be
        # signed for that host: rewrite it before signing, for presigned URLs only.
        if request.context.get("is_presign_request") and self.public_endpoint != self.endpoint:
            public, url = urlsplit(self.public_endpoint), urlsplit(request.url)
            request.url = urlunsplit((public.scheme, public.netloc, public.path + url.path,
                                      url.query, url.fragment))

    async def open(self) -> None:
        self._staging.mkdir(parents=True, exist_ok=True)
        for leftover in self._staging.glob(".staging-*"):
            leftover.unlink(missing_ok=True)
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as err:
            if not _is_missing(err):
                raise _s3_error(err) from None
        extra = ({} if self.region == "us-east-1"
                 else {"CreateBucketConfiguration": {"LocationConstraint": self.region}})
        try:
            await s3.create_bucket(Bucket=self.bucket, **extra)
        except ClientError as err:
            if _status(err) != 409:  # created meanwhile by another process: fine
                raise _s3_error(err) from None

    async def close(self) -> None:
        if self._exit_stack is not None:
            stack, self._client, self._exit_stack = self._exit_stack, None, None
            await stack.aclose()

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        s3 = await self._s3()
        extra = {"ContentType": content_type} if content_type else {}
        try:
            if path.stat().st_size > MULTIPART_THRESHOLD:
                await self._put_multipart(s3, key, path, extra)
            else:
                with open(path, "rb") as f:
                    await s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=f, **extra)
        except ClientError as err:
            raise _s3_error(err) from None
        finally:
            path.unlink(missing_ok=True)

    async def _put_multipart(self, s3: Any, key: str, path: Path, extra: dict[str, str]) -> None:
        target = {"Bucket": self.bucket, "Key": self._key(key)}
        upload_id = (await s3.create_multipart_upload(**target, **extra))["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with open(path, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, PART_SIZE):
                    number = len(parts) + 1
                    answer = await s3.upload_part(**target, UploadId=upload_id, PartNumber=number,
                                                  Body=chunk)
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            await s3.complete_multipart_upload(**target, UploadId=upload_id,
                                               MultipartUpload={"Parts": parts})
        except BaseException:
            # Parts of an abandoned upload would otherwise be kept (and billed) forever.
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(**target, UploadId=upload_id)
            raise

    async def exists(self, key: str) -> bool:
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if _is_missing(err):
                return False
            raise _s3_error(err) from None
        return True

    async def iter_bytes(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if _is_missing(err):
                raise BlobNotFound(key) from None
            raise _s3_error(err) from None
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if not _is_missing(err):
                raise _s3_error(err) from None

    async def signed_url(self, key: str, *, expires_in: int = 3600,
                         filename: str | None = None, content_type: str | None = None) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            safe_name = filename.replace('"', "").replace("\\", "")
            params["ResponseContentDisposition"] = f'inline; filename="{safe_name}"'
        if content_type:
            params["ResponseContentType"] = content_type
        s3 = await self._s3()
        return await s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)


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
