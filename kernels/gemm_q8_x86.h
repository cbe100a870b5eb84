/*
 * gemm_q8_x86.h - the body of the x86 gemm_q8 kernels, included once by
 * gemm_q8_avx2.c and once by gemm_q8_avx512vnni.c.
 *
 * Before including it, the file includes <immintrin.h> and defines
 *   GEMM_Q8_NAME  the kernel's symbol, e.g. pp_gemm_q8__avx2;
 *   GEMV_Q8_NAME  the one-row kernel's symbol, e.g. pp_gemv_q8__avx2;
 *   q8_dot32(acc, uw, sx)  a static function that adds the 32 products
 *       uw[b] * sx[b] of unsigned bytes uw (each at most 127) and signed
 *       bytes sx to the 8 int32 lanes of acc, exactly.
 *
 * Method: with u = |w| and s = x * sign(w), every product w * x equals
 * u * s with an unsigned left operand, the form that vpmaddubsw and
 * vpdpbusd take. Each int32 group sum is completed before it is converted to
 * float, so the group sums equal the scalar ones bit for bit. Only the float
 * sum over groups runs in another order, 4 groups side by side.
 */
#if !defined(GEMM_Q8_NAME) || !defined(GEMV_Q8_NAME)
#error "define GEMM_Q8_NAME, GEMV_Q8_NAME and q8_dot32 before including gemm_q8_x86.h"
#endif

#if defined(__GNUC__)
#define Q8_INLINE static inline __attribute__((always_inline))
#else
#define Q8_INLINE static inline
#endif

#include "gemm_q8_prefetch.h"

/* Weight bytes that stay in cache while every activation row passes over
 * them, small enough for the 256 KiB and larger L2 caches of x86-64 cores. */
#define Q8_ROW_BLOCK_BYTES ((size_t)128 * 1024)

/*
 * GEMV prefetch distance per weight row, in bytes (0 turns it off). The
 * hardware prefetcher alone falls behind on 4 weight rows and their scales
 * at once. The value comes from bench/bench_kernels --cpu-time on one
 * thread of a Zen 4 EPYC (a shared 2-core VM): 4096 bytes into L2 raised
 * GEMV from 0.67 to 0.97 of the paired plain read bandwidth for
 * 4096 x 11008, and from 0.62 to 0.9 for 11008 x 4096 and 32000 x 4096.
 */
#ifndef Q8_PREFETCH_BYTES
#define Q8_PREFETCH_BYTES 4096
#endif

/* GEMV rows shorter than this are not prefetched: on the same machine,
 * 288 x 288 ran 15-20% slower with it, and 512 x 512 twice as fast. */
#define Q8_PREFETCH_MIN_ROW_BYTES 512

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

/*
 * The kernels below pair one row `a` with 4 rows b[0..3]: a weight row with
 * 4 activation rows (prefill), or an activation row with 4 weight rows
 * (GEMV). Products and scale products are symmetric, so both give the
 * specified group sums. Sharing `a` saves its loads and |a| for 3 of the 4
 * rows and, in GEMV, reads 4 weight streams at once.
 *
 * TODO: the horizontal adds that finish each group sum are most of the
 * GEMV's work. On one Zen 4 thread, with random 8 x 2048 weights in L1,
 * it ran at 53 GB/s, and at 89 GB/s with the adds replaced by plain ones
 * (wrong sums, timing only). A weight layout packed for vpdpbusd (each 32-byte vector
 * holding 4 bytes of 8 rows, so a lane accumulates one row's group sum)
 * needs no horizontal adds, but it changes the file format.
 */

/*
 * Horizontal sums with 2 unpacks and 1 add in place of each vphaddd. Per
 * 128-bit half, q8_fold_pairs(a, b) is [a0+a2, b0+b2, a1+a3, b1+b3]. From
 * two such results (of a, b and of c, d), q8_fold_quads makes
 * [sum a, sum b, sum c, sum d]. These are the sums of two levels of
 * vphaddd, added in another order and exact in int32. On one Zen 4 thread,
 * the folds made prefill 6 to 9% faster (synthetic TinyLlama-1.1B shape,
 * 128 tokens) but decode from memory 7% slower, so the 4-row products fold
 * only when they do not prefetch.
 */
static inline __m256i q8_fold_pairs(__m256i a, __m256i b) {
    return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b),
                            _mm256_unpackhi_epi32(a, b));
}

