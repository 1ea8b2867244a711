"""Assets seen from workflows and shared libraries: from-workflow and import of published assets.

"Published" assets are those of the `public` workspace (platform-provided); importing one
creates a record in the caller's workspace over the same content (no bytes are copied), or
returns the caller's existing record of that content.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from opencomfy.assets import repository as repo
from opencomfy.assets.errors import InvalidAssetInput
from opencomfy.assets.schemas import preview_url

if TYPE_CHECKING:
    from opencomfy.assets.service import AssetService

PUBLIC_WORKSPACE = "public"
_ANNOTATION = re.compile(r"\s*\[(input|output|temp)\]$")


class InvalidAssets(InvalidAssetInput):
    code = "CodeInvalidAssets"


def asset_info(row: dict, tags: list[str], *, public: bool, in_library: bool) -> dict[str, Any]:
    """The spec's AssetInfo."""
    return {"id": row["id"], "name": row["name"], "preview_url": preview_url(row) or "",
            "storage_url": f"/api/assets/{row['id']}/content", "model": "models" in tags,
            "public": public, "in_library": in_library}


def _referenced_names(workflow: dict) -> set[str]:
    names: set[str] = set()
    for node in workflow.values():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        for value in node["inputs"].values():
            if isinstance(value, str) and value and len(value) < 1024:
                value = _ANNOTATION.sub("", value)
                names.add(value)
                names.add(PurePosixPath(value.replace("\\", "/")).name)
    return names


async def assets_of_workflow(*, service: "AssetService", workspace_id: str, workflow: Any) -> list[dict]:
    """AssetInfo for every asset of the workspace a workflow's inputs name."""
    if not isinstance(workflow, dict):
        raise InvalidAssetInput("workflow_api_json must be an object", field="workflow_api_json")
    async with service.db.read() as conn:
        rows = await repo.assets_named(conn, workspace_id=workspace_id, names=_referenced_names(workflow))
        tags = await repo.tags_of(conn, [r["id"] for r in rows])
    return [asset_info(r, tags[r["id"]], public=False, in_library=True) for r in rows]


async def import_published(*, service: "AssetService", workspace_id: str, asset_ids: Any,
                           share_id: Any) -> list[dict]:
    """Records in the caller's workspace for published assets (deduplicated by hash)."""
    if not isinstance(asset_ids, list) or not all(isinstance(a, str) for a in asset_ids):
        raise InvalidAssetInput("published_asset_ids must be a list of ids", field="published_asset_ids")
    if share_id:
        raise InvalidAssets("no published workflow has this share_id", field="share_id")
    async with service.db.read() as conn:
        published = {r["id"]: r for r in await repo.get_assets(conn, workspace_id=PUBLIC_WORKSPACE,
                                                               asset_ids=asset_ids)}
        tags = await repo.tags_of(conn, list(published))
    unknown = [a for a in asset_ids if a not in published]
    if unknown:
        raise InvalidAssets(f"not published assets: {', '.join(unknown[:5])}", field="published_asset_ids")
    out = []
    for asset_id in dict.fromkeys(asset_ids):
        source = published[asset_id]
        async with service.db.read() as conn:
            mine = await repo.find_asset(conn, workspace_id=workspace_id, content_hash=source["content_hash"])
        if mine is None:
            created = await service.insert_record(
                workspace_id=workspace_id, digest=source["content_hash"], size=source["size"],
                name=source["name"], tags=tags[asset_id], mime_type=source["mime_type"],
                user_metadata=None, preview_id=None, system_metadata=source["system_metadata"],
                file_path=source["file_path"], immutable=True)
            mine = {**source, "id": created["id"]}
        out.append(asset_info(mine, tags[asset_id], public=True, in_library=True))
    return out
