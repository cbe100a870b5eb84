/*
 * CPU feature detection for targets without an operating system.
 *
 * A bare-metal build has no getauxval() and may run on a core without CPUID
 * or the ID registers user code can read, so this port reports no SIMD
 * features and the dispatcher picks the scalar kernels. The firmware build
 * (`make firmware`) links this file in place of port/cpu_features.c.
 *
 * Everything else the runtime needs from a bare-metal system is in the C
 * library or in the caller's hands: memcpy, memset, memmove, memcmp and
 * strcmp; the <math.h> float and double functions (newlib's libm on
 * arm-none-eabi); weights through pp_source.data (a const array or
 * memory-mapped flash); an arena the caller reserves; and pp_workers left
 * zero, so all work runs on the calling thread.
 */
#include "cpu_features.h"

#include <string.h>

void pp_cpu_detect(pp_cpu_features *features) {
    memset(features, 0, sizeof *features);
}
