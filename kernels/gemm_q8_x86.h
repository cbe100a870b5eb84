/*
 * gemm_q8_x86.h - the body of the x86 gemm_q8 kernels, included once by
 * gemm_q8_avx2.c and once by gemm_q8_avx512vnni.c.
 *
 * Before including it, the file includes <immintrin.h> and defines
 *   GEMM_Q8_NAME  the kernel's symbol, e.g. pp_gemm_q8__avx2;
 *   GEMV_Q8_NAME  the one-row kernel's symbol, e.g. pp_gemv_q8__avx2;
 *   q8_dot32(acc, u, s)  a static function that adds to each int32 lane i
 *       of acc the 4 products u[4i + e] * s[4i + e] of unsigned bytes u
 *       (each at most 127) and signed bytes s, exactly.
 *
 * Method: a 32-byte run of the blocked layout holds 4 columns of 8 rows,
 * row r in lane r, so with the activation's 4 bytes of those columns
 * broadcast to every lane, q8_dot32 adds one row's products to each lane.
 * A group's 8 row sums are complete in one register with no horizontal
 * adds. With u = |a| and s = b * sign(a), every product a * b equals
 * u * s with an unsigned left operand, the form that vpmaddubsw and
 * vpdpbusd take.
 */
#if !defined(GEMM_Q8_NAME) || !defined(GEMV_Q8_NAME)
#error "define GEMM_Q8_NAME, GEMV_Q8_NAME and q8_dot32 before including gemm_q8_x86.h"
#endif

#if defined(__GNUC__)
#define Q8_INLINE static inline __attribute__((always_inline))
#else
#define Q8_INLINE static inline
#endif

/* Weight bytes that stay in cache while every activation row passes over
 * them, small enough for the 256 KiB and larger L2 caches of x86-64 cores. */
#define Q8_ROW_CHUNK_BYTES ((size_t)128 * 1024)
#define Q8_TILE_ROWS 4

#include "gemm_q8_shared.h"

/* Returns the activation quad at x (q8_quad) in every int32 lane. */
Q8_INLINE __m256i q8_broadcast_quad(const int8_t *x, size_t count) {
    return _mm256_set1_epi32(q8_quad(x, count));
}

typedef __m256i q8_isum;  /* int32 sums of the block's 8 rows */
typedef __m256 q8_facc;   /* float sums of the block's 8 rows */

static inline q8_isum q8_isum_zero(void) { return _mm256_setzero_si256(); }
static inline q8_isum q8_isum_add(q8_isum a, q8_isum b) {
    return _mm256_add_epi32(a, b);
}
static inline q8_facc q8_facc_zero(void) { return _mm256_setzero_ps(); }
static inline void q8_facc_store(float *out, q8_facc acc) {
    _mm256_storeu_ps(out, acc);
}

/* One activation quad prepared for q8_run1: broadcast, and its |x|. */
typedef struct q8_xquad {
    __m256i x, ux;
} q8_xquad;

Q8_INLINE q8_xquad q8_xquad_make(const int8_t *x, size_t count) {
    const __m256i xq = q8_broadcast_quad(x, count);
    return (q8_xquad){xq, _mm256_abs_epi8(xq)};
}

/* Adds one run (4 columns of the block's 8 rows) times a prepared quad to
 * isum: |x| is the unsigned operand, w * sign(x) the signed one. */
Q8_INLINE q8_isum q8_run1(const uint8_t *run, q8_xquad xq, q8_isum isum) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)run);
    return q8_dot32(isum, xq.ux, _mm256_sign_epi8(wv, xq.x));
}

/* Adds one run times the activation rows x[j] at column c to isum[j].
 * With several rows, |w| is the unsigned operand, shared by all of them. */
Q8_INLINE void q8_run(size_t t, const uint8_t *run, const int8_t *const *x,
                      size_t c, size_t count, q8_isum *isum) {
    if (t == 1) {
        isum[0] = q8_run1(run, q8_xquad_make(x[0] + c, count), isum[0]);
        return;
    }
    const __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)run);
    const __m256i uw = _mm256_abs_epi8(wv);
#pragma GCC unroll 4
    for (size_t j = 0; j < t; j++) {
        const __m256i xq = q8_broadcast_quad(x[j] + c, count);
        isum[j] = q8_dot32(isum[j], uw, _mm256_sign_epi8(xq, wv));
    }
}

/* acc += (float)isum * (scales * xs), lane by lane, as the scalar kernel
 * rounds it; `scales` points to the group's 8 half weight scales. */
static inline q8_facc q8_facc_add(q8_facc acc, q8_isum isum,
                                  const uint8_t *scales, float xs) {
    const __m256 ws = _mm256_cvtph_ps(
        _mm_loadu_si128((const __m128i *)(const void *)scales));
    const __m256 scale = _mm256_mul_ps(ws, _mm256_set1_ps(xs));
    return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scale));
}

#include "gemm_q8_driver.h"