static inline __m256i q8_fold_quads(__m256i ab, __m256i cd) {
    return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd),
                            _mm256_unpackhi_epi64(ab, cd));
}

/* Stores in pairs[j] the lane sums of a and b[j] over the two groups that
 * start at byte `offset` and offset + group, combined by vphaddd, or by
 * q8_fold_pairs when `fold` is set. */
Q8_INLINE void q8_group_pairs_1x4(const int8_t *a, const int8_t *const *b,
                                  size_t offset, size_t group, size_t pieces,
                                  int fold, __m256i *pairs) {
    __m256i first[4], second[4];
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; j++)
        first[j] = second[j] = _mm256_setzero_si256();

    for (size_t p = offset; p < offset + 32 * pieces; p += 32) {
        const __m256i a1 = q8_load32(a + p);
        const __m256i a2 = q8_load32(a + group + p);
        const __m256i u1 = _mm256_abs_epi8(a1);
        const __m256i u2 = _mm256_abs_epi8(a2);
#pragma GCC unroll 4
        for (size_t j = 0; j < 4; j++) {
            const __m256i s1 = _mm256_sign_epi8(q8_load32(b[j] + p), a1);
            const __m256i s2 =
                _mm256_sign_epi8(q8_load32(b[j] + group + p), a2);
            first[j] = q8_dot32(first[j], u1, s1);
            second[j] = q8_dot32(second[j], u2, s2);
        }
    }

#pragma GCC unroll 4
    for (size_t j = 0; j < 4; j++)
        pairs[j] = fold ? q8_fold_pairs(first[j], second[j])
                        : _mm256_hadd_epi32(first[j], second[j]);
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
 * 32-byte vectors. Full groups go 4 at a time through the vector path.
 * Called with a constant `pieces` so the compiler can drop the inner loop
 * for group 32.
 */
Q8_INLINE float q8_dot_1x1_vector(size_t pieces, size_t k, size_t group,
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

/*
 * Stores in out[j] row a (scales as) times row b[j] (scales bs[j]), for
 * j < 4, as q8_dot_1x1_vector does for one pair. When b[0..3] are the 4
 * consecutive weight rows from row `row` of a GEMV, `ahead` is their weight
 * stream. It is prefetched Q8_PREFETCH_BYTES ahead in each of the 4 rows as
 * they are read. Otherwise ahead is NULL.
 */
Q8_INLINE void q8_dot_1x4_vector(size_t pieces, size_t k, size_t group,
                                 const int8_t *a, const float *as,
                                 const int8_t *const *b,
                                 const float *const *bs,
                                 const q8_ahead *ahead, size_t row,
                                 float *out) {
    const size_t full = k / group;
    __m128 acc[4];
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; j++)
        acc[j] = _mm_setzero_ps();

    const int fold = !ahead;
    q8_cursor cursor = {{NULL}, NULL, 0, 0, 0};
    if (ahead && Q8_PREFETCH_BYTES > 0)
        q8_cursor_start(&cursor, ahead, row, k, group, Q8_PREFETCH_BYTES);

    size_t g = 0;
    for (; g + 4 <= full; g += 4) {
        const size_t begin = g * group;
        if (ahead && Q8_PREFETCH_BYTES > 0)
            q8_cursor_step(&cursor, g);
        __m256i pairs01[4], pairs23[4];
        q8_group_pairs_1x4(a, b, begin, group, pieces, fold, pairs01);
        q8_group_pairs_1x4(a, b, begin + 2 * group, group, pieces, fold,
                           pairs23);

        const __m128 ascale = _mm_loadu_ps(as + g);
#pragma GCC unroll 4
        for (size_t j = 0; j < 4; j++) {
            const __m256i h = fold ? q8_fold_quads(pairs01[j], pairs23[j])
                                   : _mm256_hadd_epi32(pairs01[j], pairs23[j]);
            const __m128i isum = _mm_add_epi32(_mm256_castsi256_si128(h),
                                               _mm256_extracti128_si256(h, 1));
            const __m128 scale = _mm_mul_ps(ascale, _mm_loadu_ps(bs[j] + g));
            acc[j] = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), scale, acc[j]);
        }
    }

    for (size_t j = 0; j < 4; j++)
        out[j] = q8_row_dot_tail(k, group, g, a, as, b[j], bs[j],
                                 q8_hsum_ps(acc[j]));
}

