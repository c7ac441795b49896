"""Checks run when an `Actor` subclass is defined or constructed, so mistakes surface early.

A handler that would hide one of `Actor`'s methods, a handler with the wrong signature, a hook
that is not ``async``, a bound that is not a positive int: each raises when the class is
defined (or the actor constructed), not at the first request.
"""

from __future__ import annotations

import inspect

from .._jobs.types import JobHandlerSpec


def check_bound(parameter: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{parameter} must be > 0, got {value!r}")


RESERVED = frozenset(
    {
        "job",
        "job_group",
        "request_job",
        "request_job_group",
        "cancel_job",
        "request_job_update",
        "send_job_response",
        "send_job_update",
        "send_job_stream_start",
        "send_job_stream_data",
        "send_job_stream_end",
        "send_message",
        "send_error",
        "end",
        "cancel",
        "add_child",
        "remove_child",
        "activate_agent",
        "deactivate_agent",
        "handoff_to",
        "watch_agent",
        "send_frame",
        "open_bridge",
        "start_soon",
    }
)
"""Methods of `Actor` a subclass must not replace with a job handler."""

HOOKS = (
    "on_ready",
    "on_finished",
    "on_error",
    "on_activated",
    "on_deactivated",
    "on_agent_ready",
    "on_agent_error",
    "on_message",
    "on_frame",
    "on_job_request",
    "on_job_cancelled",
    "on_job_update_requested",
    "on_job_response",
    "on_job_update",
    "on_job_stream_start",
    "on_job_stream_data",
    "on_job_stream_end",
    "on_job_completed",
    "on_job_error",
)
"""Hooks the runtime awaits: an override must be an async function."""


def check_handler_signature(cls: type, attribute: str) -> None:
    function = getattr(cls, attribute)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    positional = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    required_extra = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.default is parameter.empty and parameter.kind in (parameter.KEYWORD_ONLY,)
    ]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    if (len(positional) != 2 and not has_varargs) or required_extra:
        raise TypeError(
            f"{cls.__name__}.{attribute} must take (self, request): a job handler gets one "
            f"JobRequest, got {signature}"
        )


def check_actor_class(cls: type, table: dict[str | None, tuple[str, JobHandlerSpec]]) -> None:
    """Refuse an `Actor` subclass whose job handlers or hooks cannot work.

    Raises:
        TypeError: naming the method and what is wrong with it.
    """
    for attribute, _spec in table.values():
        if attribute in RESERVED:
            raise TypeError(
                f"{cls.__name__}.{attribute} is a job handler that hides Actor.{attribute}; "
                "give the method another name (the job's name is set with @job(name=...))"
            )
        check_handler_signature(cls, attribute)
    for hook in HOOKS:
        method = getattr(cls, hook, None)
        if method is not None and not inspect.iscoroutinefunction(method):
            raise TypeError(f"{cls.__name__}.{hook} must be an async function (async def)")
