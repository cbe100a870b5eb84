/*
 * dispatch.h - choosing the kernel table for the running CPU.
 *
 * ISA names: "scalar" everywhere; "avx2" (AVX2 + FMA + F16C) and "vnni"
 * (AVX512-VNNI + AVX512-BW/VL, on top of avx2) on x86-64; "neon" and
 * "dotprod" (Armv8.2 SDOT) on aarch64. Each table may use scalar entries
 * for operations that have no version of its ISA.
 */
#ifndef PP_DISPATCH_H
#define PP_DISPATCH_H

#include <stddef.h>

#include "kernels.h"

/*
 * Fills `out` with the fastest table this CPU can run when forced_isa is
 * NULL, "" or "auto", and otherwise with the table named by forced_isa.
 * Returns 0, or -1 when that name is unknown, not built for this
 * architecture or needs features this CPU lacks; `message` then gets a
 * NUL-terminated explanation that lists the usable names, cut to
 * message_size bytes. On success `message` gets an empty string. `message`
 * may be NULL when message_size is 0.
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
