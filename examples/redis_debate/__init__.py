"""The parallel debate with each debater in a process of its own, joined through Redis.

The moderator (in the launcher's process) opens one `job_group` to an advocate, a critic and
an analyst, each an actor system of its own in its own process; their sentences stream back
through Redis as they are written, interleaved, and the moderator synthesizes the three
arguments. The actors are those of `examples/parallel_debate.py`: only the transport changed.

Run everything at once (from the repository root, with a Redis server running)::

    python -m examples.redis_debate [--redis-url redis://127.0.0.1:6379] [--topic TOPIC]

or each process by hand, on as many machines as you like::

    python -m examples.redis_debate.debater --role advocate --redis-url redis://redis.internal:6379
    python -m examples.redis_debate.debater --role critic --redis-url redis://redis.internal:6379
    python -m examples.redis_debate.debater --role analyst --redis-url redis://redis.internal:6379
    python -m examples.redis_debate.moderator --redis-url redis://redis.internal:6379
"""
