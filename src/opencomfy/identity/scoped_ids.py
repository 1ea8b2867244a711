"""Client-chosen ids (a POST /prompt `prompt_id`, an asset's `id`) named inside one workspace.

Job and asset ids are primary keys shared by every workspace. Were a client-chosen id stored
as given, a workspace choosing an id another workspace already holds would learn that it
exists (a refusal, or a 500, where an unused id succeeds): an existence oracle. So on a
server with several workspaces (`--auth required`) a chosen id is stored as a name-based
UUID of (workspace, chosen id): the answer, including the id it carries, depends only on the
caller's workspace and what it sent, never on other workspaces' records, and choosing the
same id again in the same workspace still meets its own record (duplicate / idempotent).
The single local workspace (`--auth none`) keeps the id as given, as ComfyUI clients expect:
there is no other workspace to learn about.
"""

from __future__ import annotations

import uuid

from opencomfy.identity.principal import LOCAL_WORKSPACE

# Fixed for ever: changing it would move every stored chosen id.
_NAMESPACE = uuid.UUID("3f6c2a4e-8b1d-5e7a-9c0f-6d2b4a8e1c35")


def scoped_id(workspace_id: str, chosen: str) -> str:
    """The stored id for an id this workspace chose (canonical UUID text)."""
    if workspace_id == LOCAL_WORKSPACE:
        return chosen
    return str(uuid.uuid5(_NAMESPACE, f"{workspace_id}\n{chosen}"))
