"""Errors raised by transports."""

from __future__ import annotations


class TransportError(Exception):
    """Base class of every error a transport raises."""


class UnknownRecipient(TransportError, LookupError):
    """No system reachable through this transport holds the addressed name.

    Attributes:
        name: the name a packet was addressed to.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        """The name a packet was addressed to."""
        super().__init__(f"no system reachable through this transport holds {name!r}")


class NameClaimed(TransportError, ValueError):
    """A name was claimed while another live system holds it.

    Attributes:
        name: the contested name.
        owner: the system that holds it.
    """

    def __init__(self, name: str, owner: str) -> None:
        self.name = name
        """The contested name."""
        self.owner = owner
        """The system that holds it."""
        super().__init__(f"name {name!r} is already held by system {owner!r}")


class SystemNameTaken(TransportError, ValueError):
    """Two actor systems connected to one transport under the same system name.

    Attributes:
        system: the duplicated system name.
    """

    def __init__(self, system: str) -> None:
        self.system = system
        """The duplicated system name."""
        super().__init__(f"a system named {system!r} is already connected to this transport")


class PacketTooLarge(TransportError, ValueError):
    """A packet is larger than the transport carries.

    Attributes:
        size: the packet's size in bytes.
        limit: the largest size the transport accepts.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        """The packet's size in bytes."""
        self.limit = limit
        """The largest size the transport accepts."""
        super().__init__(
            f"packet of {size} bytes exceeds the transport's limit of {limit} bytes; "
            "raise max_packet_size or send less"
        )


class BrokerError(TransportError):
    """The message broker (Redis) refused a command in a way retrying cannot mend.

    Attributes:
        command: the command's name.
        message: the broker's error text.
    """

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        """The command's name."""
        self.message = message
        """The broker's error text."""
        super().__init__(f"redis refused {command!r}: {message}")
