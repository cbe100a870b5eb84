#!/bin/sh
# eval_table.sh - perplexity and cost of every pruning method on the real
# stories260K model, in batch mode and in generation mode.
#
# Protocol: the first 40 batches of tinystories-valid-a.txt, windows of
# S = 128 tokens, B = 8 windows per batch, calibration on the first 16
# batches of wikitext-2-test.raw. Methods dense, pp, fullprobe, wandasp and
# flap at ratios 0, 0.2, 0.4 and 0.6 (dense at 0 only), each in three modes:
# batch, generate with a 32-token prompt and no re-probing, and generate
# re-probing every 16 tokens.
#
# Writes bench/results/eval_table.json (every run's --json output, the
# machine and the reference perplexities), eval_table.md (tables) and
# eval_ppl_vs_runtime.svg (perplexity against runtime reduction).
#
# Usage: sh bench/eval_table.sh          from the repository root, after make
# Environment:
#   PPRT_SHARED   shared data folder (default ../shared)
#   THREADS       worker threads per run (default 1: on stories260K a second
#                 thread did not shorten a run). One extra run of pp at 0.4
#                 on another thread count checks that the perplexity is the
#                 same, and the report fails if it is not.
#   BATCHES       evaluation batches (default 40)
#   MODES         subset of "batch gen0 gen16" (default all three)
#   METHODS       methods to run (default "dense pp fullprobe wandasp flap")
#   OUT           output folder (default bench/results)
set -eu
cd "$(dirname "$0")/.."

shared=${PPRT_SHARED:-../shared}
threads=${THREADS:-1}
batches=${BATCHES:-40}
modes=${MODES:-batch gen0 gen16}
methods=${METHODS:-dense pp fullprobe wandasp flap}
pprt=./build/pprt
out=${OUT:-bench/results}
text=$shared/data/tinystories-valid-a.txt
calib=$shared/data/wikitext-2-test.raw
reference=$shared/reference/ppl_table.json

for f in "$pprt" "$text" "$calib" "$reference" \
         "$shared/models/stories260K/stories260K.bin" \
         "$shared/models/stories260K/tok512.bin"; do
    if [ ! -e "$f" ]; then
        echo "eval_table: missing $f (run make, or set PPRT_SHARED)" >&2
        exit 1
    fi
done
mkdir -p "$out"

work=$(mktemp -d "${TMPDIR:-/tmp}/pprt-eval.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
model=$work/stories260K.ppm
# A copy, so a rebuild during the runs cannot mix two binaries in one table.
cp "$pprt" "$work/pprt"
pprt=$work/pprt
revision=$(git describe --always --dirty 2>/dev/null || echo unknown)
runs=$work/runs.jsonl
: >"$runs"

"$pprt" convert --llama2c "$shared/models/stories260K/stories260K.bin" \
    --tokenizer "$shared/models/stories260K/tok512.bin" -o "$model" 2>/dev/null

common="-m $model -f $text --batches $batches --ctx 128 --batch 8 \
--calib $calib --calib-batches 16 --weights mem --json"

# One run: mode, method, ratio, threads. Prints the run's JSON line.
run() {
    case $1 in
        batch) mode_args="--mode batch" ;;
        gen0) mode_args="--mode generate --prompt-len 32 --reprobe 0" ;;
        gen16) mode_args="--mode generate --prompt-len 32 --reprobe 16" ;;
        *) echo "eval_table: unknown mode '$1'" >&2; exit 1 ;;
    esac
    # shellcheck disable=SC2086 # the argument lists are meant to split
    "$pprt" perplexity $common $mode_args --method "$2" --prune "$3" -t "$4"
}

# Perplexity must not depend on the thread count: one run on another
# count, which eval_report.py compares with the table's run.
if [ "$threads" -eq 1 ]; then other_threads=2; else other_threads=1; fi
check=$work/other_threads.json
run batch pp 0.4 "$other_threads" >"$check"

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
start=$(date +%s)
for mode in $modes; do
    for method in $methods; do
        for ratio in 0 0.2 0.4 0.6; do
            if [ "$method" = dense ] && [ "$ratio" != 0 ]; then
                continue
            fi
            echo "eval_table: $mode $method $ratio" >&2
            run "$mode" "$method" "$ratio" "$threads" >>"$runs"
        done
    done
done
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -p)
# On a report failure the runs stay in $work for a rerun of the report.
report_failed() {
    trap - EXIT INT TERM
    echo "eval_table: the report failed; the runs are in $runs" >&2
    exit 1
}
python3 bench/eval_report.py \
    --runs "$runs" --reference "$reference" --out "$out" \
    --machine "$(uname -m)" --cpu "$cpu" --cores "$(nproc)" \
    --load-before "$load_before" --load-after "$load_after" \
    --elapsed "$elapsed" --threads "$threads" --other-threads "$check" \
    --revision "$revision" \
    --command "./build/pprt perplexity -m stories260K.ppm -f data/tinystories-valid-a.txt --batches $batches --ctx 128 --batch 8 --calib data/wikitext-2-test.raw --calib-batches 16 --weights mem --json -t $threads --method METHOD --prune RATIO MODE_OPTIONS" \
    --script "THREADS=$threads BATCHES=$batches MODES='$modes' METHODS='$methods' sh bench/eval_table.sh" ||
    report_failed
