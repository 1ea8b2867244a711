"""WebSocketHub routing, framing and per-client back-pressure, with in-memory transports."""

from __future__ import annotations

import asyncio
import json
import struct

from opencomfy.events.base import BusMessage
from opencomfy.events.fanout import WebSocketHub
from opencomfy.events.memory import MemoryEventBus

FLAGS = {"supports_preview_metadata": True, "supports_progress_text_metadata": True,
         "max_upload_size": 1024}


class RecordingTransport:
    """Records frames; `stalled` makes every send hang like a peer that never reads."""

    def __init__(self, stalled: bool = False) -> None:
        self.frames: list = []
        self.stalled = stalled
        self.aborted = False
        self.closed = False

    async def send_str(self, data: str) -> None:
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def _send(self, data) -> None:
        if self.stalled:
            await asyncio.Event().wait()
        self.frames.append(data)

    async def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def json(self) -> list[dict]:
        return [json.loads(f) for f in self.frames if isinstance(f, str)]

    def types(self) -> list[str]:
        return [m["type"] for m in self.json()]


async def make_hub(remaining: int = 0):
    bus = MemoryEventBus()
    counts = {"calls": 0}

    async def queue_remaining(workspace_id: str) -> int:
        counts["calls"] += 1
        return remaining

    hub = WebSocketHub(bus=bus, queue_remaining=queue_remaining, server_flags=FLAGS)
    await hub.start()
    return bus, hub, counts


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_connect_greets_with_status_and_negotiates_flags():
    bus, hub, _ = await make_hub(remaining=3)
    t = RecordingTransport()
    conn = await hub.connect(sid="abc", workspace_id="local", transport=t)
    hub.negotiate(conn, {"supports_preview_metadata": True})
    await settle()
    assert t.json() == [
        {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}, "sid": "abc"}},
        {"type": "feature_flags", "data": FLAGS},
    ]
    assert conn.supports("supports_preview_metadata")
    await hub.stop()


async def test_events_go_to_the_prompts_client_only():
    bus, hub, _ = await make_hub()
    a, b = RecordingTransport(), RecordingTransport()
    await hub.connect(sid="a", workspace_id="local", transport=a)
    await hub.connect(sid="b", workspace_id="local", transport=b)
    bus.publish(BusMessage("executing", {"node": "1", "prompt_id": "p"}, client_id="a"))
    bus.publish(BusMessage("progress", {"value": 1, "max": 2}, client_id="a"))
    await settle()
    assert a.types() == ["status", "executing", "progress"]
    assert b.types() == ["status"]
    await hub.stop()


async def test_prompt_without_client_broadcasts_only_comfyuis_broadcast_events():
    bus, hub, _ = await make_hub()
    a, b = RecordingTransport(), RecordingTransport()
    await hub.connect(sid="a", workspace_id="local", transport=a)
    await hub.connect(sid="b", workspace_id="local", transport=b)
    other = RecordingTransport()
    await hub.connect(sid="c", workspace_id="team-2", transport=other)
    for kind in ("execution_start", "executing", "progress", "progress_state", "executed",
                 "execution_interrupted", "execution_success"):
        bus.publish(BusMessage(kind, {"prompt_id": "p"}, client_id=None, prompt_id="p"))
    await settle()
    for t in (a, b):
        assert t.types() == ["status", "progress", "progress_state", "execution_interrupted"]
    assert other.types() == ["status"]  # another workspace never sees them
    await hub.stop()


async def test_queue_changed_bursts_coalesce_and_keep_their_place():
    bus, hub, counts = await make_hub(remaining=0)
    a = RecordingTransport()
    await hub.connect(sid="a", workspace_id="local", transport=a)
    for n in range(50):
        bus.publish(BusMessage("queue_changed", {"queue_remaining": n}))
    bus.publish(BusMessage("executing", {"node": None, "prompt_id": "p"}, client_id="a"))
    bus.publish(BusMessage("queue_changed", {}))
    await settle()
    msgs = a.json()
    assert [m["type"] for m in msgs] == ["status", "status", "executing", "status"]
    assert msgs[1]["data"] == {"status": {"exec_info": {"queue_remaining": 49}}}
    assert counts["calls"] == 2  # on connect, and for the message without a count
    await hub.stop()


