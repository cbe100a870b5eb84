/*
 * gemm_q8_driver.h - the loop order and the entry points of the SIMD
 * gemm_q8 and gemv_q8 kernels, the same on every ISA. Included at the end
 * of gemm_q8_x86.h and gemm_q8_arm.h, which define before it:
 *   GEMM_Q8_NAME, GEMV_Q8_NAME   the symbols, from the including .c file
 *   Q8_ROW_BLOCK_BYTES, Q8_PREFETCH_MIN_ROW_BYTES
 *   q8_row_dot_tail, q8_dot_1x1
 *   q8_dot_1x4       4 rows against one, prefetching through a q8_ahead
 *                    stream when it gets one
 *   q8_is_short, q8_short_rows_k
 *                    the column products' rows of 16, 32 or 64 values,
 *                    with one activation row
 */
#ifndef PP_GEMM_Q8_DRIVER_H
#define PP_GEMM_Q8_DRIVER_H

/* Stores value in *dst, or adds it to *dst when accumulating. */
static inline void q8_store(float *dst, float value, int accumulate) {
    *dst = accumulate ? *dst + value : value;
}

/* Short rows for any n; ahead is the weight stream with one activation
 * row, else NULL. The constant k of each call lets the compiler specialize
 * q8_short_rows_k. */
static void q8_short_rows(size_t m, size_t n, size_t k, const int8_t *w,
                          const float *ws, const int8_t *x, size_t ldx,
                          const float *xs, size_t ldxs, float *y, size_t ldy,
                          int accumulate, const q8_ahead *ahead) {
    const size_t groups = pp_group_count(k, 32);
    for (size_t j = 0; j < n; j++) {
        const int8_t *xj = x + j * ldx;
        const float *xsj = xs + j * ldxs;
        float *yj = y + j * ldy;
        size_t i = k == 16   ? q8_short_rows_k(16, m, w, ws, xj, xsj, yj,
                                               accumulate, ahead)
                   : k == 32 ? q8_short_rows_k(32, m, w, ws, xj, xsj, yj,
                                               accumulate, ahead)
                             : q8_short_rows_k(64, m, w, ws, xj, xsj, yj,
                                               accumulate, ahead);
        for (; i < m; i++)
            q8_store(&yj[i], q8_row_dot_tail(k, 32, 0, w + i * k,
                                             ws + i * groups, xj, xsj, 0.0f),
                     accumulate);
    }
}

/*
 * Loop order: a block of weight rows (Q8_ROW_BLOCK_BYTES) stays in cache
 * while the activation rows pass over it, so the weights are read from
 * memory once per call whatever n is. Groups of 4 activation rows share
 * each weight row. The 1 to 3 activation rows left over (all of GEMV) each
 * share 4 weight rows at a time instead.
 */
static void q8_gemm(size_t m, size_t n, size_t k, size_t group,
                    const int8_t *w, const float *ws, const int8_t *x,
                    size_t ldx, const float *xs, size_t ldxs, float *y,
                    size_t ldy, int accumulate, const pp_q8_next *next) {
    const size_t groups = pp_group_count(k, group);
    /* Only GEMV prefetches, because prefill (n > 1) rereads cached rows. */
    const q8_ahead stream = q8_ahead_make(m, k, group, w, ws, next);
    const q8_ahead *ahead = n == 1 ? &stream : NULL;
    if (q8_is_short(k, group)) {
        q8_short_rows(m, n, k, w, ws, x, ldx, xs, ldxs, y, ldy, accumulate,
                      ahead);
        return;
    }
    size_t row_block = Q8_ROW_BLOCK_BYTES / k / 4 * 4;
    if (row_block < 4)
        row_block = 4;

    if (k < Q8_PREFETCH_MIN_ROW_BYTES)
        ahead = NULL;

    for (size_t i0 = 0; i0 < m; i0 += row_block) {
        const size_t i1 = m - i0 < row_block ? m : i0 + row_block;

        size_t j0 = 0;
        for (; j0 + 4 <= n; j0 += 4) {
            const int8_t *xr[4];
            const float *xsr[4];
            for (size_t j = 0; j < 4; j++) {
                xr[j] = x + (j0 + j) * ldx;
                xsr[j] = xs + (j0 + j) * ldxs;
            }
            for (size_t i = i0; i < i1; i++) {
                float out[4];
                q8_dot_1x4(k, group, w + i * k, ws + i * groups, xr, xsr,
                           NULL, 0, out);
                for (size_t j = 0; j < 4; j++)
                    q8_store(&y[(j0 + j) * ldy + i], out[j], accumulate);
            }
        }

        for (size_t j = j0; j < n; j++) {
            const int8_t *xj = x + j * ldx;
            const float *xsj = xs + j * ldxs;
            float *yj = y + j * ldy;
            size_t i = i0;
            for (; i + 4 <= i1; i += 4) {
                const int8_t *wr[4];
                const float *wsr[4];
                for (size_t r = 0; r < 4; r++) {
                    wr[r] = w + (i + r) * k;
                    wsr[r] = ws + (i + r) * groups;
                }
                float out[4];
                q8_dot_1x4(k, group, xj, xsj, wr, wsr, ahead, i, out);
                for (size_t r = 0; r < 4; r++)
                    q8_store(&yj[i + r], out[r], accumulate);
            }
            for (; i < i1; i++)
                q8_store(&yj[i], q8_dot_1x1(k, group, w + i * k,
                                            ws + i * groups, xj, xsj),
                         accumulate);
        }
    }
}

void GEMM_Q8_NAME(size_t m, size_t n, size_t k, size_t group,
                  const int8_t *w, const float *ws, const int8_t *x,
                  size_t ldx, const float *xs, size_t ldxs, float *y,
                  size_t ldy, int accumulate) {
    q8_gemm(m, n, k, group, w, ws, x, ldx, xs, ldxs, y, ldy, accumulate,
            NULL);
}

void GEMV_Q8_NAME(size_t m, size_t k, size_t group, const int8_t *w,
                  const float *ws, const int8_t *x, const float *xs,
                  float *y, int accumulate, const pp_q8_next *next) {
    q8_gemm(m, 1, k, group, w, ws, x, k, xs, pp_group_count(k, group), y, m,
            accumulate, next);
}

#endif /* PP_GEMM_Q8_DRIVER_H */
