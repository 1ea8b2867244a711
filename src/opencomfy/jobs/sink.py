"""The engine's EventSink for a job: each engine event becomes a BusMessage for its client."""

from __future__ import annotations

from typing import Callable

from opencomfy.events.base import RESERVED_KINDS, BusMessage


class BusEventSink:
    """Turns the engine's synchronous, never-blocking sink calls into bus messages tagged
    with the job's client, workspace and prompt id. `publish` must itself never block."""

    def __init__(self, publish: Callable[[BusMessage], None], *, prompt_id: str,
                 client_id: str | None, workspace_id: str = "local") -> None:
        self._publish = publish
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.workspace_id = workspace_id

    def _message(self, kind: str, data: dict | bytes) -> BusMessage:
        return BusMessage(kind=kind, data=data, client_id=self.client_id,
                          workspace_id=self.workspace_id, prompt_id=self.prompt_id)

    def send(self, event: str, data: dict) -> None:
        """A JSON event ("executing", "progress", "executed", ...)."""
        if event in RESERVED_KINDS:  # a custom node's event must never pose as a control message
            self._publish(self._message("raw", {"event": event, "data": data}))
            return
        self._publish(self._message(event, data))

    def send_preview(self, image_format: str, image: bytes, metadata: dict | None = None) -> None:
        """An encoded preview image ("JPEG" or "PNG"), sent as a binary websocket frame."""
        meta = dict(metadata or {})
        meta.setdefault("prompt_id", self.prompt_id)
        self._publish(self._message("preview", {
            "image_format": image_format.upper(), "image": bytes(image), "metadata": meta}))

    def send_progress_text(self, node_id: str, text: str) -> None:
        """A node's progress text (binary frame type 3)."""
        self._publish(self._message("progress_text", {"node_id": str(node_id), "text": str(text)}))
