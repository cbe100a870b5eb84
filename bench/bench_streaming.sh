#!/bin/sh
# Decode speed and weight bytes per token with the weights in memory, mapped,
# or read through the tile cache from throttled "flash", dense vs Probe
# Pruning, on synthetic models of real shapes (random weights: the speed and
# the bytes are real, the text is not).
#
# Usage: bench/bench_streaming.sh [OUT_DIR]   (default bench/results)
# Environment: SHAPES (default "stories110M tinyllama-1.1b"), THREADS (2),
# FLASH_MBPS (100), CACHE_FRACTION (0.65), DECODE (8), PROMPT (32).
set -eu
cd "$(dirname "$0")/.."
out=${1:-bench/results}
shapes=${SHAPES:-"stories110M tinyllama-1.1b"}
threads=${THREADS:-2}
mbps=${FLASH_MBPS:-100}
fraction=${CACHE_FRACTION:-0.65}
decode=${DECODE:-8}
prompt=${PROMPT:-32}
models=${MODELS_DIR:-/tmp/pprt-bench-models}
mkdir -p "$out" "$models"
make -s build/pprt >/dev/null

json="$out/streaming.json"
md="$out/streaming.md"
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //' || uname -m)
echo "[" > "$json"
first=1
{
    echo "# Decode from memory, mmap and throttled flash (synthetic weights)"
    echo
    echo "Machine: $cpu, $(nproc) cores; $threads threads; prompt $prompt tokens, then $decode decode steps."
    echo "Read source: pread through a tile cache of $fraction x the dense weight bytes, throttled to $mbps MB/s."
    echo "Probe Pruning here runs without calibration history (random weights have no data to calibrate on) and prunes whole tiles."
    echo "Command: \`bench/bench_streaming.sh\`"
    echo
    echo "| shape | weights | method | ratio | decode tok/s | MB/token | of dense | backing MB/token | speedup vs dense |"
    echo "|---|---|---|---|---|---|---|---|---|"
} > "$md"

for shape in $shapes; do
    model="$models/$shape.ppm"
    # A cached model from another pprt version is made again.
    ./build/pprt info -m "$model" >/dev/null 2>&1 ||
        ./build/pprt synth --shape "$shape" -o "$model" 2>/dev/null
    dense_bytes=$(./build/pprt info -m "$model" | sed 's/.*"weight_bytes": \([0-9]*\).*/\1/')
    cache_mb=$(awk -v b="$dense_bytes" -v f="$fraction" 'BEGIN { printf "%.1f", b * f / 1e6 }')
    for weights in mem mmap read; do
        extra=""
        [ "$weights" = read ] && extra="--cache-mb $cache_mb --flash-mbps $mbps"
        dense_tps=""
        for run in "dense 0" "pp 0.2" "pp 0.4" "pp 0.6"; do
            set -- $run
            method=$1; ratio=$2
            line=$(./build/pprt bench -m "$model" --weights "$weights" $extra -t "$threads" \
                   --method "$method" --prune "$ratio" --whole-tiles \
                   --prompt "$prompt" --decode "$decode" --json 2>/dev/null)
            tps=$(echo "$line" | sed 's/.*"decode_tokens_per_second": \([0-9.]*\).*/\1/')
            bpt=$(echo "$line" | sed 's/.*"decode_weight_bytes_per_token": \([0-9.]*\).*/\1/')
            dpt=$(echo "$line" | sed 's/.*"decode_dense_bytes_per_token": \([0-9.]*\).*/\1/')
            back=$(echo "$line" | sed -n 's/.*"decode_backing_bytes_per_token": \([0-9.]*\).*/\1/p')
            [ "$method" = dense ] && dense_tps=$tps
            awk -v s="$shape" -v w="$weights" -v m="$method" -v r="$ratio" -v t="$tps" \
                -v b="$bpt" -v d="$dpt" -v k="${back:-0}" -v dt="$dense_tps" 'BEGIN {
                printf "| %s | %s | %s | %s | %.2f | %.1f | %.3f | %.1f | %.2fx |\n",
                    s, w, m, r, t, b / 1e6, b / d, k / 1e6, t / dt }' >> "$md"
            [ $first -eq 1 ] || echo "," >> "$json"
            first=0
            printf '%s' "$line" >> "$json"
            echo "$shape $weights $method $ratio: $tps tokens/s" >&2
        done
    done
done
echo "]" >> "$json"
cat "$md"
