"""A child spec's label: how log records name a child whose name is a key for the supervisor."""

from __future__ import annotations

import logging

import pytest
import trio
from trio.testing import MockClock

from supervision import ChildSpec, Restart, RestartIntensity, SupervisorError, open_supervisor


def test_display_name_is_the_label_or_the_name() -> None:
    """Without a label a child is named by its name in logs."""

    async def start(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()  # pragma: no cover

    assert ChildSpec("worker#12", start).display_name == "worker#12"
    assert ChildSpec("worker#12", start, label="worker").display_name == "worker"


async def test_logs_name_a_child_by_its_label(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Crash, restart and giving up are logged, and the escalated error worded, with the label,
    never the supervisor's key."""

    async def crash_soon(
        stopping: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await trio.sleep(1)
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="supervision")
    spec = ChildSpec("worker#12", crash_soon, Restart.PERMANENT, label="worker")
    with pytest.raises(SupervisorError, match=r"^supervisor gave up: restarting child 'worker' "):
        async with open_supervisor(intensity=RestartIntensity(max_restarts=1, within=10)) as sup:
            await sup.start_child(spec)
            await trio.sleep(5)
    messages = [record.getMessage() for record in caplog.records]
    assert any("'worker' crashed" in message for message in messages)
    assert any("restarting 'worker'" in message for message in messages)
    assert any("giving up after child 'worker'" in message for message in messages)
    assert not [message for message in messages if "#12" in message]
