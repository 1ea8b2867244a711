"""Query-string and form parsing shared by the asset routes (400 on anything malformed)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from opencomfy.assets.errors import InvalidAssetInput
from opencomfy.assets.schemas import SORT_KEYS, AssetQuery, PageRequest, decode_cursor, normalize_tags
from opencomfy.http.errors import ApiError, parse_json
from opencomfy.jobs.schemas import QUERY_INT_MAX

HASH_RE = re.compile(r"^blake3:[a-f0-9]{64}$")
ANY_HASH_RE = re.compile(r"^(blake3|sha256):[a-f0-9]{64}$")
_METADATA_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def int_param(request: web.Request, name: str, *, default: int, low: int, high: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidAssetInput(f"{name} must be an integer", field=name) from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidAssetInput(f"{name} must be {bounds}", field=name)
    return min(value, QUERY_INT_MAX)  # SQL's OFFSET is 64-bit; past it every page is empty


def bool_param(request: web.Request, name: str, *, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise InvalidAssetInput(f"{name} must be true or false", field=name)


def enum_param(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default) or default
    if value not in choices:
        raise InvalidAssetInput(f"{name} must be one of {', '.join(choices)}", field=name)
    return value


def tags_param(request: web.Request, name: str) -> list[str]:
    """A form-style array: `a,b` (explode false) or repeated parameters."""
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v.strip()]
    return normalize_tags(values, field_name=name)


def asset_query(request: web.Request) -> AssetQuery:
    query = AssetQuery(include_tags=tags_param(request, "include_tags"),
                       exclude_tags=tags_param(request, "exclude_tags"),
                       name_contains=request.query.get("name_contains") or None)
    bool_param(request, "include_public", default=True)  # validated; no public assets locally
    raw_filter = request.query.get("metadata_filter")
    if raw_filter:
        try:
            parsed = parse_json(raw_filter)
        except ApiError:
            raise InvalidAssetInput("metadata_filter must be a JSON object", field="metadata_filter") from None
        if not isinstance(parsed, dict) or not all(_METADATA_KEY_RE.match(k) for k in parsed):
            raise InvalidAssetInput("metadata_filter must be a JSON object of simple keys",
                                    field="metadata_filter")
        for value in parsed.values():
            if isinstance(value, dict) or value is None:
                raise InvalidAssetInput("metadata_filter values must be scalars or lists",
                                        field="metadata_filter")
        query.metadata_filter = parsed
    asset_hash = request.query.get("asset_hash")
    if asset_hash:
        if not HASH_RE.match(asset_hash):
            raise InvalidAssetInput("asset_hash must look like blake3:<64 hex>", field="asset_hash")
        query.asset_hash = asset_hash
    return query


def page_request(request: web.Request) -> PageRequest:
    sort = enum_param(request, "sort", SORT_KEYS, "created_at")
    page = PageRequest(sort=sort, descending=enum_param(request, "order", ("asc", "desc"), "desc") == "desc",
                       limit=int_param(request, "limit", default=20, low=1, high=500),
                       offset=int_param(request, "offset", default=0, low=0))
    after = request.query.get("after")
    if after:
        page.after = decode_cursor(after, sort=sort)
    return page


def json_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidAssetInput("the body must be a JSON object")
    return body


def parse_form_tags(values: list[str]) -> list[str]:
    """Multipart `tags`: repeated fields, a JSON array, or comma-separated text."""
    out: list[str] = []
    for value in values:
        value = value.strip()
        if value.startswith("["):
            try:
                parsed = parse_json(value)
            except ApiError:
                raise InvalidAssetInput("tags must be a JSON array of strings", field="tags") from None
            out += normalize_tags(parsed)
        elif value:
            out += normalize_tags(value.split(","))
    return normalize_tags(out)
