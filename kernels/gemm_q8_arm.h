/*
 * gemm_q8_arm.h - the body of the aarch64 gemm_q8 kernels, included once by
 * gemm_q8_neon.c and once by gemm_q8_dotprod.c.
 *
 * Before including it, the file includes <arm_neon.h> and defines
 *   GEMM_Q8_NAME  the kernel's symbol, e.g. pp_gemm_q8__neon;
 *   GEMV_Q8_NAME  the one-row kernel's symbol, e.g. pp_gemv_q8__neon;
 *   q8_dot16(acc, w, x)  a static function that adds the 16 products
 *       w[b] * x[b] of signed bytes to the 4 int32 lanes of acc, exactly.
 *
 * Each int32 group sum is completed before it is converted to float, so the
 * group sums equal the scalar ones bit for bit. Only the float sum over
 * groups runs in another order, 4 groups side by side.
 */
#if !defined(GEMM_Q8_NAME) || !defined(GEMV_Q8_NAME)
#error "define GEMM_Q8_NAME, GEMV_Q8_NAME and q8_dot16 before including gemm_q8_arm.h"
#endif

#if defined(__GNUC__)
#define Q8_INLINE static inline __attribute__((always_inline))
#else
#define Q8_INLINE static inline
#endif

#include "gemm_q8_prefetch.h"

/* Weight bytes that stay in cache while every activation row passes over
 * them: a quarter of the 512 KiB per-core L2 of a Cortex-A76 and an eighth
 * of the 1 MiB shared L2 of a Cortex-A72 (Raspberry Pi 5 and 4). */
#define Q8_ROW_BLOCK_BYTES ((size_t)128 * 1024)

/*
 * GEMV prefetch distance per weight row, in bytes (0 turns it off), into
 * L2. NOTE: the value comes from Zen 4 measurements (see gemm_q8_x86.h) and
 * has not been tuned on a Cortex-A72 or A76; build with
 * -DQ8_PREFETCH_BYTES=0 to compare.
 */
#ifndef Q8_PREFETCH_BYTES
#define Q8_PREFETCH_BYTES 4096
#endif

/* GEMV rows shorter than this are not prefetched (from the same Zen 4
 * measurements as the distance). */
#define Q8_PREFETCH_MIN_ROW_BYTES 512

/* Returns lane t = sum of the 4 lanes of v_t, for t = 0..3. */
static inline int32x4_t q8_hsum4(int32x4_t v0, int32x4_t v1, int32x4_t v2,
                                 int32x4_t v3) {
    return vpaddq_s32(vpaddq_s32(v0, v1), vpaddq_s32(v2, v3));
}

/* Returns the exact int32 dot product of `length` bytes of w and x. */
static int32_t q8_dot_any(const int8_t *w, const int8_t *x, size_t length) {
    size_t c = 0;
    int32_t sum = 0;

    if (length >= 16) {
        int32x4_t acc = vdupq_n_s32(0);
        for (; c + 16 <= length; c += 16)
            acc = q8_dot16(acc, vld1q_s8(w + c), vld1q_s8(x + c));
        sum = vaddvq_s32(acc);
    }

    if (c + 8 <= length) {
        /* 8 products of at most 127 * 127 each, widened before the sum. */
        sum += vaddlvq_s16(vmull_s8(vld1_s8(w + c), vld1_s8(x + c)));
        c += 8;
    }

    for (; c < length; c++)
        sum += (int32_t)w[c] * (int32_t)x[c];
    return sum;
}

/* Returns the int32 sums of the 4 groups of `pieces` 16-byte vectors that
 * start at w and x. */
Q8_INLINE int32x4_t q8_group_sums4(const int8_t *w, const int8_t *x,
                                   size_t group, size_t pieces) {
    int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
    int32x4_t s2 = vdupq_n_s32(0), s3 = vdupq_n_s32(0);
    for (size_t p = 0; p < 16 * pieces; p += 16) {
        s0 = q8_dot16(s0, vld1q_s8(w + p), vld1q_s8(x + p));
        s1 = q8_dot16(s1, vld1q_s8(w + group + p), vld1q_s8(x + group + p));
        s2 = q8_dot16(s2, vld1q_s8(w + 2 * group + p),
                      vld1q_s8(x + 2 * group + p));
        s3 = q8_dot16(s3, vld1q_s8(w + 3 * group + p),
                      vld1q_s8(x + 3 * group + p));
    }
    return q8_hsum4(s0, s1, s2, s3);
}

/* Adds the groups from g_begin to the end of the row that the vector path
 * left over, a shorter last group included, to total. */
static float q8_row_dot_tail(size_t k, size_t group, size_t g_begin,
                             const int8_t *w, const float *ws,
                             const int8_t *x, const float *xs, float total) {
    const size_t groups = pp_group_count(k, group);
    for (size_t g = g_begin; g < groups; g++) {
        const size_t begin = g * group;
        const size_t end = begin + group < k ? begin + group : k;
        const int32_t isum = q8_dot_any(w + begin, x + begin, end - begin);
        total += (float)isum * (ws[g] * xs[g]);
    }
    return total;
}