async def test_previews_use_the_negotiated_frame_type():
    bus, hub, _ = await make_hub()
    new, old = RecordingTransport(), RecordingTransport()
    c_new = await hub.connect(sid="new", workspace_id="local", transport=new)
    hub.negotiate(c_new, {"supports_preview_metadata": True,
                          "supports_progress_text_metadata": True})
    await hub.connect(sid="old", workspace_id="local", transport=old)
    image = b"\x89PNG fake"
    bus.publish(BusMessage("preview", {"image_format": "PNG", "image": image,
                                       "metadata": {"node_id": "5"}}, prompt_id="p"))
    bus.publish(BusMessage("progress_text", {"node_id": "5", "text": "half"}, prompt_id="p"))
    await settle()
    new_bin = [f for f in new.frames if isinstance(f, bytes)]
    old_bin = [f for f in old.frames if isinstance(f, bytes)]
    kind, meta_len = struct.unpack(">II", new_bin[0][:8])
    meta = json.loads(new_bin[0][8:8 + meta_len])
    assert kind == 4 and new_bin[0][8 + meta_len:] == image
    assert meta == {"node_id": "5", "display_node_id": "5", "parent_node_id": None,
                    "real_node_id": "5", "prompt_id": "p", "image_type": "image/png"}
    assert old_bin[0] == struct.pack(">II", 1, 2) + image
    assert new_bin[1] == struct.pack(">II", 3, 1) + b"p" + struct.pack(">I", 1) + b"5half"
    assert old_bin[1] == struct.pack(">II", 3, 1) + b"5half"
    await hub.stop()


async def test_a_stalled_client_drops_progress_then_is_cut_off_without_delaying_others():
    bus, hub, _ = await make_hub()
    stalled, fine = RecordingTransport(stalled=True), RecordingTransport()
    slow = await hub.connect(sid="slow", workspace_id="local", transport=stalled)
    slow.max_frames = 10
    await hub.connect(sid="fine", workspace_id="local", transport=fine)
    for i in range(100):
        bus.publish(BusMessage("progress", {"value": i, "max": 100}))
    await settle()
    assert slow.queued <= 10 and slow.dropped >= 89 and not stalled.aborted
    assert len(fine.json()) == 101  # status + every progress, despite the stalled peer
    for i in range(20):
        bus.publish(BusMessage("queue_changed", {"queue_remaining": i}))
        await settle()
    assert stalled.aborted and slow.closed
    assert len(fine.json()) == 121
    await hub.stop()


async def test_reconnect_replaces_the_old_socket_and_reports_the_running_node():
    bus, hub, _ = await make_hub()
    first = RecordingTransport()
    await hub.connect(sid="me", workspace_id="local", transport=first)
    bus.publish(BusMessage("executing", {"node": "7", "display_node": "7", "prompt_id": "p"},
                           client_id="me"))
    await settle()
    second = RecordingTransport()
    await hub.connect(sid="me", workspace_id="local", transport=second)
    await settle()
    assert first.closed
    assert second.json()[1] == {"type": "executing",
                                "data": {"node": "7", "display_node": "7", "prompt_id": "p"}}
    bus.publish(BusMessage("execution_success", {"prompt_id": "p"}, client_id="me"))
    await settle()
    third = RecordingTransport()
    await hub.connect(sid="me", workspace_id="local", transport=third)
    await settle()
    assert third.types() == ["status"]
    await hub.stop()


async def test_the_same_client_id_in_two_workspaces_are_two_clients():
    bus, hub, _ = await make_hub()
    mine, theirs = RecordingTransport(), RecordingTransport()
    await hub.connect(sid="same", workspace_id="w1", transport=mine)
    await hub.connect(sid="same", workspace_id="w2", transport=theirs)
    bus.publish(BusMessage("executing", {"node": "1", "prompt_id": "p"}, client_id="same",
                           workspace_id="w1"))
    bus.publish(BusMessage("queue_changed", {"queue_remaining": 4}, workspace_id="w2"))
    await settle()
    assert not mine.closed and not theirs.closed  # neither replaced the other
    assert mine.types() == ["status", "executing"]
    assert theirs.types() == ["status", "status"]
    await hub.stop()
    assert mine.closed and theirs.closed


async def test_progress_text_has_no_prompt_id_unless_the_server_announces_it():
    bus = MemoryEventBus()

    async def queue_remaining(workspace_id: str) -> int:
        return 0

    hub = WebSocketHub(bus=bus, queue_remaining=queue_remaining,
                       server_flags={"supports_preview_metadata": True})
    await hub.start()
    t = RecordingTransport()
    conn = await hub.connect(sid="a", workspace_id="local", transport=t)
    hub.negotiate(conn, {"supports_progress_text_metadata": True})
    bus.publish(BusMessage("progress_text", {"node_id": "9", "text": "hi"}, prompt_id="p"))
    await settle()
    assert [f for f in t.frames if isinstance(f, bytes)] == [struct.pack(">II", 3, 1) + b"9hi"]
    await hub.stop()


async def test_packs_writing_to_a_socket_directly_go_through_its_queue():
    bus, hub, _ = await make_hub()
    t = RecordingTransport()
    await hub.connect(sid="a", workspace_id="local", transport=t)
    sock = hub.clients["a"]  # what PromptServer.instance.sockets["a"] gives a custom node
    await sock.send_json({"type": "my_pack.hello", "data": {"x": 1}})
    await sock.send_bytes(b"\x00\x00\x00\x07raw")
    await settle()
    assert t.json()[-1] == {"type": "my_pack.hello", "data": {"x": 1}}
    assert t.frames[-1] == b"\x00\x00\x00\x07raw"
    await hub.stop()


