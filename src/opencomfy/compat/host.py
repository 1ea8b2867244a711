"""The host side of the ComfyUI compatibility layer: every process-global hook through which
custom nodes reach our running services, installed in one place.

ComfyUI's modules keep module-level state that packs rely on. Once the services and the
websocket hub run, `install_host_hooks` fills it in:

- `server.PromptServer.instance`: `send_sync` / `send` outside a run go to the event bus
  (the senders are http/ws.py's), `sockets` are the connected clients, and `prompt_queue`
  is a view over the job service (compat/prompt_queue.py);
- `comfy.model_management.interrupt_current_processing()` outside a run stops the embedded
  worker's running job, as in ComfyUI;
- `opencomfy.secrets.node_access.get_secret()` reads the running job's workspace's secrets
  through the secret service, on the server's loop.

The state read while nodes are imported (`folder_paths`' folders, `comfy.cli_args.args`,
the `PromptServer` instance itself) is set earlier, when the node registry is built
(nodes/setup.py): core nodes and packs read it at import time, before any service exists,
and a worker process without services needs it too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opencomfy.services import Services


def install_host_hooks(services: "Services", *, sockets: dict) -> None:
    """Connect the compat modules to `services` (call once, on the server's loop, when the
    services and the websocket hub run; `sockets` is the hub's client table)."""
    from opencomfy.compat.comfy import model_management
    from opencomfy.compat.prompt_queue import attach_prompt_queue
    from opencomfy.compat.server import PromptServer
    from opencomfy.http.ws import prompt_server_senders
    from opencomfy.secrets import node_access

    node_access.install(services.secrets, asyncio.get_running_loop())  # nodes' get_secret()
    attach_prompt_queue(services.jobs)  # PromptServer.instance.prompt_queue
    if PromptServer.instance is not None:
        send, send_binary = prompt_server_senders(services.bus)
        PromptServer.instance.attach(send=send, send_binary=send_binary, sockets=sockets)
    runner = services.worker.runner if services.worker is not None else None
    if runner is not None:
        def interrupt(value: bool = True) -> None:
            if value:
                runner.interrupt()

        model_management.attach_interrupt(interrupt)
