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
from ._websocket import LinkHost as LinkHost
from ._websocket import WebSocketLinkClient as WebSocketLinkClient
from ._websocket import open_websocket_link as open_websocket_link
from ._websocket import serve_websocket_link as serve_websocket_link
from ._websocket_link import LinkRequest as LinkRequest
from ._websocket_link import WebSocketLink as WebSocketLink
from ._websocket_link import WebSocketLinkStatistics as WebSocketLinkStatistics
from ._websocket_protocol import AuthenticationFailed as AuthenticationFailed
from ._websocket_protocol import BadHello as BadHello
from ._websocket_protocol import LinkHandshakeError as LinkHandshakeError
from ._websocket_protocol import LinkRejected as LinkRejected
from ._websocket_protocol import LinkVersionMismatch as LinkVersionMismatch
from ._websocket_protocol import ReconnectBackoff as ReconnectBackoff

__all__ = [
    "AuthenticationFailed",
    "BadHello",
    "BrokerError",
    "Delivery",
    "LinkHandshakeError",
    "LinkHost",
    "LinkRejected",
    "LinkRequest",
    "LinkVersionMismatch",
    "MemoryTransport",
    "NameClaimed",
    "PacketTooLarge",
    "PeerLost",
    "RedisLinkStatistics",
    "ReconnectBackoff",
    "RedisTransport",
    "SystemNameTaken",
    "Transport",
    "TransportError",
    "TransportLink",
    "UnknownRecipient",
    "WebSocketLink",
    "WebSocketLinkClient",
    "WebSocketLinkStatistics",
    "open_websocket_link",
    "serve_websocket_link",
]
