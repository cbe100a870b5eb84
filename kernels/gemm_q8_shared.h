/*
 * gemm_q8_shared.h - pieces of the SIMD gemm_q8 kernels that do not depend
 * on the ISA: reading an activation quad, and the software prefetch of the
 * one-activation-row path (GEMV). Included by gemm_q8_x86.h and
 * gemm_q8_arm.h after they define Q8_INLINE.
 *
 * A blocked matrix (kernels.h) is one stream of bytes, read front to back.
 * The hardware prefetchers follow it well, on into the next product when
 * that follows in memory, as a layer's parts do in a model file. Pruning
 * skips parts, and the prefetchers start
 * over after each gap. So while the last bytes of a matrix are read, the
 * prefetch below runs into the first bytes of the product that the caller
 * runs next (pp_q8_next), unless that product continues the stream.
 *
 * Prefetches are hints: they never fault and never change a result.
 */
#ifndef PP_GEMM_Q8_SHARED_H
#define PP_GEMM_Q8_SHARED_H

#include <string.h>

#include "kernels.h"

/* Returns the 4 activation bytes x[0..3] as one int32 (little-endian), with
 * bytes at or past `count` (below 4 only at the end of a row) read as 0. */
Q8_INLINE int32_t q8_quad(const int8_t *x, size_t count) {
    int32_t v = 0;
    if (count >= 4)
        memcpy(&v, x, 4);
    else
        for (size_t e = 0; e < count; e++)
            v |= (int32_t)((uint32_t)(uint8_t)x[e] << (8 * e));
    return v;
}

/*
 * GEMV prefetch distance into the next product, in bytes (0 turns it off).
 * Measured in interleaved runs of decode of the synthetic TinyLlama-1.1B
 * shape on one thread of a Zen 4 EPYC (shared 2-core VM). Probe Pruning at
 * 0.4 ran at 39.9 to 40.6 tokens/s without it and 40.5 to 41.1 with 4096.
 * Dense decode (one stream) ran at 28.3 to 29.1 either way. Prefetching at
 * every product boundary cost dense decode 3%, and a distance of 8192 cost
 * it 14%. Prefetching the current product's own lines as well halved the
 * speed of the earlier side-by-side layout, so those are left to the
 * hardware.
 */
#ifndef Q8_PREFETCH_BYTES
#define Q8_PREFETCH_BYTES 4096
#endif

/* This product's bytes followed by the next product's. */
typedef struct q8_ahead {
    const uint8_t *w, *next;
    size_t bytes, next_bytes;
} q8_ahead;

static inline q8_ahead q8_ahead_make(size_t m, size_t k, size_t group,
                                     const uint8_t *w,
                                     const pp_q8_next *next) {
    q8_ahead a = {w, NULL, pp_q8_matrix_bytes(m, k, group), 0};
    /* A next product that starts within a cache line or so of this one's
     * end continues the stream, which the hardware prefetchers follow. */
    const uintptr_t end = (uintptr_t)w + a.bytes;
    const int continues = next && (uintptr_t)next->w >= end &&
                          (uintptr_t)next->w - end <= 128;
    if (next && next->w && next->m > 0 && next->k > 0 && !continues) {
        a.next = next->w;
        a.next_bytes = pp_q8_matrix_bytes(next->m, next->k, group);
    }
    return a;
}

/*
 * Prefetches into L2 (locality 2) the cache lines of the next product that
 * lie in `span` bytes from byte `offset` of the stream (this product, then
 * the next). Lines of this product are left to the hardware prefetchers:
 * on Zen 4, prefetching them as well made GEMV slower. Q8_INLINE: as
 * separate functions, GCC 12 dropped the calls of such prefetch-only
 * functions in the AVX-512 build, apparently taking them for functions
 * without side effects.
 */
Q8_INLINE void q8_prefetch_next(const q8_ahead *a, size_t offset,
                                size_t span) {
    if (!a || !a->next || offset + span <= a->bytes)
        return;
    const size_t begin = offset > a->bytes ? offset - a->bytes : 0;
    size_t end = offset + span - a->bytes;
    if (end > a->next_bytes)
        end = a->next_bytes;
    for (size_t at = begin & ~(size_t)63; at < end; at += 64)
        __builtin_prefetch(a->next + at, 0, 2);
}

#endif /* PP_GEMM_Q8_SHARED_H */
