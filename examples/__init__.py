"""Runnable examples, each covered by a test.

The single-file examples run as scripts (``python examples/parallel_debate.py``); the
multi-process ones are packages run from the repository root (``python -m
examples.redis_handoff``), which is why this directory is a package.
"""
