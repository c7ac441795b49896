"""FrameInbox: the actor side of bridges, taking a bridged actor's inbound frames in order.

Theory of operation
-------------------
A bridge hands its frames to the active bridged actor (see `actors._bridges.endpoint`); each
arrives in the actor's mailbox and is settled with a `BridgeAck`: handled, or handed back.

Rule 1: an actor that is not (or no longer) active for a bridge hands the frame back, and once
it handed back a frame of some epoch it hands back every later frame of that epoch, so no
frame overtakes one that went back to the bridge's queue.

Rule 2: a frame nobody can read is dropped (counted as hostile and logged) and settled as
handled, so the bridge goes on with the next one instead of offering it to the next owner.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from .._exceptions import DecodeError
from .._routing.router import Router
from .._wire.envelope import BridgeAck, BridgeFrame, Envelope
from .endpoint import bridge_address

logger = logging.getLogger("actors._runtime.actor")


@attrs.define(eq=False)
class FrameInbox:
    """Takes one actor's inbound bridge frames and settles each with its bridge."""

    name: str
    """The actor's name (the acks' sender)."""
    router: Router
    """The system's router."""
    bridged: tuple[str, ...] | None
    """The bridges the actor takes frames from: None (not bridged), () (every bridge)."""
    current: str | None = None
    """The bridge of the frame being handled, while `on_frame` runs."""
    _returned_epochs: dict[str, int] = attrs.field(factory=dict)

    def accepts(self, bridge: str, *, active: bool) -> bool:
        """Whether frames of `bridge` reach this actor now."""
        if not active or self.bridged is None:
            return False
        return not self.bridged or bridge in self.bridged

    async def take(
        self,
        envelope: Envelope,
        *,
        active: bool,
        on_frame: Callable[[Any, str], Awaitable[None]],
    ) -> None:
        """Handle one inbound frame (or hand it back), then settle it with its bridge."""
        message: BridgeFrame = envelope.body
        bridge = message.bridge
        if not self.accepts(bridge, active=active) or message.epoch <= self._returned_epochs.get(
            bridge, -1
        ):
            self._returned_epochs[bridge] = message.epoch
            await self._settle(message, returned=True)
            return
        try:
            frame = self.router.codec.decode_value(message.frame_type, message.data)
        except DecodeError as exc:
            self.router.counters.hostile += 1
            logger.warning(
                "actor %r (system %r) dropped an undecodable frame on bridge %r: %s",
                self.name,
                self.router.system,
                bridge,
                exc,
            )
        else:
            self.current = bridge
            try:
                await on_frame(frame, bridge)
            finally:
                self.current = None
        await self._settle(message, returned=False)

    async def _settle(self, message: BridgeFrame, *, returned: bool) -> None:
        ack = BridgeAck(
            bridge=message.bridge, seq=message.seq, epoch=message.epoch, returned=returned
        )
        await self.router.send(
            self.router.envelope(self.name, bridge_address(message.bridge), ack), missing_ok=True
        )
