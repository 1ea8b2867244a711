"""The SeaweedFS S3 server that scripts/s3.sh starts (OPENCOMFY_TEST_S3_*), for S3 tests."""

from __future__ import annotations

import os
import uuid

import pytest


def s3_settings() -> dict[str, str] | None:
    endpoint = os.environ.get("OPENCOMFY_TEST_S3_ENDPOINT")
    if not endpoint:
        return None
    return {"endpoint": endpoint,
            "access_key": os.environ.get("OPENCOMFY_TEST_S3_ACCESS_KEY", "opencomfy-test"),
            "secret_key": os.environ.get("OPENCOMFY_TEST_S3_SECRET_KEY", "opencomfy-test-secret")}


def require_s3() -> dict[str, str]:
    settings = s3_settings()
    if settings is None:
        pytest.skip("no S3 server (set OPENCOMFY_TEST_S3_ENDPOINT; scripts/s3.sh does)")
    return settings


def new_bucket_name() -> str:
    return "t-" + uuid.uuid4().hex[:16]


def server_args(settings: dict[str, str], bucket: str) -> tuple[list[str], dict[str, str]]:
    """Command-line flags and environment for a server on this S3 store."""
    return (["--blob-store", "s3", "--s3-endpoint", settings["endpoint"], "--s3-bucket", bucket],
            {"OPENCOMFY_S3_ACCESS_KEY": settings["access_key"],
             "OPENCOMFY_S3_SECRET_KEY": settings["secret_key"]})
