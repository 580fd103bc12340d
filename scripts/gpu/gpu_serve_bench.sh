#!/usr/bin/env bash
# `hf2vllm serve` (vLLM's OpenAI server, default GPU mode) + `hf2vllm bench serve` concurrency sweep.
#   scripts/gpu/gpu_serve_bench.sh OUTDIR [DTYPE] [CONCURRENCY]
set -uo pipefail
out=${1:?outdir}; dtype=${2:-bfloat16}; levels=${3:-1,4,16,64}
here=$(dirname "$0")
mkdir -p "$out"
port=8011
setsid "$here/hf2vllm" serve --port $port --log-file "$out/serve-$dtype.log" -- --dtype "$dtype" \
  > "$out/serve-$dtype.stdout" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
  grep -q "serving " "$out/serve-$dtype.stdout" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "serve exited"; cat "$out/serve-$dtype.stdout"; tail -30 "$out/serve-$dtype.log"; exit 1; }
  sleep 1
done
cat "$out/serve-$dtype.stdout"
"$here/hf2vllm" bench serve "http://127.0.0.1:$port/v1" --concurrency "$levels" --requests 64 --max-tokens 64 \
  --out "$out/bench-serve-$dtype"
rc=$?
kill -TERM -- -$pid 2>/dev/null; wait $pid 2>/dev/null
grep -E "KV cache size|Maximum concurrency|Available KV cache memory|graph capturing finished|init engine" "$out/serve-$dtype.log" | head
exit $rc
