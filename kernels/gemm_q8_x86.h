/*
 * gemm_q8_x86.h - the body of the x86 gemm_q8 kernels, included once by
 * gemm_q8_avx2.c and once by gemm_q8_avx512vnni.c.
 *
 * Before including it, the file includes <immintrin.h> and defines
 *   GEMM_Q8_X86_NAME  the kernel's symbol, e.g. pp_gemm_q8__avx2;
 *   q8_dot32(acc, uw, sx)  a static function that adds the 32 products
 *       uw[b] * sx[b] of unsigned bytes uw (each at most 127) and signed
 *       bytes sx to the 8 int32 lanes of acc, exactly.
 *
 * Method: with u = |w| and s = x * sign(w), every product w * x equals
 * u * s with an unsigned left operand, the form that vpmaddubsw and
 * vpdpbusd take. Each int32 group sum is completed before it is converted to
 * float, so the group sums equal the scalar ones bit for bit; only the float
 * sum over groups runs in another order (4 groups side by side).
 */
#ifndef GEMM_Q8_X86_NAME
#error "define GEMM_Q8_X86_NAME and q8_dot32 before including gemm_q8_x86.h"
#endif

#if defined(__GNUC__)
#define Q8_INLINE static inline __attribute__((always_inline))
#else
#define Q8_INLINE static inline
#endif

/* Activation rows that share each weight vector load. */
#define Q8_X_BLOCK 4

/* Weight bytes that stay in cache while every activation row passes over
 * them, small enough for the 256 KiB and larger L2 caches of x86-64 cores. */
#define Q8_ROW_BLOCK_BYTES ((size_t)128 * 1024)

/* Returns lane t = sum of the 8 lanes of v_t, for t = 0..3. */
static inline __m128i q8_hsum4(__m256i v0, __m256i v1, __m256i v2,
                               __m256i v3) {
    const __m256i h01 = _mm256_hadd_epi32(v0, v1);
    const __m256i h23 = _mm256_hadd_epi32(v2, v3);
    const __m256i h = _mm256_hadd_epi32(h01, h23);
    return _mm_add_epi32(_mm256_castsi256_si128(h),
                         _mm256_extracti128_si256(h, 1));
}

static inline int32_t q8_hsum_128(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(v);
}

static inline float q8_hsum_ps(__m128 v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

static inline __m256i q8_load32(const int8_t *p) {
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* Returns the exact int32 dot product of `length` bytes of w and x. */
static int32_t q8_dot_any(const int8_t *w, const int8_t *x, size_t length) {
    size_t c = 0;
    int32_t sum = 0;

    if (length >= 32) {
        __m256i acc = _mm256_setzero_si256();
        for (; c + 32 <= length; c += 32) {
            const __m256i wv = q8_load32(w + c);
            const __m256i sx = _mm256_sign_epi8(q8_load32(x + c), wv);
            acc = q8_dot32(acc, _mm256_abs_epi8(wv), sx);
        }
        sum = q8_hsum_128(_mm_add_epi32(_mm256_castsi256_si128(acc),
                                        _mm256_extracti128_si256(acc, 1)));
    }

    if (c + 16 <= length) {
        const __m128i wv = _mm_loadu_si128((const __m128i *)(const void *)(w + c));
        const __m128i xv = _mm_loadu_si128((const __m128i *)(const void *)(x + c));
        /* Pair sums are at most 2 * 127 * 127 = 32258: no saturation. */
        const __m128i pairs = _mm_maddubs_epi16(_mm_abs_epi8(wv),
                                                _mm_sign_epi8(xv, wv));
        sum += q8_hsum_128(_mm_madd_epi16(pairs, _mm_set1_epi16(1)));
        c += 16;
    }

    for (; c < length; c++)
        sum += (int32_t)w[c] * (int32_t)x[c];
    return sum;
}

/* Adds the products of 32 bytes of one weight row and one activation row
 * to the 8 lanes of acc. */
static inline __m256i q8_dot_pair(__m256i acc, const int8_t *w,
                                  const int8_t *x) {
    const __m256i wv = q8_load32(w);
    return q8_dot32(acc, _mm256_abs_epi8(wv),
                    _mm256_sign_epi8(q8_load32(x), wv));
}

/* Returns the int32 sums of the 4 groups of `pieces` 32-byte vectors that
 * start at w and x. */
Q8_INLINE __m128i q8_group_sums4(const int8_t *w, const int8_t *x,
                                 size_t group, size_t pieces) {
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    __m256i s2 = _mm256_setzero_si256(), s3 = _mm256_setzero_si256();
    for (size_t p = 0; p < 32 * pieces; p += 32) {
        s0 = q8_dot_pair(s0, w + p, x + p);
        s1 = q8_dot_pair(s1, w + group + p, x + group + p);
        s2 = q8_dot_pair(s2, w + 2 * group + p, x + 2 * group + p);
        s3 = q8_dot_pair(s3, w + 3 * group + p, x + 3 * group + p);
    }
    return q8_hsum4(s0, s1, s2, s3);
}

/* Returns the lane-wise hadd of the sums of two groups starting at w and
 * at w + group, for 4 activation rows x[j] at once; each weight vector is
 * loaded once for all 4 rows. */
Q8_INLINE void q8_group_pairs_x4(const int8_t *w, const int8_t *const *x,
                                 size_t offset, size_t group, size_t pieces,
                                 __m256i *pairs) {
    __m256i a[Q8_X_BLOCK], b[Q8_X_BLOCK];
#pragma GCC unroll 4
    for (size_t j = 0; j < Q8_X_BLOCK; j++)
        a[j] = b[j] = _mm256_setzero_si256();

    for (size_t p = 0; p < 32 * pieces; p += 32) {
        const __m256i wa = q8_load32(w + p);
        const __m256i wb = q8_load32(w + group + p);
        const __m256i ua = _mm256_abs_epi8(wa);
        const __m256i ub = _mm256_abs_epi8(wb);
#pragma GCC unroll 4
        for (size_t j = 0; j < Q8_X_BLOCK; j++) {
            const int8_t *xj = x[j] + offset + p;
            a[j] = q8_dot32(a[j], ua, _mm256_sign_epi8(q8_load32(xj), wa));
            b[j] = q8_dot32(b[j], ub,
                            _mm256_sign_epi8(q8_load32(xj + group), wb));
        }
    }

#pragma GCC unroll 4
    for (size_t j = 0; j < Q8_X_BLOCK; j++)
        pairs[j] = _mm256_hadd_epi32(a[j], b[j]);
}

/* Adds the groups [g_begin, g_end) of one row pair that the vector path
 * left over (a shorter last group included) to total. */
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
 * One weight row times one activation row, for a group of `pieces` 32-byte
 * vectors. Full groups go 4 at a time through the vector path. Called with
 * a constant `pieces` so the compiler can drop the inner loop for group 32.
 */
Q8_INLINE float q8_row_dot_x1(size_t pieces, size_t k, size_t group,
                              const int8_t *w, const float *ws,
                              const int8_t *x, const float *xs) {
    const size_t full = k / group;
    __m128 acc = _mm_setzero_ps();
    size_t g = 0;
    for (; g + 4 <= full; g += 4) {
        const size_t begin = g * group;
        const __m128i isum = q8_group_sums4(w + begin, x + begin, group,
                                            pieces);
        const __m128 scale = _mm_mul_ps(_mm_loadu_ps(ws + g),
                                        _mm_loadu_ps(xs + g));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), scale, acc);
    }
    return q8_row_dot_tail(k, group, g, w, ws, x, xs, q8_hsum_ps(acc));
}