/* Returns row w times row x for any group size. */
static float q8_dot_1x1(size_t k, size_t group, const int8_t *w,
                        const float *ws, const int8_t *x, const float *xs) {
    if (group == 32)
        return q8_dot_1x1_vector(1, k, group, w, ws, x, xs);
    if (group % 32 == 0)
        return q8_dot_1x1_vector(group / 32, k, group, w, ws, x, xs);
    return q8_row_dot_tail(k, group, 0, w, ws, x, xs, 0.0f);
}

/* Stores in out[j] row a times row b[j], j < 4, for any group size, as
 * q8_dot_1x4_vector. */
static void q8_dot_1x4(size_t k, size_t group, const int8_t *a,
                       const float *as, const int8_t *const *b,
                       const float *const *bs, const q8_ahead *ahead,
                       size_t row, float *out) {
    if (group == 32) {
        q8_dot_1x4_vector(1, k, group, a, as, b, bs, ahead, row, out);
    } else if (group % 32 == 0) {
        q8_dot_1x4_vector(group / 32, k, group, a, as, b, bs, ahead, row,
                          out);
    } else {
        for (size_t j = 0; j < 4; j++)
            out[j] = q8_row_dot_tail(k, group, 0, a, as, b[j], bs[j], 0.0f);
    }
}

/*
 * Short rows: the column products multiply m rows of 16, 32 or 64 bytes,
 * stored back to back, with one activation row. A tile's down columns are
 * 16 or 32 channels wide, and a head's o columns 64. Such a block is one stream
 * of 32-byte segments. A segment is one group, or for k = 16 two rows of one
 * partial group each. The segments come in the order of the scales, so 8
 * segment sums line up with 8 consecutive scales.
 *
 * The activation is the unsigned operand here (|x| and w * sign(x)):
 * |x| is computed once per call instead of |w| per segment.
 *
 * A row's float sum adds its groups in increasing order (one or two), as
 * the scalar kernel does from 0.0f, so the result is the same bit for bit.
 *
 * With one activation row, `ahead` (else NULL) is the weight stream, read
 * in order. Each step prefetches Q8_SHORT_PREFETCH_BYTES ahead of it.
 */

/* Prefetch distance along the stream of short rows. Decode of a 6-layer
 * synthetic TinyLlama-1.1B on one thread of a Zen 4 EPYC (shared 2-core
 * VM) ran at 63 tokens/s with 1024 bytes, 71 with 4096 and 72-74 with 8192
 * to 32768. */
#ifndef Q8_SHORT_PREFETCH_BYTES
#define Q8_SHORT_PREFETCH_BYTES 8192
#endif

/* Prefetches for the step over rows [i, i + 8) of k bytes. */
Q8_INLINE void q8_short_prefetch(const q8_ahead *ahead, size_t i, size_t k) {
    if (!ahead || Q8_SHORT_PREFETCH_BYTES == 0)
        return;
    const size_t groups = pp_group_count(k, 32);
    q8_prefetch_bytes(ahead, i * k + Q8_SHORT_PREFETCH_BYTES, 8 * k);
    q8_prefetch_scale(ahead, (i + Q8_SHORT_PREFETCH_BYTES / k) * groups);
}

/* Returns the 8 int32 sums of the 8 lanes of v[0..7], in that order. */
static inline __m256i q8_hsum8(const __m256i *v) {
    const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]),
                                         _mm256_hadd_epi32(v[2], v[3]));
    const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]),
                                         _mm256_hadd_epi32(v[6], v[7]));
    /* h0 = [v0..v3 low halves | v0..v3 high halves], h1 the same for v4..v7. */
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                            _mm256_permute2x128_si256(h0, h1, 0x31));
}

/* Returns 8 segment products (float)isum * (ws * xs) of the 8 segments of
 * 32 bytes at w, segment t paired with activation vector t % 2 of ux/sx
 * (|x| and x) and its scale in xsv. */
static inline __m256 q8_segments8(const int8_t *w, const float *ws,
                                  const __m256i *ux, const __m256i *sx,
                                  __m256 xsv) {
    __m256i v[8];
#pragma GCC unroll 8
    for (size_t t = 0; t < 8; t++)
        v[t] = q8_dot32(_mm256_setzero_si256(), ux[t % 2],
                        _mm256_sign_epi8(q8_load32(w + 32 * t), sx[t % 2]));
    const __m256 scale = _mm256_mul_ps(_mm256_loadu_ps(ws), xsv);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(q8_hsum8(v)), scale);
}

