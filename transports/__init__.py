"""Transports: how envelopes move between actor systems.

A transport moves encoded envelopes between actor systems and tells them which actor names
live where. Actor code never changes with the transport.
"""

from ._abc import Delivery as Delivery
from ._abc import PeerLost as PeerLost
from ._abc import Transport as Transport
from ._abc import TransportLink as TransportLink
from ._exceptions import BrokerError as BrokerError
from ._exceptions import NameClaimed as NameClaimed
from ._exceptions import PacketTooLarge as PacketTooLarge
from ._exceptions import SystemNameTaken as SystemNameTaken
from ._exceptions import TransportError as TransportError
from ._exceptions import UnknownRecipient as UnknownRecipient
from ._memory import MemoryTransport as MemoryTransport
from ._redis import RedisTransport as RedisTransport
from ._redis_link import RedisLinkStatistics as RedisLinkStatistics

__all__ = [
    "BrokerError",
    "Delivery",
    "MemoryTransport",
    "NameClaimed",
    "PacketTooLarge",
    "PeerLost",
    "RedisLinkStatistics",
    "RedisTransport",
    "SystemNameTaken",
    "Transport",
    "TransportError",
    "TransportLink",
    "UnknownRecipient",
]