/* One weight row times Q8_X_BLOCK activation rows, as q8_row_dot_x1. */
Q8_INLINE void q8_row_dot_x4(size_t pieces, size_t k, size_t group,
                             const int8_t *w, const float *ws,
                             const int8_t *const *x, const float *const *xs,
                             float *out) {
    const size_t full = k / group;
    __m128 acc[Q8_X_BLOCK];
#pragma GCC unroll 4
    for (size_t j = 0; j < Q8_X_BLOCK; j++)
        acc[j] = _mm_setzero_ps();

    size_t g = 0;
    for (; g + 4 <= full; g += 4) {
        const size_t begin = g * group;
        __m256i pairs01[Q8_X_BLOCK], pairs23[Q8_X_BLOCK];
        q8_group_pairs_x4(w + begin, x, begin, group, pieces, pairs01);
        q8_group_pairs_x4(w + begin + 2 * group, x, begin + 2 * group, group,
                          pieces, pairs23);

        const __m128 wscale = _mm_loadu_ps(ws + g);
#pragma GCC unroll 4
        for (size_t j = 0; j < Q8_X_BLOCK; j++) {
            const __m256i h = _mm256_hadd_epi32(pairs01[j], pairs23[j]);
            const __m128i isum = _mm_add_epi32(_mm256_castsi256_si128(h),
                                               _mm256_extracti128_si256(h, 1));
            const __m128 scale = _mm_mul_ps(wscale, _mm_loadu_ps(xs[j] + g));
            acc[j] = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), scale, acc[j]);
        }
    }

    for (size_t j = 0; j < Q8_X_BLOCK; j++)
        out[j] = q8_row_dot_tail(k, group, g, w, ws, x[j], xs[j],
                                 q8_hsum_ps(acc[j]));
}

static void q8_row_dot(size_t nx, size_t k, size_t group, const int8_t *w,
                       const float *ws, const int8_t *const *x,
                       const float *const *xs, float *out) {
    if (group % 32 != 0) {
        for (size_t j = 0; j < nx; j++)
            out[j] = q8_row_dot_tail(k, group, 0, w, ws, x[j], xs[j], 0.0f);
    } else if (nx == Q8_X_BLOCK && group == 32) {
        q8_row_dot_x4(1, k, group, w, ws, x, xs, out);
    } else if (nx == Q8_X_BLOCK) {
        q8_row_dot_x4(group / 32, k, group, w, ws, x, xs, out);
    } else if (group == 32) {
        for (size_t j = 0; j < nx; j++)
            out[j] = q8_row_dot_x1(1, k, group, w, ws, x[j], xs[j]);
    } else {
        for (size_t j = 0; j < nx; j++)
            out[j] = q8_row_dot_x1(group / 32, k, group, w, ws, x[j], xs[j]);
    }
}

/*
 * Loop order: a block of weight rows (Q8_ROW_BLOCK_BYTES) stays in cache
 * while the activation rows pass over it Q8_X_BLOCK at a time, so the
 * weights are read from memory once per call whatever n is.
 */
void GEMM_Q8_X86_NAME(size_t m, size_t n, size_t k, size_t group,
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
