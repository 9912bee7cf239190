# stormbench: `make run` runs the main job, `make test` the fast suite. Both set up .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: run test test-all bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/stormbench main-job

# one pytest worker per core; a test file stays on one worker (its module fixtures run once)
test: $(STAMP)
	$(PYTEST) -m "not slow" -q -n auto --dist loadfile

test-all: $(STAMP)
	$(PYTEST) -q

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) reports/out
