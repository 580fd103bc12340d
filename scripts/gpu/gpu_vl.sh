#!/usr/bin/env bash
# GPU machine: the docs/multimodal.md commands on the tiny VL checkpoints (after install_on_device.sh
# install; sources env.sh itself). Every step prints its command and exit code; a failing step does not
# stop the next one. Reports go to $RES (default /root/vlres), which the caller tars into $OUT.
#
#   bash scripts/gpu/gpu_vl.sh versions qwen-build qwen-budget qwen-typed qwen-compare qwen-limits
#   bash scripts/gpu/gpu_vl.sh qwen-identity idefics3-compare qwen-compare-hf-cuda
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/env.sh
RES=${RES:-/root/vlres}
mkdir -p "$RES"
H="scripts/gpu/hf2vllm"
P=src/hf2vllm/data/vl/prompts.jsonl

step() {  # step NAME CMD...: print, run, print the exit code and the wall time
  local name=$1; shift
  echo; echo "===== $name"; echo "\$ $*"
  local t0=$SECONDS
  timeout 420 "$@"
  local rc=$?
  echo "===== $name exit=$rc wall=$((SECONDS - t0))s"
}

for s in "$@"; do
  case $s in
    versions)
      nvidia-smi -L
      python3 -c 'import vllm, transformers, torch, torchvision; print("vllm", vllm.__version__, "transformers", transformers.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__)' 2>&1 | tail -1 ;;
    qwen-build) step "$s" $H models build-tiny-vl --family qwen2-vl --force
      cat "$HF2VLLM_CACHE/models/tiny-vl-qwen2-vl/processor_config.json" 2>/dev/null | head -20
      ls "$HF2VLLM_CACHE/models/tiny-vl-qwen2-vl" ;;
    qwen-budget) step "$s" $H budget --model tiny-vl-qwen2-vl ;;
    qwen-typed)
      printf '%s\n' '{"id": "hand-built", "messages": [{"role": "user", "content": [{"type": "text", "text": "<|vision_start|><|image_pad|><|vision_end|>Describe the picture."}]}]}' > /root/typed.jsonl
      step "$s" $H compare --model tiny-vl-qwen2-vl --prompts /root/typed.jsonl ;;
    qwen-compare) step "$s" $H compare --model tiny-vl-qwen2-vl --prompts $P \
        --max-new-tokens 32 --kv-cache-gib 0.25 --out "$RES/qwen" ;;
    qwen-limits) step "$s" $H compare --model tiny-vl-qwen2-vl --prompts $P \
        --max-new-tokens 32 --kv-cache-gib 0.25 --vllm-mm-processor-kwargs '{"max_pixels": 12544}' ;;
    qwen-identity) step "$s" python3 scripts/gpu/gpu_vl_identity.py --model tiny-vl-qwen2-vl --out "$RES/qwen-identity.json" ;;
    idefics3-identity) step "$s" python3 scripts/gpu/gpu_vl_identity.py --model tiny-vl-idefics3 --out "$RES/idefics3-identity.json" ;;
    idefics3-compare) step idefics3-build $H models build-tiny-vl --force
      step "$s" $H compare --model tiny-vl-idefics3 --prompts $P \
        --max-new-tokens 32 --kv-cache-gib 0.25 --out "$RES/idefics3" ;;
    idefics3-limits) step "$s" $H compare --model tiny-vl-idefics3 --prompts $P \
        --max-new-tokens 32 --kv-cache-gib 0.25 --vllm-mm-processor-kwargs '{"size": {"longest_edge": 128}}' ;;
    qwen-compare-hf-cuda) step "$s" $H compare --model tiny-vl-qwen2-vl --prompts $P \
        --max-new-tokens 32 --kv-cache-gib 0.25 --hf-option device=cuda --out "$RES/qwen-hf-cuda" ;;
    *) echo "unknown step $s"; exit 2 ;;
  esac
done