/*
 * Returns one weight row times one activation row, for a group of `pieces`
 * 16-byte vectors. Full groups go 4 at a time through the vector path.
 * Called with a constant `pieces` so the compiler can unroll the inner loop.
 */
Q8_INLINE float q8_dot_1x1_vector(size_t pieces, size_t k, size_t group,
                                  const int8_t *w, const float *ws,
                                  const int8_t *x, const float *xs) {
    const size_t full = k / group;
    float32x4_t acc = vdupq_n_f32(0.0f);
    size_t g = 0;
    for (; g + 4 <= full; g += 4) {
        const size_t begin = g * group;
        const int32x4_t isum = q8_group_sums4(w + begin, x + begin, group,
                                              pieces);
        const float32x4_t scale = vmulq_f32(vld1q_f32(ws + g),
                                            vld1q_f32(xs + g));
        acc = vfmaq_f32(acc, vcvtq_f32_s32(isum), scale);
    }
    return q8_row_dot_tail(k, group, g, w, ws, x, xs, vaddvq_f32(acc));
}

/*
 * Stores in out[j] row a (scales as) times row b[j] (scales bs[j]), j < 4:
 * a weight row with 4 activation rows (prefill), or an activation row with
 * 4 weight rows (GEMV). Products and scale products are symmetric, so both
 * give the specified group sums. Each vector of `a` is loaded once for the
 * 4 rows, and the 16 accumulators (4 groups by 4 rows) fit in the 32
 * vector registers.
 *
 * When b[0..3] are the 4 consecutive weight rows from row `row` of a GEMV,
 * `ahead` is the weight stream they belong to, which is prefetched
 * Q8_PREFETCH_BYTES ahead in each of the 4 rows as they are read (see
 * gemm_q8_prefetch.h). Otherwise ahead is NULL.
 */
Q8_INLINE void q8_dot_1x4_vector(size_t pieces, size_t k, size_t group,
                                 const int8_t *a, const float *as,
                                 const int8_t *const *b,
                                 const float *const *bs,
                                 const q8_ahead *ahead, size_t row,
                                 float *out) {
    const size_t full = k / group;
    float32x4_t acc[4];
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; j++)
        acc[j] = vdupq_n_f32(0.0f);

    q8_cursor cursor = {{NULL}, NULL, 0, 0, 0};
    if (ahead && Q8_PREFETCH_BYTES > 0)
        q8_cursor_start(&cursor, ahead, row, k, group, Q8_PREFETCH_BYTES);

    size_t g = 0;
    for (; g + 4 <= full; g += 4) {
        const size_t begin = g * group;
        if (ahead && Q8_PREFETCH_BYTES > 0)
            q8_cursor_step(&cursor, g);
        int32x4_t sum[4][4];
#pragma GCC unroll 4
        for (size_t t = 0; t < 4; t++) {
#pragma GCC unroll 4
            for (size_t j = 0; j < 4; j++)
                sum[t][j] = vdupq_n_s32(0);
        }

        for (size_t p = 0; p < 16 * pieces; p += 16) {
#pragma GCC unroll 4
            for (size_t t = 0; t < 4; t++) {
                const size_t offset = begin + t * group + p;
                const int8x16_t av = vld1q_s8(a + offset);
#pragma GCC unroll 4
                for (size_t j = 0; j < 4; j++)
                    sum[t][j] = q8_dot16(sum[t][j], av,
                                         vld1q_s8(b[j] + offset));
            }
        }

        const float32x4_t ascale = vld1q_f32(as + g);
#pragma GCC unroll 4
        for (size_t j = 0; j < 4; j++) {
            const int32x4_t isum =
                q8_hsum4(sum[0][j], sum[1][j], sum[2][j], sum[3][j]);
            const float32x4_t scale = vmulq_f32(ascale, vld1q_f32(bs[j] + g));
            acc[j] = vfmaq_f32(acc[j], vcvtq_f32_s32(isum), scale);
        }
    }

    for (size_t j = 0; j < 4; j++)
        out[j] = q8_row_dot_tail(k, group, g, a, as, b[j], bs[j],
                                 vaddvq_f32(acc[j]));
}

/* Returns row w times row x for any group size. */
static float q8_dot_1x1(size_t k, size_t group, const int8_t *w,
                        const float *ws, const int8_t *x, const float *xs) {
    if (group == 32)
        return q8_dot_1x1_vector(2, k, group, w, ws, x, xs);
    if (group % 16 == 0)
        return q8_dot_1x1_vector(group / 16, k, group, w, ws, x, xs);
    return q8_row_dot_tail(k, group, 0, w, ws, x, xs, 0.0f);
}

