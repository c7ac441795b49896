"""A conversation handed from a greeter to a support agent across processes, through Redis.

Three processes share one Redis server: `main` owns the "voice" bridge (it carries the user's
lines, scripted or typed in, and prints what the agents answer), `greeter` and `support` each
run one agent in an actor system of their own. The greeter hands the conversation to support
when the user asks for help, support hands it back when thanked; the bridge follows the active
agent from process to process.

Run everything at once (from the repository root, with a Redis server running)::

    python -m examples.redis_handoff [--redis-url redis://127.0.0.1:6379] [--interactive]

or each process by hand, on as many machines as you like::

    python -m examples.redis_handoff.greeter --redis-url redis://redis.internal:6379
    python -m examples.redis_handoff.support --redis-url redis://redis.internal:6379
    python -m examples.redis_handoff.main --redis-url redis://redis.internal:6379
"""
