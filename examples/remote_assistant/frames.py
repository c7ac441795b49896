"""The frames the voice front end and the remote assistant exchange over the "voice" bridge.

Both programs import this module under the same name (``examples.remote_assistant.frames``:
run them with ``python -m`` from the repository root), so a frame's wire type name is the same
on both sides.
"""

from __future__ import annotations

import msgspec


class UserText(msgspec.Struct, frozen=True):
    """A line the user typed (in a voice app: what speech-to-text heard)."""

    text: str


class AnswerChunk(msgspec.Struct, frozen=True):
    """A piece of the assistant's streamed answer."""

    text: str


class AnswerEnd(msgspec.Struct, frozen=True):
    """The assistant finished answering one line."""
