"""The WebSocket link's name rules, without a socket: who may speak to whom, and how session
names map between local and wire (`actors._runtime.links._Names`)."""

from __future__ import annotations

from typing import Any

import msgspec

from actors._runtime.links import _Names
from actors._wire.envelope import (
    AgentGone,
    AgentInfo,
    AgentReady,
    BridgeFrame,
    Envelope,
    JobRequestMessage,
    SystemGone,
)


def _names(prefix: str = "") -> _Names:
    return _Names(
        system="back",
        prefix=prefix,
        peer="front",
        peer_alias=prefix + "front",
        exports=frozenset({"assistant"}),
        imports=frozenset({"voice", "bridge:voice"}),
        peer_exports=frozenset({"voice", "bridge:voice", "extra"}),
    )


def _envelope(sender: str, recipient: str, body: Any = None) -> Envelope:
    return Envelope(
        id="1", sender=sender, recipient=recipient, body=body or JobRequestMessage(), job_id="j"
    )


def test_inbound_accepts_exported_recipients_from_exported_senders() -> None:
    """A peer may address our exports or our system, from its exports or its system."""
    names = _names()
    for sender, recipient in [
        ("voice", "assistant"),
        ("system:front", "assistant"),
        ("voice", "system:back"),
    ]:
        accepted = names.inbound(_envelope(sender, recipient))
        assert isinstance(accepted, Envelope), accepted
        assert (accepted.sender, accepted.recipient) == (sender, recipient)


def test_inbound_refuses_other_recipients_and_forged_senders() -> None:
    """An unexported recipient, a sender the peer did not export, or a sender speaking for
    another system is refused with the reason."""
    names = _names()
    assert "does not export" in str(names.inbound(_envelope("voice", "other")))
    assert "peer does not export" in str(names.inbound(_envelope("intruder", "assistant")))
    assert "peer does not export" in str(names.inbound(_envelope("system:back", "assistant")))


def test_outbound_needs_an_imported_recipient_and_an_exported_sender() -> None:
    """Only exported senders (or the system) reach imported names (or the peer system)."""
    names = _names()
    assert isinstance(names.outbound(_envelope("assistant", "voice")), Envelope)
    assert isinstance(names.outbound(_envelope("system:back", "system:front")), Envelope)
    assert "not imported" in str(names.outbound(_envelope("assistant", "extra")))
    assert "not exported" in str(names.outbound(_envelope("helper", "voice")))


def test_session_names_are_scoped_locally_and_plain_on_the_wire() -> None:
    """With a session prefix, names (bridge names and the peer system included) are local
    under the prefix and plain on the wire, in both directions."""
    names = _names("s1/")
    frame = BridgeFrame(bridge="voice", seq=1, epoch=0, frame_type="t", data=msgspec.Raw(b"\x90"))
    inbound = names.inbound(_envelope("bridge:voice", "assistant", frame))
    assert isinstance(inbound, Envelope)
    assert (inbound.sender, inbound.recipient) == ("bridge:s1/voice", "s1/assistant")
    assert inbound.body.bridge == "s1/voice"
    answer = msgspec.structs.replace(frame, seq=0)
    outbound = names.outbound(_envelope("s1/assistant", "bridge:s1/voice", answer))
    assert isinstance(outbound, Envelope)
    assert (outbound.sender, outbound.recipient) == ("assistant", "bridge:voice")
    assert outbound.body.bridge == "voice"
    system = names.inbound(_envelope("system:front", "assistant"))
    assert isinstance(system, Envelope) and system.sender == "system:s1/front"
    assert set(names.routed()) == {"s1/voice", "bridge:s1/voice", "system:s1/front"}


def test_another_sessions_names_do_not_cross() -> None:
    """Session s1's link refuses what session s2's actors send, and a client cannot reach
    another session's actor by its local name."""
    names = _names("s1/")
    assert isinstance(names.outbound(_envelope("s2/assistant", "s1/voice")), str)
    assert isinstance(names.outbound(_envelope("s1/assistant", "s2/voice")), str)
    assert isinstance(names.inbound(_envelope("voice", "s2/assistant")), str)


def test_announcements_cross_only_for_imported_exports_of_the_peer() -> None:
    """A peer's AgentReady/AgentGone about an exported name we import is taken (renamed into
    the session); one it does not export is refused; one we do not import is ignored; other
    broadcasts are refused."""
    names = _names("s1/")
    ready = names.announcement(AgentReady(info=AgentInfo(name="voice", system="front")))
    assert isinstance(ready, AgentReady)
    assert (ready.info.name, ready.info.system) == ("s1/voice", "s1/front")
    gone = names.announcement(AgentGone(name="voice", system="front", crashed=True))
    assert isinstance(gone, AgentGone) and gone.name == "s1/voice" and gone.crashed
    assert "does not export" in str(
        names.announcement(AgentReady(info=AgentInfo(name="ghost", system="front")))
    )
    assert "spoke for system" in str(
        names.announcement(AgentReady(info=AgentInfo(name="voice", system="back")))
    )
    assert names.announcement(AgentReady(info=AgentInfo(name="extra", system="front"))) == ""
    assert "may not cross" in str(names.announcement(SystemGone(system="back")))


def test_our_announcements_use_wire_names() -> None:
    """Our exported actor is announced under its plain name, its bridges unscoped."""
    names = _names("s1/")
    info = AgentInfo(name="s1/assistant", system="back", parent="s1/boss", bridged=("s1/voice",))
    ready = names.announce(info)
    assert ready is not None
    assert (ready.info.name, ready.info.parent, ready.info.bridged) == (
        "assistant",
        None,
        ("voice",),
    )
    assert names.announce(AgentInfo(name="s2/assistant", system="back")) is None
