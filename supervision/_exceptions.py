"""Errors raised by the supervision package."""

from __future__ import annotations

__all__ = ["SupervisorError"]


class SupervisorError(Exception):
    """A supervisor gave up: its children kept ending faster than it may restart them.

    It is raised out of `open_supervisor`'s ``async with`` block (and out of a
    `Supervisor.start_child` call that was waiting on the failed restart), so a
    supervisor running inside a child of another supervisor makes that child
    crash, and the parent decides in turn: failure escalates up the tree.
    Its ``__cause__`` is the error of the last exit, or None if that child
    returned normally.

    Args:
        child: the name of the child whose exit made the supervisor give up.
        history: times of the restarts in the intensity window, oldest first,
            including the one that was refused.
        within: the length of the intensity window, in seconds.
        max_restarts: how many restarts the window allows.
    """

    def __init__(
        self, child: str, history: tuple[float, ...], *, within: float, max_restarts: int
    ) -> None:
        super().__init__(
            f"supervisor gave up: restarting child {child!r} would make {len(history)} "
            f"restarts within {within}s, more than max_restarts={max_restarts}"
        )
        self.child = child
        """The name of the child whose exit made the supervisor give up."""
        self.history = history
        """Times of the restarts in the window, oldest first."""
        self.within = within
        """The length of the intensity window, in seconds."""
        self.max_restarts = max_restarts
        """How many restarts the window allows."""