/* Stores in out[j] row a times row b[j], j < 4, for any group size, as
 * q8_dot_1x4_vector. */
static void q8_dot_1x4(size_t k, size_t group, const int8_t *a,
                       const float *as, const int8_t *const *b,
                       const float *const *bs, const q8_ahead *ahead,
                       size_t row, float *out) {
    if (group == 32) {
        q8_dot_1x4_vector(2, k, group, a, as, b, bs, ahead, row, out);
    } else if (group % 16 == 0) {
        q8_dot_1x4_vector(group / 16, k, group, a, as, b, bs, ahead, row,
                          out);
    } else {
        for (size_t j = 0; j < 4; j++)
            out[j] = q8_row_dot_tail(k, group, 0, a, as, b[j], bs[j], 0.0f);
    }
}

/*
 * Short rows: the column products multiply m rows of 16, 32 or 64 bytes,
 * stored back to back, with one activation row, 4 rows per step. A tile's
 * down columns are 16 or 32 channels wide, and a head's o columns 64.
 * Their group sums come out in the order of the scales (row by row, group
 * by group). A row's float sum adds its groups in increasing order (one or
 * two), as the scalar kernel does from 0.0f, so the result is the same bit
 * for bit. With one activation row, `ahead` (else NULL) is the weight
 * stream, read in order. Each step prefetches Q8_SHORT_PREFETCH_BYTES
 * ahead of it.
 */

/* Prefetch distance along the stream of short rows. NOTE: taken from the
 * Zen 4 measurements of gemm_q8_x86.h, not tuned on a Cortex-A72 or A76. */
#ifndef Q8_SHORT_PREFETCH_BYTES
#define Q8_SHORT_PREFETCH_BYTES 8192
#endif

/* Whether q8_short_rows takes rows of k values in groups of `group`. */
static inline int q8_is_short(size_t k, size_t group) {
    return group == 32 && (k == 16 || k == 32 || k == 64);
}

/* Returns the int32 sum of row w (k = 16, 32 or 64 bytes, one group per 32)
 * with x for group `g`. */
Q8_INLINE int32x4_t q8_short_group(const int8_t *w, const int8_t *x,
                                   size_t k, size_t g) {
    int32x4_t sum = q8_dot16(vdupq_n_s32(0), vld1q_s8(w + 32 * g),
                             vld1q_s8(x + 32 * g));
    if (k > 16)
        sum = q8_dot16(sum, vld1q_s8(w + 32 * g + 16),
                       vld1q_s8(x + 32 * g + 16));
    return sum;
}

/* Rows [0, m - m % 4) of a short-row product with one activation row x;
 * returns the number of rows done. Called with a constant k. */
Q8_INLINE size_t q8_short_rows_k(size_t k, size_t m, const int8_t *w,
                                 const float *ws, const int8_t *x,
                                 const float *xs, float *y, int accumulate,
                                 const q8_ahead *ahead) {
    const size_t groups = pp_group_count(k, 32);
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        if (ahead && Q8_SHORT_PREFETCH_BYTES > 0) {
            q8_prefetch_bytes(ahead, i * k + Q8_SHORT_PREFETCH_BYTES, 4 * k);
            q8_prefetch_scale(ahead,
                              (i + Q8_SHORT_PREFETCH_BYTES / k) * groups);
        }
        const int8_t *wi = w + i * k;
        float32x4_t rows;
        if (groups == 1) {
            /* Lane r: row i + r. */
            const int32x4_t isum = q8_hsum4(
                q8_short_group(wi, x, k, 0), q8_short_group(wi + k, x, k, 0),
                q8_short_group(wi + 2 * k, x, k, 0),
                q8_short_group(wi + 3 * k, x, k, 0));
            const float32x4_t scale = vmulq_n_f32(vld1q_f32(ws + i), xs[0]);
            rows = vmulq_f32(vcvtq_f32_s32(isum), scale);
        } else {
            /* Two groups per row: lanes (row, group) in scale order. */
            const float32x4_t xs2 = {xs[0], xs[1], xs[0], xs[1]};
            float32x4_t part[2];
            for (size_t h = 0; h < 2; h++) {
                const int8_t *wh = wi + 2 * h * k;
                const int32x4_t isum = q8_hsum4(
                    q8_short_group(wh, x, k, 0), q8_short_group(wh, x, k, 1),
                    q8_short_group(wh + k, x, k, 0),
                    q8_short_group(wh + k, x, k, 1));
                const float32x4_t scale =
                    vmulq_f32(vld1q_f32(ws + 2 * (i + 2 * h)), xs2);
                part[h] = vmulq_f32(vcvtq_f32_s32(isum), scale);
            }
            rows = vpaddq_f32(part[0], part[1]);
        }
        if (accumulate)
            rows = vaddq_f32(vld1q_f32(y + i), rows);
        vst1q_f32(y + i, rows);
    }
    return i;
}

#include "gemm_q8_driver.h"
