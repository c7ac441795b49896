"""Job vocabulary shared by both sides: requests, events, results, errors and `@job`.

Runtime objects (attrs), not wire types: the wire messages are in `_envelope`.
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, overload

import attrs

from .._exceptions import ActorError
from .._wire.envelope import JobStatus

P = TypeVar("P")
F = TypeVar("F", bound=Callable[..., Any])

CREDIT_WINDOW = 64
"""Most update and stream events a worker may have unread at one requester, per job.

A worker whose requester has not read this many events waits in `send_job_update` /
`send_job_stream_*` until the requester reads (backpressure instead of an unbounded queue).
"""

DEADLINE_PASSED = "deadline passed"
"""The error text of a member cancelled because the job's deadline passed."""


@attrs.frozen
class JobRequest(Generic[P]):
    """A job as its worker's handler sees it.

    Annotate a handler's parameter as ``JobRequest[MyStruct]`` and the payload is validated
    into ``MyStruct`` before the handler runs; an invalid payload is answered ERROR.
    """

    job_id: str
    """The job's id, shared by every member of a group."""
    name: str | None
    """Which handler was asked for (None: the default one)."""
    payload: P
    """The job's input."""
    sender: str
    """The requester's name."""
    deadline: float | None = None
    """The Trio time (`trio.current_time()`) by which the job must end, if any."""


class JobEventType(enum.Enum):
    """Kinds of intermediate job events."""

    UPDATE = "update"
    """A progress update (`send_job_update`)."""
    STREAM_START = "stream_start"
    """The worker began streaming (`send_job_stream_start`)."""
    STREAM_DATA = "stream_data"
    """One chunk of the stream (`send_job_stream_data`)."""
    STREAM_END = "stream_end"
    """The stream ended; its data is the member's response (`send_job_stream_end`)."""


@attrs.frozen
class JobEvent:
    """An update or stream event from one worker, in the order the worker sent it."""

    UPDATE: ClassVar[JobEventType] = JobEventType.UPDATE
    """Shorthand for `JobEventType.UPDATE` (``event.type is JobEvent.UPDATE``)."""
    STREAM_START: ClassVar[JobEventType] = JobEventType.STREAM_START
    """Shorthand for `JobEventType.STREAM_START`."""
    STREAM_DATA: ClassVar[JobEventType] = JobEventType.STREAM_DATA
    """Shorthand for `JobEventType.STREAM_DATA`."""
    STREAM_END: ClassVar[JobEventType] = JobEventType.STREAM_END
    """Shorthand for `JobEventType.STREAM_END`."""

    type: JobEventType
    """What kind of event it is."""
    actor_name: str
    """The worker that sent it."""
    data: Any
    """What the worker sent."""
    job_id: str
    """The job it belongs to."""


@attrs.frozen
class JobResponse:
    """One worker's terminal answer; given to `on_job_response` and `on_job_error`."""

    job_id: str
    """The job it belongs to."""
    actor_name: str
    """The worker that answered."""
    status: JobStatus
    """The terminal status."""
    response: Any = None
    """The result (for COMPLETED) or what the worker sent along."""
    error: str | None = None
    """For a status other than COMPLETED, what went wrong."""


@attrs.frozen
class JobResult:
    """Every member's outcome once a job has ended; given to `on_job_completed`."""

    job_id: str
    """The job's id."""
    statuses: Mapping[str, JobStatus]
    """Worker name -> terminal status."""
    responses: Mapping[str, Any]
    """Worker name -> response, for members that sent one."""


@attrs.frozen
class JobCancellation:
    """What a worker's `on_job_cancelled` hook is told."""

    job_id: str
    """The cancelled job."""
    reason: str | None
    """Why, if the canceller said."""
    request: JobRequest[Any]
    """The request that was cancelled."""


