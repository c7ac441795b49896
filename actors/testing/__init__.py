"""Testing helpers for code built on trio-actors, like `trio.testing`.

The pytest plugin (registered under the ``pytest11`` entry point, so installing the package
enables it) provides these fixtures:

- ``actor_system``: an in-memory actor system in strict mode (every envelope round-trips
  through the codec), opened for the test and closed after it.
- ``strict_transport``: a strict `MemoryTransport` to open several systems on.
- ``redis_server``: no; Redis fixtures arrive with the Redis transport.

Helpers: `open_test_system`, `wait_ready`, `Capture` / `capture`.
"""

from ._helpers import Capture as Capture
from ._helpers import capture as capture
from ._helpers import open_test_system as open_test_system
from ._helpers import wait_ready as wait_ready

__all__ = ["Capture", "capture", "open_test_system", "wait_ready"]
