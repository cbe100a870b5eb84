#!/bin/sh
# Fails if any object built from the given source folders references an
# allocation, printing or exit function: the runtime and the kernels must run
# in firmware that has none of them.
# Usage: check_no_libc.sh BUILD_DIR FOLDER...
build=$1; shift
nm_tool=${NM:-nm}
bad=0
for dir in "$@"; do
    for obj in "$build/$dir"/*.o; do
        [ -e "$obj" ] || continue
        hits=$($nm_tool -u "$obj" | awk '{print $NF}' |
               grep -E '^(malloc|calloc|realloc|free|printf|fprintf|puts|putchar|vprintf|vfprintf|exit|_exit|abort|fopen|perror)$')
        if [ -n "$hits" ]; then
            echo "$obj calls $(echo $hits | tr '\n' ' ')(not allowed in $dir/)"
            bad=1
        fi
    done
done
[ "$bad" -eq 0 ] && echo "check-no-libc: runtime/ and kernels/ call no malloc, free, printf or exit"
exit $bad
