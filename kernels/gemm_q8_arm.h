/*
 * gemm_q8_arm.h - the body of the aarch64 gemm_q8 kernels, included once by
 * gemm_q8_neon.c and once by gemm_q8_dotprod.c.
 *
 * Before including it, the file includes <arm_neon.h> and defines
 *   GEMM_Q8_ARM_NAME  the kernel's symbol, e.g. pp_gemm_q8__neon;
 *   q8_dot16(acc, w, x)  a static function that adds the 16 products
 *       w[b] * x[b] of signed bytes to the 4 int32 lanes of acc, exactly.
 *
 * Each int32 group sum is completed before it is converted to float, so the
 * group sums equal the scalar ones bit for bit; only the float sum over
 * groups runs in another order (4 groups side by side).
 */
#ifndef GEMM_Q8_ARM_NAME
#error "define GEMM_Q8_ARM_NAME and q8_dot16 before including gemm_q8_arm.h"
#endif

#if defined(__GNUC__)
#define Q8_INLINE static inline __attribute__((always_inline))
#else
#define Q8_INLINE static inline
#endif

/* Activation rows that share each weight vector load. */
#define Q8_X_BLOCK 4

/* Weight bytes that stay in cache while every activation row passes over
 * them: a quarter of the 512 KiB per-core L2 of a Cortex-A76 and an eighth
 * of the 1 MiB shared L2 of a Cortex-A72 (Raspberry Pi 5 and 4). */
#define Q8_ROW_BLOCK_BYTES ((size_t)128 * 1024)

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

/*
 * Dot products of one weight row with nx (1..Q8_X_BLOCK) activation rows,
 * for a group that is `pieces` 16-byte vectors long. Full groups go 4 at a
 * time through the vector path; leftover full groups and a shorter last
 * group go through q8_dot_any. Called with constant nx and pieces so the
 * compiler keeps the accumulators in registers.
 */
Q8_INLINE void q8_row_dot_vector(size_t nx, size_t pieces, size_t k,
                                 size_t group, const int8_t *w,
                                 const float *ws, const int8_t *const *x,
                                 const float *const *xs, float *out) {
    const size_t groups = pp_group_count(k, group);
    const size_t full = k / group;
    float32x4_t acc[Q8_X_BLOCK];
    for (size_t j = 0; j < nx; j++)
        acc[j] = vdupq_n_f32(0.0f);

    size_t g = 0;
    for (; g + 4 <= full; g += 4) {
        int32x4_t sum[4][Q8_X_BLOCK];
        for (size_t t = 0; t < 4; t++) {
            const size_t begin = (g + t) * group;
            for (size_t j = 0; j < nx; j++)
                sum[t][j] = vdupq_n_s32(0);
            for (size_t p = 0; p < pieces; p++) {
                const int8x16_t wv = vld1q_s8(w + begin + 16 * p);
                for (size_t j = 0; j < nx; j++)
                    sum[t][j] = q8_dot16(sum[t][j], wv,
                                         vld1q_s8(x[j] + begin + 16 * p));
            }
        }

        const float32x4_t wscale = vld1q_f32(ws + g);
        for (size_t j = 0; j < nx; j++) {
            const int32x4_t isum =
                q8_hsum4(sum[0][j], sum[1][j], sum[2][j], sum[3][j]);
            const float32x4_t scale = vmulq_f32(wscale, vld1q_f32(xs[j] + g));
            acc[j] = vfmaq_f32(acc[j], vcvtq_f32_s32(isum), scale);
        }
    }

    for (size_t j = 0; j < nx; j++) {
        float total = vaddvq_f32(acc[j]);
        for (size_t r = g; r < groups; r++) {
            const size_t begin = r * group;
            const size_t end = begin + group < k ? begin + group : k;
            const int32_t isum = q8_dot_any(w + begin, x[j] + begin,
                                            end - begin);
            total += (float)isum * (ws[r] * xs[j][r]);
        }
        out[j] = total;
    }
}

/* One weight row times one activation row for any group size. */
static float q8_row_dot_any(size_t k, size_t group, const int8_t *w,
                            const float *ws, const int8_t *x,
                            const float *xs) {
    const size_t groups = pp_group_count(k, group);
    float total = 0.0f;
    for (size_t g = 0; g < groups; g++) {
        const size_t begin = g * group;
        const size_t end = begin + group < k ? begin + group : k;
        const int32_t isum = q8_dot_any(w + begin, x + begin, end - begin);
        total += (float)isum * (ws[g] * xs[g]);
    }
    return total;
}

static void q8_row_dot(size_t nx, size_t k, size_t group, const int8_t *w,
                       const float *ws, const int8_t *const *x,
                       const float *const *xs, float *out) {
    if (group % 16 != 0) {
        for (size_t j = 0; j < nx; j++)
            out[j] = q8_row_dot_any(k, group, w, ws, x[j], xs[j]);
    } else if (nx == Q8_X_BLOCK && group == 32) {
        q8_row_dot_vector(Q8_X_BLOCK, 2, k, group, w, ws, x, xs, out);
    } else if (nx == Q8_X_BLOCK) {
        q8_row_dot_vector(Q8_X_BLOCK, group / 16, k, group, w, ws, x, xs,
                          out);
    } else {
        for (size_t j = 0; j < nx; j++) {
            if (group == 32)
                q8_row_dot_vector(1, 2, k, group, w, ws, x + j, xs + j,
                                  out + j);
            else
                q8_row_dot_vector(1, group / 16, k, group, w, ws, x + j,
                                  xs + j, out + j);
        }
    }
}

/*
 * Loop order: a block of weight rows (Q8_ROW_BLOCK_BYTES) stays in cache
 * while the activation rows pass over it Q8_X_BLOCK at a time, so the
 * weights are read from memory once per call whatever n is.
 */
void GEMM_Q8_ARM_NAME(size_t m, size_t n, size_t k, size_t group,
                      const int8_t *w, const float *ws,
                      const int8_t *x, size_t ldx,
                      const float *xs, size_t ldxs,
                      float *y, size_t ldy, int accumulate) {
    const size_t groups = pp_group_count(k, group);
    size_t row_block = Q8_ROW_BLOCK_BYTES / k;
    if (row_block < 1)
        row_block = 1;

    for (size_t i0 = 0; i0 < m; i0 += row_block) {
        const size_t i1 = m - i0 < row_block ? m : i0 + row_block;

        for (size_t j0 = 0; j0 < n; j0 += Q8_X_BLOCK) {
            const size_t nx = n - j0 < Q8_X_BLOCK ? n - j0 : Q8_X_BLOCK;
            const int8_t *xr[Q8_X_BLOCK];
            const float *xsr[Q8_X_BLOCK];
            for (size_t j = 0; j < nx; j++) {
                xr[j] = x + (j0 + j) * ldx;
                xsr[j] = xs + (j0 + j) * ldxs;
            }

            for (size_t i = i0; i < i1; i++) {
                float out[Q8_X_BLOCK];
                q8_row_dot(nx, k, group, w + i * k, ws + i * groups, xr,
                           xsr, out);
                for (size_t j = 0; j < nx; j++) {
                    float *dst = y + (j0 + j) * ldy + i;
                    *dst = accumulate ? *dst + out[j] : out[j];
                }
            }
        }
    }
}
