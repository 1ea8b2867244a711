"""ComfyUI's ``comfy_api.feature_flags``: the flags the server announces to clients and the
ones each websocket client announced back (``sockets_metadata[sid]["feature_flags"]``)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, cast


def _server_flags() -> dict[str, Any]:
    from opencomfy.compat.comfy.cli_args import args
    from opencomfy.http.system import server_feature_flags

    # The same flags /features serves, sized by the configured upload limit.
    config = SimpleNamespace(max_upload_bytes=int(float(args.max_upload_size) * 1024 * 1024))
    return server_feature_flags(cast(Any, config))


SERVER_FEATURE_FLAGS: dict[str, Any] = _server_flags()


def get_connection_feature(sockets_metadata: dict, sid: str, feature_name: str, default: Any = False) -> Any:
    """A flag the client ``sid`` announced, or ``default``."""
    metadata = sockets_metadata.get(sid) or {}
    return (metadata.get("feature_flags") or {}).get(feature_name, default)


def supports_feature(sockets_metadata: dict, sid: str, feature_name: str) -> bool:
    """Whether client ``sid`` announced ``feature_name`` as exactly True."""
    return get_connection_feature(sockets_metadata, sid, feature_name, False) is True


def get_server_features() -> dict[str, Any]:
    """A copy of the server's flags."""
    return copy.deepcopy(SERVER_FEATURE_FLAGS)