class JobError(ActorError):
    """A job did not complete: a member answered ERROR, FAILED or CANCELLED, or time ran out.

    Attributes:
        job_id: the job's id.
        statuses: worker name -> terminal status (every member has one).
        responses: worker name -> response, for the members that sent one.
        errors: worker name -> error text, for members that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str,
        statuses: Mapping[str, JobStatus],
        responses: Mapping[str, Any],
        errors: Mapping[str, str | None],
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        """The job's id."""
        self.statuses = dict(statuses)
        """Worker name -> terminal status (every member has one)."""
        self.responses = dict(responses)
        """Worker name -> response, for the members that sent one."""
        self.errors = {name: text for name, text in errors.items() if text}
        """Worker name -> error text, for the members that failed."""

    @property
    def status(self) -> JobStatus | None:
        """The status of a single-worker job (the first member's for a group)."""
        return next(iter(self.statuses.values()), None)

    @property
    def response(self) -> Any:
        """The response of a single-worker job, if one arrived."""
        return next(iter(self.responses.values()), None)


class JobGroupError(JobError):
    """A member of a group with ``cancel_on_error=True`` failed; the rest were cancelled."""


class JobTimeout(JobError, TimeoutError):
    """A job's deadline passed (its own `timeout=` or an enclosing Trio deadline).

    The workers were cancelled; `statuses` and `responses` hold what did arrive.
    """


_JOB_SPEC = "__trio_actors_job__"


@attrs.frozen
class JobHandlerSpec:
    """How `@job` marked a method."""

    name: str | None
    sequential: bool


@overload
def job(fn: F, /) -> F: ...
@overload
def job(*, name: str | None = None, sequential: bool = False) -> Callable[[F], F]: ...


def job(
    fn: F | None = None, /, *, name: str | None = None, sequential: bool = False
) -> F | Callable[[F], F]:
    """Mark an `Actor` method as a job handler.

    ``@job`` marks the default handler (requests without a name); ``@job(name="research")``
    handles requests for that name. Each request runs as its own task in a per-job cancel
    scope, concurrently with others unless ``sequential=True``, which runs requests for that
    name one at a time, in arrival order. A handler may return its response.

    Raises:
        TypeError: if used on something that is not an async function.
    """

    if fn is not None and not callable(fn):
        raise TypeError(
            f"@job takes the handler's name as a keyword: write @job(name={fn!r}), not @job({fn!r})"
        )

    def mark(function: F) -> F:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"@job handlers must be async functions, got {function!r}")
        setattr(function, _JOB_SPEC, JobHandlerSpec(name, sequential))
        return function

    if fn is not None:
        return mark(fn)
    return mark


def job_handlers(cls: type) -> dict[str | None, tuple[str, JobHandlerSpec]]:
    """Collect the `@job` methods of `cls` and its bases: handler name -> (method, spec).

    Raises:
        TypeError: if one class marks two methods for the same job name.
    """
    found: dict[str | None, tuple[str, JobHandlerSpec]] = {}
    for klass in reversed(cls.__mro__):
        own: dict[str | None, str] = {}
        for attribute, value in vars(klass).items():
            spec = getattr(value, _JOB_SPEC, None)
            if isinstance(spec, JobHandlerSpec):
                if spec.name in own:
                    raise TypeError(
                        f"{klass.__name__} has two handlers for job {spec.name!r}: "
                        f"{own[spec.name]!r} and {attribute!r}"
                    )
                own[spec.name] = attribute
                found[spec.name] = (attribute, spec)
    return found


@functools.cache
def payload_type(handler: Callable[..., Any]) -> Any:
    """Return ``T`` if `handler`'s request parameter is annotated ``JobRequest[T]``, else None.

    Cached per function: resolving annotations is far slower than running a small job.
    """
    try:
        hints = typing.get_type_hints(handler)
    except Exception:
        return None
    for parameter, hint in hints.items():
        if parameter == "return":
            continue
        if typing.get_origin(hint) is JobRequest:
            args = typing.get_args(hint)
            if args and args[0] is not Any:
                return args[0]
    return None


def describe(error: BaseException) -> str:
    """Return ``Type: message`` for an error, looking inside single-error groups.

    Never fails: an exception whose ``__str__`` raises is described by its type and that fact.
    """
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    name = type(error).__name__
    try:
        text = str(error)
    except Exception as exc:
        text = f"<its message could not be rendered: {type(exc).__name__}>"
    return f"{name}: {text}" if text else name
