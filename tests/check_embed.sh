#!/bin/sh
# Runs the firmware example (port/examples/embed.c) and checks its text.
#
#   check_embed.sh [--runner CMD] [--heap-trap] [--compare PPRT MODEL N] PROGRAM
#
# PROGRAM must exit with 0 and print "Once upon a time" and its greedy
# continuation on the first line.
#   --runner CMD   run PROGRAM through CMD (e.g. "qemu-arm -cpu max")
#   --heap-trap    PROGRAM is linked with tests/embed_harness.c: check that
#                  its allocator trap fires (EMBED_HEAP_TRAP_TEST=1)
#   --compare PPRT MODEL N   the first line must equal what
#                  `PPRT generate -m MODEL --temp 0 -n N --method dense` prints
set -u
runner=""; heap_trap=0; pprt=""; model=""; tokens=""
while [ $# -gt 1 ]; do
    case $1 in
    --runner) runner=$2; shift 2 ;;
    --heap-trap) heap_trap=1; shift ;;
    --compare) pprt=$2; model=$3; tokens=$4; shift 4 ;;
    *) echo "check_embed.sh: unknown option '$1'"; exit 2 ;;
    esac
done
program=${1:?usage: check_embed.sh [--runner CMD] [--heap-trap] [--compare PPRT MODEL N] PROGRAM}
prompt="Once upon a time"
# The greedy continuation of stories260K, converted with the default tile
# and group, from the prompt above.
expected_prefix="Once upon a time, there was a little girl named Lily"
name="check-embed${runner:+ [$runner]}"

passed=0; failed=0
pass() { passed=$((passed + 1)); }
fail() { echo "$name: FAIL: $*"; failed=$((failed + 1)); }

output=$($runner "$program" 2>&1); status=$?
first_line=$(printf '%s\n' "$output" | head -n 1)
if [ "$status" -eq 0 ]; then pass; else
    fail "$program exited with status $status; output: $output"; fi
case $first_line in
"$expected_prefix"*) pass ;;
*) fail "the first line should start with '$expected_prefix' but is '$first_line'" ;;
esac
printf '%s\n' "$output" | sed -n 2p | sed "s/^/$name: /"

if [ -n "$pprt" ]; then
    reference=$("$pprt" generate -m "$model" -p "$prompt" --temp 0 -n "$tokens" \
                --method dense 2>/dev/null | head -n 1)
    if [ "$first_line" = "$reference" ]; then pass; else
        fail "the first line differs from pprt generate on $model: '$first_line' vs '$reference'"; fi
fi

if [ "$heap_trap" -eq 1 ]; then
    # The inner shell reports the SIGABRT, so its message is captured too.
    trap_output=$(sh -c 'EMBED_HEAP_TRAP_TEST=1 "$@"' sh $runner "$program" 2>&1)
    trap_status=$?
    case $trap_output in
    *"malloc: the heap was used"*) pass ;;
    *) fail "with EMBED_HEAP_TRAP_TEST=1 the allocator trap did not fire (status $trap_status): $trap_output" ;;
    esac
fi

echo "$name: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
