"""Supervision: restart Trio tasks when they end, with Erlang/OTP's rules.

A supervisor runs children, any async function that calls
``task_status.started()``, and restarts them when they crash, following a
pure `SupervisorPolicy`: restart types, strategies, restart intensity and
backoff. It knows nothing about actors; `actors` builds on it.
"""

from ._backoff import Backoff as Backoff
from ._child import ChildSpec as ChildSpec
from ._exceptions import SupervisorError as SupervisorError
from ._policy import Action as Action
from ._policy import ChildExit as ChildExit
from ._policy import Decision as Decision
from ._policy import Restart as Restart
from ._policy import RestartIntensity as RestartIntensity
from ._policy import Strategy as Strategy
from ._policy import SupervisorPolicy as SupervisorPolicy
from ._supervisor import Supervisor as Supervisor
from ._supervisor import open_supervisor as open_supervisor

__all__ = [
    "Action",
    "Backoff",
    "ChildExit",
    "ChildSpec",
    "Decision",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorPolicy",
    "open_supervisor",
]
