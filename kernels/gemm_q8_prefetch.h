/*
 * gemm_q8_prefetch.h - software prefetch for the one-activation-row paths
 * (GEMV) of the SIMD gemm_q8 kernels; included by gemm_q8_x86.h and
 * gemm_q8_arm.h after they define Q8_INLINE.
 *
 * A GEMV reads every weight byte once, so it keeps up with memory only
 * while loads are in flight ahead of the arithmetic. Pruned products are
 * many short matrices (a 32-row MLP tile of TinyLlama is 64 KiB), and the
 * hardware prefetchers start over on each one. On one thread of a Zen 4
 * EPYC, the gate and up tiles of synthetic TinyLlama-shaped layers ran at
 * 19 GB/s that way, and at 29 GB/s once the prefetch below ran on through
 * each tile's end into the next.
 * So the prefetch stays a fixed distance ahead of the reads: through this
 * product's rows, then through the rows of the product that the caller
 * runs next (pp_q8_next).
 *
 * Prefetches are hints: they never fault and never change a result, so a
 * prefetch that lands up to one step past the last row is harmless.
 */
#ifndef PP_GEMM_Q8_PREFETCH_H
#define PP_GEMM_Q8_PREFETCH_H

#include "kernels.h"

/* Weight streams of a GEMV: this product's int8 rows followed by the next
 * product's, and the same for their float scales. */
typedef struct q8_ahead {
    const int8_t *w;
    const float *ws;
    size_t bytes, scales;  /* this product's int8 bytes and scale count */
    pp_q8_next next;       /* next.m == 0: nothing follows */
    size_t next_bytes, next_scales;
} q8_ahead;

static inline q8_ahead q8_ahead_make(size_t m, size_t k, size_t group,
                                     const int8_t *w, const float *ws,
                                     const pp_q8_next *next) {
    q8_ahead a = {w, ws, m * k, m * pp_group_count(k, group),
                  {NULL, NULL, 0, 0}, 0, 0};
    if (next && next->m > 0 && next->k > 0) {
        a.next = *next;
        a.next_bytes = next->m * next->k;
        a.next_scales = next->m * pp_group_count(next->k, group);
    }
    return a;
}

/* Returns byte `offset` of the int8 stream, or NULL past its end. */
static inline const int8_t *q8_ahead_byte(const q8_ahead *a, size_t offset) {
    if (offset < a->bytes)
        return a->w + offset;
    offset -= a->bytes;
    return offset < a->next_bytes ? a->next.w + offset : NULL;
}

/* Returns scale `index` of the scale stream, or NULL past its end. */
static inline const float *q8_ahead_scale(const q8_ahead *a, size_t index) {
    if (index < a->scales)
        return a->ws + index;
    index -= a->scales;
    return index < a->next_scales ? a->next.ws + index : NULL;
}

/*
 * Prefetch into L2 (locality 2) of `span` bytes from byte `offset` of the
 * int8 stream, and of the cache line of scale `index`. Both are Q8_INLINE:
 * as separate functions, GCC 12 dropped the calls of such prefetch-only
 * functions in the AVX-512 build, apparently taking them for functions
 * without side effects.
 */
Q8_INLINE void q8_prefetch_bytes(const q8_ahead *a, size_t offset,
                                 size_t span) {
    const int8_t *target = q8_ahead_byte(a, offset);
    if (target)
        for (size_t line = 0; line < span; line += 64)
            __builtin_prefetch(target + line, 0, 2);
}

Q8_INLINE void q8_prefetch_scale(const q8_ahead *a, size_t index) {
    const float *target = q8_ahead_scale(a, index);
    if (target)
        __builtin_prefetch(target, 0, 2);
}

/*
 * The prefetch position of one 4-row GEMV call, for rows `row` to row + 3
 * of the stream. Each step over 4 groups prefetches Q8_PREFETCH_BYTES
 * ahead in each of the 4 rows, which is the same bytes of 4 rows further
 * on. The row pointers are looked up once per call, not once per step.
 */
typedef struct q8_cursor {
    const int8_t *rows[8];  /* the 4 target rows, then the 4 after them */
    const float *scales;    /* the scales of rows row + 4 to row + 7 */
    size_t column;          /* of the next prefetch, < 2 k */
    size_t k, span;
} q8_cursor;

Q8_INLINE void q8_cursor_start(q8_cursor *cur, const q8_ahead *a, size_t row,
                               size_t k, size_t group, size_t distance) {
    const size_t first = row + 4 * (distance / k);
    for (size_t j = 0; j < 8; j++)
        cur->rows[j] = q8_ahead_byte(a, (first + j) * k);
    cur->scales = q8_ahead_scale(a, (row + 4) * pp_group_count(k, group));
    cur->column = distance % k;
    cur->k = k;
    cur->span = 4 * group;
}

/* Prefetches for the step over groups g to g + 3, then moves on. */
Q8_INLINE void q8_cursor_step(q8_cursor *cur, size_t g) {
    const int next_rows = cur->column >= cur->k;
    const size_t column = next_rows ? cur->column - cur->k : cur->column;
    for (size_t j = 0; j < 4; j++) {
        const int8_t *target = cur->rows[4 * (size_t)next_rows + j];
        if (target)
            for (size_t line = 0; line < cur->span; line += 64)
                __builtin_prefetch(target + column + line, 0, 2);
    }
    if (cur->scales)
        __builtin_prefetch(cur->scales + 4 * g, 0, 2);
    cur->column += cur->span;
}

#endif /* PP_GEMM_Q8_PREFETCH_H */
