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
        super().__init__(f"no system reachable through this transport holds {name!r}")


class NameClaimed(TransportError, ValueError):
    """A name was claimed while another live system holds it.

    Attributes:
        name: the contested name.
        owner: the system that holds it.
    """

    def __init__(self, name: str, owner: str) -> None:
        self.name = name
        self.owner = owner
        super().__init__(f"name {name!r} is already held by system {owner!r}")


class SystemNameTaken(TransportError, ValueError):
    """Two actor systems connected to one transport under the same system name.

    Attributes:
        system: the duplicated system name.
    """

    def __init__(self, system: str) -> None:
        self.system = system
        super().__init__(f"a system named {system!r} is already connected to this transport")