static inline void q8_store8(float *y, __m256 v, int accumulate) {
    if (accumulate)
        v = _mm256_add_ps(_mm256_loadu_ps(y), v);
    _mm256_storeu_ps(y, v);
}

/* Rows of 32 bytes, one group each: 8 rows per step. */
static size_t q8_short_rows32(size_t m, const int8_t *w, const float *ws,
                              const int8_t *x, const float *xs, float *y,
                              int accumulate, const q8_ahead *ahead) {
    const __m256i sx[2] = {q8_load32(x), q8_load32(x)};
    const __m256i ux[2] = {_mm256_abs_epi8(sx[0]), _mm256_abs_epi8(sx[0])};
    const __m256 xsv = _mm256_set1_ps(xs[0]);
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        q8_short_prefetch(ahead, i, 32);
        q8_store8(y + i, q8_segments8(w + 32 * i, ws + i, ux, sx, xsv),
                  accumulate);
    }
    return i;
}

/* Rows of 64 bytes, two groups each: 8 rows (16 segments) per step. */
static size_t q8_short_rows64(size_t m, const int8_t *w, const float *ws,
                              const int8_t *x, const float *xs, float *y,
                              int accumulate, const q8_ahead *ahead) {
    const __m256i sx[2] = {q8_load32(x), q8_load32(x + 32)};
    const __m256i ux[2] = {_mm256_abs_epi8(sx[0]), _mm256_abs_epi8(sx[1])};
    const __m256 xsv = _mm256_setr_ps(xs[0], xs[1], xs[0], xs[1], xs[0],
                                      xs[1], xs[0], xs[1]);
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        q8_short_prefetch(ahead, i, 64);
        const __m256 a = q8_segments8(w + 64 * i, ws + 2 * i, ux, sx, xsv);
        const __m256 b = q8_segments8(w + 64 * i + 256, ws + 2 * i + 8, ux,
                                      sx, xsv);
        /* hadd: [r0 r1 r4 r5 | r2 r3 r6 r7] for rows r of this step. */
        const __m256 rows = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_hadd_ps(a, b)), 0xD8));
        q8_store8(y + i, rows, accumulate);
    }
    return i;
}

/* Rows of 16 bytes, one partial group each: 2 rows per 32-byte segment,
 * 8 rows per step. */
static size_t q8_short_rows16(size_t m, const int8_t *w, const float *ws,
                              const int8_t *x, const float *xs, float *y,
                              int accumulate, const q8_ahead *ahead) {
    const __m256i sx = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)(const void *)x));
    const __m256i ux = _mm256_abs_epi8(sx);
    const __m256 xsv = _mm256_set1_ps(xs[0]);
    /* The hadd tree below leaves rows in the order 0 2 4 6 1 3 5 7. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        q8_short_prefetch(ahead, i, 16);
        __m256i v[4];
        for (size_t t = 0; t < 4; t++)
            v[t] = q8_dot32(_mm256_setzero_si256(), ux,
                            _mm256_sign_epi8(q8_load32(w + 16 * i + 32 * t), sx));
        const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]),
                                            _mm256_hadd_epi32(v[2], v[3]));
        const __m256i isum = _mm256_permutevar8x32_epi32(h, order);
        const __m256 scale = _mm256_mul_ps(_mm256_loadu_ps(ws + i), xsv);
        q8_store8(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scale),
                  accumulate);
    }
    return i;
}

/* Whether q8_short_rows takes rows of k values in groups of `group`. */
static inline int q8_is_short(size_t k, size_t group) {
    return group == 32 && (k == 16 || k == 32 || k == 64);
}

/* Rows [0, m - m % 8) of a short-row product with one activation row x;
 * returns the number of rows done. */
Q8_INLINE size_t q8_short_rows_k(size_t k, size_t m, const int8_t *w,
                                 const float *ws, const int8_t *x,
                                 const float *xs, float *y, int accumulate,
                                 const q8_ahead *ahead) {
    if (k == 16)
        return q8_short_rows16(m, w, ws, x, xs, y, accumulate, ahead);
    if (k == 32)
        return q8_short_rows32(m, w, ws, x, xs, y, accumulate, ahead);
    return q8_short_rows64(m, w, ws, x, xs, y, accumulate, ahead);
}

#include "gemm_q8_driver.h"
