"""Events: fan-out pub/sub and durable streams under one API.

See :class:`Events` (``rk.events``), :class:`Topic` and the guarantees in docs/events.md.
"""

from redkit.errors import SubscriptionOverflowError
from redkit.events.durable import AsyncConsumer, Consumer
from redkit.events.events import AsyncEvents, AsyncTopic, Events, Topic, TopicOptions
from redkit.events.fanout import AsyncSubscription, Subscription
from redkit.events.messages import Gap, Message
from redkit.events.ops import GroupInfo, TopicInfo

__all__ = [
    "AsyncConsumer",
    "AsyncEvents",
    "AsyncSubscription",
    "AsyncTopic",
    "Consumer",
    "Events",
    "Gap",
    "GroupInfo",
    "Message",
    "Subscription",
    "SubscriptionOverflowError",
    "Topic",
    "TopicInfo",
    "TopicOptions",
]
