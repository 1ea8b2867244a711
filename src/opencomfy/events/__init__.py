"""Events: the bus that carries engine events, queue changes and control messages.

`base` defines the message and the bus interface; `memory` is the in-process implementation.
"""

from opencomfy.events.base import BusMessage, EventBus, Subscription

__all__ = ["BusMessage", "EventBus", "Subscription"]
