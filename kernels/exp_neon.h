/*
 * exp_neon.h - exp() on 4 floats with Advanced SIMD, for the NEON kernel
 * files. Same method and constants as exp_avx2.h:
 *
 * exp(x) = 2^n * exp(r) with n = round(x / ln 2) and r = x - n ln 2 in
 * [-ln2/2, ln2/2]. r is formed with ln 2 split in two floats (the first
 * fused step is exact), exp(r) = 1 + r + r^2 P(r) with P of degree 4
 * interpolating (exp(r) - 1 - r) / r^2 at the 5 Chebyshev nodes of that
 * interval, and 2^n is applied as two factors 2^(n/2) so that subnormal and
 * overflowing results come out right.
 *
 * The operations and their order match exp_avx2.h step for step, so its
 * measured error (at most 1.08 ulp) should carry over bit for bit. NOTE:
 * only a sample of inputs has been checked on aarch64, against a 2 ulp
 * bound by tests/test_kernels.c; PPRT_TEST_EXHAUSTIVE=1 checks every float
 * in [-104, 89]. x > 88.73 gives +inf, x < -103.98 gives 0, and NaN gives
 * NaN.
 *
 * Built with SLEEF (make SLEEF=1), it is SLEEF's Sleef_expf4_u10advsimd
 * instead, documented as within 1 ulp. NOTE: that build was not run on
 * aarch64 here (no arm64 SLEEF package is installed).
 */
#ifndef PP_EXP_NEON_H
#define PP_EXP_NEON_H

#include <arm_neon.h>

#if defined(PP_HAVE_SLEEF)
#include <sleef.h>

static inline float32x4_t pp_exp_neon(float32x4_t x) {
    return Sleef_expf4_u10advsimd(x);
}
#else
static inline float32x4_t pp_exp_neon(float32x4_t x) {
    const float32x4_t ln2_hi = vdupq_n_f32(0x1.62e430p-1f);
    const float32x4_t ln2_lo = vdupq_n_f32(-0x1.05c610p-29f);

    /* Beyond these bounds the result is 0 or +inf anyway; clamping keeps n
     * within [-150, 129] so both exponent factors stay normal floats.
     * NaN input is put back at the end. */
    const float32x4_t clamped =
        vminq_f32(vmaxq_f32(x, vdupq_n_f32(-104.0f)), vdupq_n_f32(89.0f));

    const float32x4_t n =
        vrndnq_f32(vmulq_f32(clamped, vdupq_n_f32(0x1.715476p+0f)));
    float32x4_t r = vfmsq_f32(clamped, n, ln2_hi);
    r = vfmsq_f32(r, n, ln2_lo);

    float32x4_t p = vdupq_n_f32(0x1.6d10fcp-10f);
    p = vfmaq_f32(vdupq_n_f32(0x1.120b62p-7f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0x1.55551ap-5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0x1.5554dep-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    const float32x4_t r2 = vmulq_f32(r, r);
    const float32x4_t expr = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0f));

    /* 2^n = 2^half * 2^(n - half), each built in the exponent field. */
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t half = vshrq_n_s32(ni, 1);
    const int32x4_t rest = vsubq_s32(ni, half);
    const int32x4_t bias = vdupq_n_s32(127);
    const float32x4_t scale_a =
        vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(half, bias), 23));
    const float32x4_t scale_b =
        vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(rest, bias), 23));
    const float32x4_t result = vmulq_f32(vmulq_f32(expr, scale_a), scale_b);

    const uint32x4_t is_number = vceqq_f32(x, x);
    return vbslq_f32(is_number, result, x);
}

#endif /* PP_HAVE_SLEEF */

#endif /* PP_EXP_NEON_H */
