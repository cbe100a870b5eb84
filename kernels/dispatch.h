/*
 * dispatch.h - choosing the kernel table for the running CPU.
 *
 * ISA names:
 *   scalar   every CPU
 *   avx2     x86-64 with AVX2, FMA and F16C
 *   vnni     x86-64 with the avx2 set plus AVX-512 F/BW/VL and AVX512-VNNI
 *   neon     aarch64 (Advanced SIMD)
 *   dotprod  aarch64 with the Armv8.2 dot product extension (SDOT)
 * A table uses the scalar entry for an operation without a version of its
 * ISA, and vnni and dotprod use their base set for everything but gemm_q8.
 */
#ifndef PP_DISPATCH_H
#define PP_DISPATCH_H

#include <stddef.h>

#include "kernels.h"

/*
 * Fills `out` with the fastest table this CPU can run when forced_isa is
 * NULL, "" or "auto", and otherwise with the table named by forced_isa.
 * Returns 0 on success, with `message` set to an empty string.
 *
 * Returns -1 when the name is unknown, not built for this architecture, or
 * needs features this CPU lacks. `message` then gets an explanation that
 * lists the usable names, cut to message_size bytes and NUL-terminated.
 * `message` may be NULL when message_size is 0.
 */
int pp_kernels_select(const char *forced_isa, pp_kernels *out,
                      char *message, size_t message_size);

/*
 * Writes the ISA names this CPU can run, slowest first and separated by
 * spaces (e.g. "scalar avx2 vnni"), cut to `size` bytes with a NUL. Returns
 * the length of the full list, not counting the NUL.
 */
size_t pp_kernels_available(char *names, size_t size);

#endif /* PP_DISPATCH_H */
