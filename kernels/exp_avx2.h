/*
 * exp_avx2.h - exp() on 8 floats with AVX2 + FMA, for the AVX2 kernel files.
 *
 * exp(x) = 2^n * exp(r) with n = round(x / ln 2) and r = x - n ln 2 in
 * [-ln2/2, ln2/2]. r is formed with ln 2 split in two floats (the first
 * fused step is exact), exp(r) = 1 + r + r^2 P(r) with P of degree 4
 * interpolating (exp(r) - 1 - r) / r^2 at the 5 Chebyshev nodes of that
 * interval (approximation error below 1e-8 relative), and 2^n is applied as
 * two factors 2^(n/2) so that results down to the subnormal range and up to
 * overflow come out right.
 *
 * Error against exp() in double, over every float input in [-104, 89]
 * (PPRT_TEST_EXHAUSTIVE=1 tests/test_kernels, gcc 12 on x86-64): at most
 * 1.08 ulp for normal results and 0.75 ulp of the subnormal spacing below
 * FLT_MIN. The default test run checks a sample against 2 ulp. x > 88.73
 * gives +inf, x < -103.98 gives 0, and NaN gives NaN.
 *
 * Built with SLEEF (make SLEEF=1), it is SLEEF's Sleef_expf8_u10avx2
 * instead, documented as within 1 ulp; the tests hold both to the same
 * bound.
 */
#ifndef PP_EXP_AVX2_H
#define PP_EXP_AVX2_H

#include <immintrin.h>

#if defined(PP_HAVE_SLEEF)
#include <sleef.h>

static inline __m256 pp_exp_avx2(__m256 x) { return Sleef_expf8_u10avx2(x); }
#else
static inline __m256 pp_exp_avx2(__m256 x) {
    const __m256 log2e = _mm256_set1_ps(0x1.715476p+0f);
    const __m256 ln2_hi = _mm256_set1_ps(0x1.62e430p-1f);
    const __m256 ln2_lo = _mm256_set1_ps(-0x1.05c610p-29f);

    /* Beyond these bounds the result is 0 or +inf anyway; clamping keeps n
     * within [-150, 129] so both exponent factors stay normal floats. */
    const __m256 clamped = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));

    const __m256 n = _mm256_round_ps(_mm256_mul_ps(clamped, log2e),
                                     _MM_FROUND_TO_NEAREST_INT |
                                         _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, clamped);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);

    __m256 p = _mm256_set1_ps(0x1.6d10fcp-10f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.120b62p-7f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.55551ap-5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.5554dep-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    const __m256 r2 = _mm256_mul_ps(r, r);
    const __m256 expr = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r),
                                      _mm256_set1_ps(1.0f));

    /* 2^n = 2^half * 2^(n - half), each built in the exponent field. */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256i rest = _mm256_sub_epi32(ni, half);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 scale_a = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    const __m256 scale_b = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
    const __m256 result = _mm256_mul_ps(_mm256_mul_ps(expr, scale_a),
                                        scale_b);

    /* max and min return their second operand when one is NaN, so NaN
     * input is put back here. */
    return _mm256_blendv_ps(result, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

#endif /* PP_HAVE_SLEEF */

#endif /* PP_EXP_AVX2_H */
