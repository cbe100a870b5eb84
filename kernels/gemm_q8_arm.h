/*
 * gemm_q8_arm.h - the body of the aarch64 gemm_q8 kernels, included once by
 * gemm_q8_neon.c and once by gemm_q8_dotprod.c.
 *
 * Before including it, the file includes <arm_neon.h> and defines
 *   GEMM_Q8_NAME  the kernel's symbol, e.g. pp_gemm_q8__neon;
 *   GEMV_Q8_NAME  the one-row kernel's symbol, e.g. pp_gemv_q8__neon;
 *   q8_dot16(acc, w, x)  a static function that adds to each int32 lane i
 *       of acc the 4 products w[4i + e] * x[4i + e] of signed bytes,
 *       exactly (the sdot instruction's definition).
 *
 * Method: a 32-byte run of the blocked layout holds 4 columns of 8 rows,
 * rows 0-3 in its first 16 bytes and rows 4-7 in the next, row r at bytes
 * [4r, 4r + 4). With the activation's 4 bytes of those columns in every
 * lane, q8_dot16 adds one row's products to each lane, so a group's 8 row
 * sums are complete in two registers with no horizontal adds.
 */
#if !defined(GEMM_Q8_NAME) || !defined(GEMV_Q8_NAME)
#error "define GEMM_Q8_NAME, GEMV_Q8_NAME and q8_dot16 before including gemm_q8_arm.h"
#endif

#if defined(__GNUC__)
#define Q8_INLINE static inline __attribute__((always_inline))
#else
#define Q8_INLINE static inline
#endif

/* Weight bytes that stay in cache while every activation row passes over
 * them: a quarter of the 512 KiB per-core L2 of a Cortex-A76 and an eighth
 * of the 1 MiB shared L2 of a Cortex-A72 (Raspberry Pi 5 and 4). */
#define Q8_ROW_CHUNK_BYTES ((size_t)128 * 1024)
#define Q8_TILE_ROWS 4

#include "gemm_q8_shared.h"

/* NOTE: the prefetch distance into the next product (gemm_q8_shared.h)
 * comes from Zen 4 measurements and has not been tuned on a Cortex-A72 or
 * A76; build with -DQ8_PREFETCH_BYTES=0 to compare. */

/* Returns the activation quad at x (q8_quad) in every int32 lane. */
Q8_INLINE int8x16_t q8_broadcast_quad(const int8_t *x, size_t count) {
    return vreinterpretq_s8_s32(vdupq_n_s32(q8_quad(x, count)));
}

/* int32 and float sums of the block's 8 rows: rows 0-3 in lo, 4-7 in hi */
typedef struct q8_isum {
    int32x4_t lo, hi;
} q8_isum;
typedef struct q8_facc {
    float32x4_t lo, hi;
} q8_facc;

static inline q8_isum q8_isum_zero(void) {
    return (q8_isum){vdupq_n_s32(0), vdupq_n_s32(0)};
}
static inline q8_isum q8_isum_add(q8_isum a, q8_isum b) {
    return (q8_isum){vaddq_s32(a.lo, b.lo), vaddq_s32(a.hi, b.hi)};
}
static inline q8_facc q8_facc_zero(void) {
    return (q8_facc){vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
}
static inline void q8_facc_store(float *out, q8_facc acc) {
    vst1q_f32(out, acc.lo);
    vst1q_f32(out + 4, acc.hi);
}

/* One activation quad prepared for q8_run1: broadcast. */
typedef struct q8_xquad {
    int8x16_t x;
} q8_xquad;

Q8_INLINE q8_xquad q8_xquad_make(const int8_t *x, size_t count) {
    return (q8_xquad){q8_broadcast_quad(x, count)};
}

/* Adds one run (4 columns of the block's 8 rows) times a prepared quad to
 * isum. */
Q8_INLINE q8_isum q8_run1(const uint8_t *run, q8_xquad xq, q8_isum isum) {
    isum.lo = q8_dot16(isum.lo, vld1q_s8((const int8_t *)run), xq.x);
    isum.hi = q8_dot16(isum.hi, vld1q_s8((const int8_t *)run + 16), xq.x);
    return isum;
}

/* Adds one run times the activation rows x[j] at column c to isum[j]. */
Q8_INLINE void q8_run(size_t t, const uint8_t *run, const int8_t *const *x,
                      size_t c, size_t count, q8_isum *isum) {
    const int8x16_t w0 = vld1q_s8((const int8_t *)run);
    const int8x16_t w1 = vld1q_s8((const int8_t *)run + 16);
#pragma GCC unroll 4
    for (size_t j = 0; j < t; j++) {
        const int8x16_t xq = q8_broadcast_quad(x[j] + c, count);
        isum[j].lo = q8_dot16(isum[j].lo, w0, xq);
        isum[j].hi = q8_dot16(isum[j].hi, w1, xq);
    }
}

/* acc += (float)isum * (scales * xs), lane by lane, as the scalar kernel
 * rounds it; `scales` points to the group's 8 half weight scales. */
static inline q8_facc q8_facc_add(q8_facc acc, q8_isum isum,
                                  const uint8_t *scales, float xs) {
    const float16x8_t halves = vreinterpretq_f16_u8(vld1q_u8(scales));
    const float32x4_t xsv = vdupq_n_f32(xs);
    const float32x4_t ws_lo = vcvt_f32_f16(vget_low_f16(halves));
    const float32x4_t ws_hi = vcvt_high_f32_f16(halves);
    acc.lo = vaddq_f32(acc.lo, vmulq_f32(vcvtq_f32_s32(isum.lo),
                                         vmulq_f32(ws_lo, xsv)));
    acc.hi = vaddq_f32(acc.hi, vmulq_f32(vcvtq_f32_s32(isum.hi),
                                         vmulq_f32(ws_hi, xsv)));
    return acc;
}

#include "gemm_q8_driver.h"
