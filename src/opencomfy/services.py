"""The composition root: every service is built once here and kept on the aiohttp app.

Handlers reach services through `request.app[SERVICES]`; nothing else is global, except
the ComfyUI compatibility modules (`folder_paths`, `server.PromptServer.instance`, ...),
whose module-level state custom nodes depend on: connected to these services in one place,
compat/host.py, once they run (app.py).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator

from opencomfy.config import Config

if TYPE_CHECKING:  # imported lazily below so that start-up order stays explicit
    from opencomfy.catalogue import Catalogue
    from opencomfy.db.database import Database
    from opencomfy.engine import Engine, NodeRegistry
    from opencomfy.events.base import EventBus
    from opencomfy.jobs.service import JobService
    from opencomfy.jobs.worker import EmbeddedWorker
    from opencomfy.assets.service import AssetService
    from opencomfy.tasks.service import TaskService
    from opencomfy.identity.service import IdentityService
    from opencomfy.secrets.service import SecretService

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    db: "Database"
    bus: "EventBus"
    registry: "NodeRegistry"
    catalogue: "Catalogue"
    jobs: "JobService"
    # A validation-only engine for POST /prompt (the API side never runs prompts).
    validator: "Engine"
    # Assets over the configured blob store, and the background tasks (downloads, exports, seed).
    assets: "AssetService"
    tasks: "TaskService"
    # Users, workspaces and credentials (the auth middleware's), and encrypted secrets.
    identity: "IdentityService"
    secrets: "SecretService"
    # The in-process worker; None in a process that only serves the API.
    worker: "EmbeddedWorker | None" = None


@contextlib.asynccontextmanager
async def build_services(config: Config, registry: "NodeRegistry") -> AsyncIterator[Services]:
    """Build, start and finally stop every service, in dependency order.

    The node registry is built before the app starts (custom nodes add HTTP routes at import
    time, and aiohttp's router is frozen once the app runs), so it is passed in.
    """
    from opencomfy.catalogue import Catalogue
    from opencomfy.db.database import Database
    from opencomfy.engine import Engine
    from opencomfy.events.memory import MemoryEventBus
    from opencomfy.jobs.service import JobService

    # As ComfyUI does: previews of an earlier run are not kept (the temp folder is ours alone).
    shutil.rmtree(config.temp_dir, ignore_errors=True)
    for folder in (config.state_dir, config.output_dir, config.input_dir, config.temp_dir,
                   config.user_dir, config.models_dir):
        folder.mkdir(parents=True, exist_ok=True)

    db = await Database.open(config.db_url)
    bus = MemoryEventBus()
    catalogue = Catalogue(registry, config)
    jobs = JobService(db=db, bus=bus, workspace_concurrency=config.workspace_concurrency)
    await jobs.recover_after_restart()
    assets, tasks = await _build_assets(config, db)
    from opencomfy.assets.output_recorder import OutputRecorder

    # Jobs' output files become assets (best effort, from the `executed` events on the bus).
    output_recorder = OutputRecorder(bus=bus, assets=assets, output_dir=config.output_dir)
    output_recorder.start()
    worker = None
    if config.embedded_worker:
        from opencomfy.jobs.worker import EmbeddedWorker

        worker = EmbeddedWorker(config=config, jobs=jobs, registry=registry)
        await worker.start()
    identity = await _build_identity(config, db)
    secrets = _build_secrets(config, db)
    services = Services(config=config, db=db, bus=bus, registry=registry,
                        catalogue=catalogue, jobs=jobs, worker=worker,
                        validator=Engine(registry, cache_mode="none"), assets=assets, tasks=tasks,
                        identity=identity, secrets=secrets)
    try:
        yield services
    finally:
        await output_recorder.stop()
        await tasks.close()
        await assets.close()
        if worker is not None:
            await worker.stop()
        await jobs.close()
        await db.close()


async def _build_assets(config: Config, db: "Database") -> tuple["AssetService", "TaskService"]:
    """The blob store named by the config, the asset service over it, and the task runner
    (tasks a previous process left unfinished are failed with a reason)."""
    from opencomfy.assets.service import AssetService
    from opencomfy.blobs import build_blob_store
    from opencomfy.tasks.service import TaskService

    assets = AssetService(db=db, store=build_blob_store(config))
    await assets.open()
    tasks = TaskService(db=db)
    await tasks.recover_after_restart()
    return assets, tasks


async def _build_identity(config: Config, db: "Database") -> "IdentityService":
    """Users, workspaces and credentials; with --auth required the first signing key is made."""
    from opencomfy.identity.service import IdentityService

    identity = IdentityService(db=db, config=config)
    await identity.open()
    return identity


def _build_secrets(config: Config, db: "Database") -> "SecretService":
    """Secrets sealed with AES-GCM keys: OPENCOMFY_SECRETS_KEYS, else the data directory's
    keyring file (made on first start)."""
    from opencomfy.secrets.keyfile import resolve_keyring
    from opencomfy.secrets.service import SecretService

    secrets = SecretService(db=db, keyring=resolve_keyring(configured=config.secrets_keys,
                                                           state_dir=config.state_dir))
    return secrets