async def test_events_of_a_prompt_run_while_the_greeting_is_read_are_not_lost():
    """A client may queue a prompt as soon as the handshake is done; if that prompt runs
    while the hub still reads the queue count for the greeting, its events must reach the
    client (after the greeting), not go nowhere."""
    bus = MemoryEventBus()
    count_asked = asyncio.Event()
    release = asyncio.Event()

    async def slow_queue_remaining(workspace_id: str) -> int:
        count_asked.set()
        await release.wait()
        return 1

    hub = WebSocketHub(bus=bus, queue_remaining=slow_queue_remaining, server_flags=FLAGS)
    await hub.start()
    t = RecordingTransport()
    connecting = asyncio.ensure_future(hub.connect(sid="c", workspace_id="local", transport=t))
    await count_asked.wait()
    bus.publish(BusMessage("execution_start", {"prompt_id": "p"}, client_id="c", prompt_id="p"))
    bus.publish(BusMessage("executing", {"node": None, "prompt_id": "p"}, client_id="c",
                           prompt_id="p"))
    await settle()
    assert t.frames == []  # nothing goes out before the greeting
    release.set()
    await connecting
    await settle()
    assert t.types() == ["status", "execution_start", "executing"]
    assert t.json()[0]["data"]["sid"] == "c"
    await hub.stop()


def _parse_ws_frames(data: bytes) -> list:
    """Decode unmasked server frames (test helper, independent of the encoder)."""
    out, i = [], 0
    while i < len(data):
        first, second = data[i], data[i + 1]
        assert first & 0x80 and not second & 0x80  # FIN, no mask
        n, i = second & 0x7F, i + 2
        if n == 126:
            n, i = struct.unpack(">H", data[i:i + 2])[0], i + 2
        elif n == 127:
            n, i = struct.unpack(">Q", data[i:i + 8])[0], i + 8
        payload, i = data[i:i + n], i + n
        out.append(payload.decode() if first & 0x0F == 1 else payload)
    return out


def test_websocket_frames_encode_every_length_class():
    from opencomfy.events.frames import websocket_frames

    messages = ["", "é" * 10, "x" * 125, "y" * 126, b"\x00" * 65535, b"\x01" * 65536, "z" * 70000]
    assert _parse_ws_frames(websocket_frames(messages)) == messages


class BatchingTransport(RecordingTransport):
    """A transport that writes several frames at once, like the aiohttp adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list] = []

    async def send_frames(self, batch: list) -> None:
        self.writes.append(list(batch))
        self.frames.extend(batch)


async def test_frames_queued_together_go_out_in_one_write_in_order():
    bus, hub, _ = await make_hub(remaining=2)
    t = BatchingTransport()
    await hub.connect(sid="a", workspace_id="local", transport=t)
    await settle()
    for node in ("1", "2", "3"):
        bus.publish(BusMessage("executing", {"node": node, "prompt_id": "p"}, client_id="a"))
    bus.publish(BusMessage("executing", {"node": None, "prompt_id": "p"}, client_id="a"))
    await settle()
    assert t.types() == ["status"] + ["executing"] * 4
    assert [m["data"]["node"] for m in t.json()[1:]] == ["1", "2", "3", None]
    assert len(t.writes) == 2  # the greeting, then the four events together
    await hub.stop()


async def test_frames_wait_briefly_for_company_but_the_end_of_a_prompt_goes_at_once():
    from opencomfy.events.fanout import CORK_SECONDS

    bus, hub, _ = await make_hub()
    t = BatchingTransport()
    await hub.connect(sid="a", workspace_id="local", transport=t)
    await settle()
    assert len(t.writes) == 1  # the greeting is not held back
    bus.publish(BusMessage("executing", {"node": "1", "prompt_id": "p"}, client_id="a"))
    await settle()
    assert len(t.writes) == 1  # corked...
    await asyncio.sleep(CORK_SECONDS * 5)
    assert len(t.writes) == 2  # ...but not for long
    bus.publish(BusMessage("executed", {"node": "1", "output": {}, "prompt_id": "p"}, client_id="a"))
    bus.publish(BusMessage("executing", {"node": None, "prompt_id": "p"}, client_id="a"))
    await settle()
    assert len(t.writes) == 3 and [json.loads(f)["type"] for f in t.writes[2]] == ["executed", "executing"]
    await hub.stop()


async def test_a_connect_cancelled_while_greeting_leaves_no_client_behind():
    bus = MemoryEventBus()

    async def never(workspace_id: str) -> int:
        await asyncio.Event().wait()
        return 0

    hub = WebSocketHub(bus=bus, queue_remaining=never, server_flags=FLAGS)
    await hub.start()
    t = RecordingTransport()
    connecting = asyncio.ensure_future(hub.connect(sid="c", workspace_id="local", transport=t))
    await settle()
    assert "c" in hub.clients
    connecting.cancel()
    await settle()
    assert "c" not in hub.clients and t.aborted
    await hub.stop()
