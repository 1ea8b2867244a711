"""Secrets for nodes: `get_secret(name)` inside a running job returns the value of that
job's workspace's secret, and nothing outside a job.

    from opencomfy.secrets.node_access import get_secret
    api_key = get_secret("openai")          # in a node's FUNCTION, while it runs

The job is found from the engine's current context (its prompt id); the workspace is the
job's own, read from the database, so a node can never reach another workspace's secrets.
The value is never written to the job's history by us (a node that returns it as an output
publishes it itself).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opencomfy.secrets.service import SecretService

# Set by the composition root: nodes run on the worker's thread, the service on the server's
# loop, and custom nodes have no other way to reach it (as with PromptServer.instance).
_service: "SecretService | None" = None
_loop: asyncio.AbstractEventLoop | None = None
TIMEOUT_S = 10.0


class SecretUnavailable(LookupError):
    """No such secret in the running job's workspace, no running job, or secrets are off."""


def install(service: "SecretService | None", loop: asyncio.AbstractEventLoop | None) -> None:
    global _service, _loop
    _service, _loop = service, loop


def get_secret(name: str) -> str:
    """The named secret of the running job's workspace (call from a node, not the loop)."""
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    if ctx is None:
        raise SecretUnavailable("secrets are only available to a node of a running job")
    if _service is None or _loop is None or _service.keyring is None:
        raise SecretUnavailable("secrets are not configured on this server")
    future = asyncio.run_coroutine_threadsafe(
        _service.reveal_for_job(prompt_id=ctx.prompt_id, name=name), _loop)
    try:
        return future.result(timeout=TIMEOUT_S)
    except LookupError as exc:
        raise SecretUnavailable(str(exc)) from None
    except Exception as exc:
        from opencomfy.identity.errors import IdentityError

        if isinstance(exc, IdentityError):
            raise SecretUnavailable(exc.message) from None
        raise
