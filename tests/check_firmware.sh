#!/bin/sh
# Checks what the firmware build of pprt needs from the C library.
#
#   check_firmware.sh ARCHIVE     the undefined symbols of libpprt.a, after
#                                 removing those its own members define
#   check_firmware.sh --program ELF   every symbol of a linked program
#
# Fails on any allocator, stdio, thread, assert or exit symbol: firmware
# that links pprt may have no heap, no console and no operating system. For
# an archive it also fails on any symbol that is not a <string.h> or
# <math.h> function or a compiler runtime helper, because everything else
# belongs in port/. Before checking, it plants a call to malloc in an
# archive of its own and fails if that goes unreported.
#
# Environment: NM, AR and CC of the firmware toolchain (default arm-none-eabi-).
set -u
nm_tool=${NM:-arm-none-eabi-nm}
ar_tool=${AR:-arm-none-eabi-ar}
cc_tool=${CC:-arm-none-eabi-gcc}

# Heap, stdio, threads, assert and process exit, including newlib's
# reentrant (_r) variants and the system calls they end in.
forbidden='^(_?malloc|_?free|_?calloc|_?realloc|_?memalign|aligned_alloc|posix_memalign|_?(malloc|free|calloc|realloc|memalign)_r|_?sbrk(_r)?|.*printf.*|.*scanf.*|puts|putchar|fputs|fputc|fwrite|fread|fopen|fclose|fflush|perror|_?write(_r)?|_?read(_r)?|pthread_.*|exit|_exit|_Exit|abort|atexit|__assert_func|__assert_fail|__assert)$'
# What the core may take from the C library and the compiler.
string_h='^(memcpy|memset|memmove|memcmp|memchr|strlen|strcmp|strncmp|strchr)$'
math_h='^(acos|asin|atan|atan2|cos|sin|tan|cosh|sinh|tanh|exp|exp2|expm1|log|log10|log1p|log2|pow|sqrt|cbrt|hypot|fabs|floor|ceil|round|lround|llround|rint|lrint|llrint|nearbyint|trunc|fmod|remainder|fmin|fmax|fma|frexp|ldexp|modf|erf|erfc|copysign|scalbn)[fl]?$|^__(fpclassify|isinf|isnan|signbit|finite)[fd]?$'
compiler_rt='^__aeabi_|^__gnu_|^__[a-z0-9]+[23]$'

# Lists the symbols an archive needs from outside itself.
external_symbols() {
    "$nm_tool" -u "$1" | awk 'NF == 2 { print $2 }' | sort -u > "$tmp/undefined"
    "$nm_tool" --defined-only "$1" | awk 'NF == 3 { print $3 }' | sort -u > "$tmp/defined"
    comm -23 "$tmp/undefined" "$tmp/defined"
}

# Prints the forbidden symbols of an archive (mode archive) or a program.
forbidden_symbols() {
    if [ "$1" = archive ]; then
        external_symbols "$2"
    else
        "$nm_tool" "$2" | awk '{ print $NF }' | sort -u
    fi | grep -E "$forbidden"
}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Self-test: a planted malloc call must be reported.
printf '#include <stdlib.h>\nvoid *planted(void);\nvoid *planted(void) { return malloc(8); }\n' > "$tmp/planted.c"
if ! "$cc_tool" -c -O2 -o "$tmp/planted.o" "$tmp/planted.c" ||
   ! "$ar_tool" rcs "$tmp/planted.a" "$tmp/planted.o"; then
    echo "check-firmware: cannot build the self-test archive with $cc_tool and $ar_tool"
    exit 1
fi
if ! forbidden_symbols archive "$tmp/planted.a" | grep -qx malloc; then
    echo "check-firmware: self-test failed: '$nm_tool' did not report a planted malloc call; check NM"
    exit 1
fi

if [ "${1:-}" = --program ]; then
    program=${2:?usage: check_firmware.sh --program ELF}
    hits=$(forbidden_symbols program "$program")
    if [ -n "$hits" ]; then
        echo "check-firmware: $program contains $(echo $hits): the program must not use a heap, stdio, threads or exit"
        exit 1
    fi
    echo "check-firmware: $program contains no allocator, stdio, thread or exit symbols"
    exit 0
fi

archive=${1:?usage: check_firmware.sh ARCHIVE | --program ELF}
[ -e "$archive" ] || { echo "check-firmware: $archive not found"; exit 1; }
needed=$(external_symbols "$archive")
echo "check-firmware: $archive needs: $(echo $needed)"

bad=0
hits=$(echo "$needed" | grep -E "$forbidden")
if [ -n "$hits" ]; then
    echo "check-firmware: FAIL: $archive calls $(echo $hits); runtime/ and kernels/ must not allocate, print, use threads or exit"
    bad=1
fi
unknown=$(echo "$needed" | grep -vE "$forbidden" | grep -vE "$string_h" |
          grep -vE "$math_h" | grep -vE "$compiler_rt")
if [ -n "$unknown" ]; then
    echo "check-firmware: FAIL: $archive needs $(echo $unknown), which is neither a <string.h> or <math.h> function nor a compiler helper; move that code to port/ or add the function to port/none/"
    bad=1
fi
for symbol in $hits $unknown; do
    # Name the members that reference the symbol.
    members=$("$nm_tool" -A -u "$archive" | awk -v s="$symbol" '$NF == s { split($1, p, ":"); print p[2] }' | sort -u)
    echo "  $symbol: $(echo $members)"
done
[ "$bad" -eq 0 ] && echo "check-firmware: ok: no allocator, stdio, thread, assert or exit symbols"
exit $bad
