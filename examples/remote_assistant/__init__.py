"""The remote assistant: a voice front end and an assistant server joined by a WebSocket link.

Run the server, then the front end, from the repository root::

    ASSISTANT_TOKEN=secret python -m examples.remote_assistant.assistant --port 8765
    ASSISTANT_TOKEN=secret python -m examples.remote_assistant.main --remote-url ws://127.0.0.1:8765/ws
"""
