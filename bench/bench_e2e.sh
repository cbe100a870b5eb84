#!/bin/sh
# Dense prefill (a 128-token prompt in one call) and decode (one token at a
# time after it) speed on synthetic models of real shapes, at 1 and 2
# threads. Synthetic weights: the speed is real, the text is not.
#
# Usage: bench/bench_e2e.sh [OUT_DIR]   (default bench/results)
# Environment: SHAPES (default "stories110M tinyllama-1.1b"), THREADS
# ("1 2"), DECODE (32), WEIGHTS (mem).
set -eu
cd "$(dirname "$0")/.."
out=${1:-bench/results}
shapes=${SHAPES:-"stories110M tinyllama-1.1b"}
thread_counts=${THREADS:-"1 2"}
decode=${DECODE:-32}
weights=${WEIGHTS:-mem}
models=${MODELS_DIR:-/tmp/pprt-bench-models}
mkdir -p "$out" "$models"
make -s build/pprt >/dev/null

json="$out/e2e.json"
md="$out/e2e.md"
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //' || uname -m)
{
    echo "# Dense prefill and decode speed (synthetic weights)"
    echo
    echo "Machine: $cpu, $(nproc) cores. Weights: $weights. Prompt 128 tokens in one call, then $decode decode steps."
    echo "Command: \`bench/bench_e2e.sh\`. The load average before and after each run is recorded: the machine is shared."
    echo
    echo "| shape | threads | kernels | prefill tok/s | decode tok/s | decode MB/token | load before/after |"
    echo "|---|---|---|---|---|---|---|"
} > "$md"
echo "[" > "$json"
first=1
for shape in $shapes; do
    model="$models/$shape.ppm"
    # A cached model from another pprt version is made again.
    ./build/pprt info -m "$model" >/dev/null 2>&1 ||
        ./build/pprt synth --shape "$shape" -o "$model" 2>/dev/null
    for t in $thread_counts; do
        line=$(./build/pprt bench -m "$model" --weights "$weights" -t "$t" \
               --prompt 128 --decode "$decode" --json 2>/dev/null)
        [ $first -eq 1 ] || echo "," >> "$json"
        first=0
        printf '%s' "$line" >> "$json"
        get() { echo "$line" | sed "s/.*\"$1\": \"*\([^,\"]*\)\"*[,}].*/\1/"; }
        echo "| $shape | $t | $(get isa) | $(get prefill_tokens_per_second) | $(get decode_tokens_per_second) | $(awk -v b="$(get decode_weight_bytes_per_token)" 'BEGIN{printf "%.1f", b/1e6}') | $(get load_average_before)/$(get load_average_after) |" >> "$md"
        echo "$shape, $t threads: prefill $(get prefill_tokens_per_second) tok/s, decode $(get decode_tokens_per_second) tok/s" >&2
    done
done
echo "]" >> "$json"
cat "$md"
