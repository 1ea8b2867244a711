"""MemoryEventBus: thread-safe publish, ordered delivery on the loop, bounded buffers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from opencomfy.events.base import BusMessage
from opencomfy.events.memory import MemoryEventBus


def msg(kind: str = "executing", **data) -> BusMessage:
    return BusMessage(kind=kind, data=data)


async def test_publish_from_threads_keeps_each_threads_order():
    bus = MemoryEventBus()
    sub = bus.subscribe()

    def produce(tag: str) -> None:
        for i in range(500):
            bus.publish(msg(tag=tag, i=i))

    threads = [threading.Thread(target=produce, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = {"a": [], "b": []}
    for _ in range(1000):
        m = await asyncio.wait_for(sub.get(), 2)
        seen[m.data["tag"]].append(m.data["i"])
    assert seen["a"] == list(range(500)) and seen["b"] == list(range(500))
    assert sub.get_nowait() is None


async def test_publish_on_the_loop_is_delivered_at_once():
    bus = MemoryEventBus()
    sub = bus.subscribe()
    bus.publish(msg(i=1))
    assert sub.get_nowait().data == {"i": 1}


async def test_kinds_filter_and_listeners():
    bus = MemoryEventBus()
    only_free = bus.subscribe(kinds=["free"])
    calls: list[str] = []

    def broken(m: BusMessage) -> None:
        raise RuntimeError("a broken listener must not stop the others")

    bus.add_listener(broken)
    remove = bus.add_listener(lambda m: calls.append(m.kind), kinds=["interrupt"])
    bus.publish(msg("interrupt"))
    bus.publish(msg("free"))
    bus.publish(msg("progress"))
    assert calls == ["interrupt"]
    assert only_free.get_nowait().kind == "free" and only_free.get_nowait() is None
    remove()
    bus.publish(msg("interrupt"))
    assert calls == ["interrupt"]


async def test_full_buffer_drops_progress_before_anything_else():
    bus = MemoryEventBus()
    sub = bus.subscribe(maxsize=3)
    bus.publish(msg("executing", n=1))
    bus.publish(msg("progress", n=2))
    bus.publish(msg("executed", n=3))
    bus.publish(msg("execution_success", n=4))   # evicts the progress message
    bus.publish(msg("executing", n=5))           # nothing droppable left: evicts the oldest
    kinds = [sub.get_nowait().data["n"] for _ in range(3)]
    assert kinds == [3, 4, 5]
    assert sub.dropped == 2


async def test_get_waits_and_close_ends_iteration():
    bus = MemoryEventBus()
    sub = bus.subscribe()
    waiter = asyncio.ensure_future(sub.get())
    await asyncio.sleep(0)
    threading.Thread(target=bus.publish, args=(msg(i=7),)).start()
    assert (await asyncio.wait_for(waiter, 2)).data == {"i": 7}
    bus.publish(msg(i=8))
    sub.close()
    assert [m.data["i"] async for m in sub] == [8]
    with pytest.raises(EOFError):
        await sub.get()
    bus.publish(msg(i=9))  # a closed subscription no longer receives


def test_publish_without_a_loop_or_subscribers_is_harmless():
    bus = MemoryEventBus()
    bus.publish(msg(i=1))


async def test_a_burst_from_another_thread_wakes_the_loop_once():
    bus = MemoryEventBus()
    sub = bus.subscribe()
    drains = 0
    drain = bus._drain_foreign

    def counting_drain() -> None:
        nonlocal drains
        drains += 1
        drain()

    bus._drain_foreign = counting_drain
    # The loop is blocked in join() while the thread publishes: one drain must carry all.
    t = threading.Thread(target=lambda: [bus.publish(msg(i=i)) for i in range(1000)])
    t.start()
    t.join()
    await asyncio.sleep(0)
    assert drains == 1
    assert [sub.get_nowait().data["i"] for _ in range(1000)] == list(range(1000))
