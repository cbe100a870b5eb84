#!/bin/sh
# Runs test programs and prints one total line "N passed, N failed".
# Usage: run.sh BUILD_DIR "RUNNER" TEST...   (RUNNER may be empty or e.g. qemu)
build=$1; runner=$2; shift 2
passed=0; failed=0; skipped=0
for t in "$@"; do
    # A deadlock becomes a failure after 10 minutes instead of hanging CI.
    out=$(timeout 600 $runner "$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v ': [0-9]* passed, [0-9]* failed' >&2
    line=$(printf '%s\n' "$out" | grep ': [0-9]* passed, [0-9]* failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: crashed or printed no summary (exit $rc)"
        failed=$((failed + 1)); continue
    fi
    echo "${runner:+[$runner] }$line"
    p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
    s=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
