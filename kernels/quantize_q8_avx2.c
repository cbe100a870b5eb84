/*
 * Symmetric per-group int8 quantization with AVX2, producing the same bytes
 * and scales as the scalar version. The max is exact, and 127 / amax and
 * amax / 127 are the same scalar divisions. vcvtps2dq rounds with the
 * current rounding mode (half to even by default), as lrintf does.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels_simd.h"

static float group_amax(const float *x, size_t length) {
    size_t i = 0;
    float amax = 0.0f;
    if (length >= 8) {
        const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 vmax = _mm256_setzero_ps();
        for (; i + 8 <= length; i += 8)
            vmax = _mm256_max_ps(vmax,
                                 _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax),
                              _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        amax = _mm_cvtss_f32(m);
    }
    for (; i < length; i++) {
        const float a = fabsf(x[i]);
        if (a > amax)
            amax = a;
    }
    return amax;
}

static void group_quantize(const float *x, size_t length, float inv,
                           int8_t *q) {
    const __m256 vinv = _mm256_set1_ps(inv);
    size_t i = 0;

    /* packs interleaves the 128-bit halves; the permute restores order. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 32 <= length; i += 32) {
        const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
        const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), vinv));
        const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 16), vinv));
        const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 24), vinv));
        const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b),
                                                 _mm256_packs_epi32(c, d));
        _mm256_storeu_si256((__m256i *)(void *)(q + i),
                            _mm256_permutevar8x32_epi32(bytes, order));
    }

    for (; i + 8 <= length; i += 8) {
        const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
        const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(a),
                                              _mm256_extracti128_si256(a, 1));
        _mm_storel_epi64((__m128i *)(void *)(q + i),
                         _mm_packs_epi16(words, words));
    }

    for (; i < length; i++)
        q[i] = (int8_t)lrintf(x[i] * inv);
}

void pp_quantize_q8__avx2(size_t n, size_t group, const float *x, int8_t *q,
                          float *scale) {
    for (size_t begin = 0, g = 0; begin < n; begin += group, g++) {
        const size_t length = begin + group < n ? group : n - begin;
        const float amax = group_amax(x + begin, length);

        if (amax == 0.0f) {
            scale[g] = 0.0f;
            for (size_t i = 0; i < length; i++)
                q[begin + i] = 0;
            continue;
        }

        /* NOTE: for amax below 127 / FLT_MAX (about 3.7e-37) the factor
         * 127 / amax is inf, and kernels.h leaves the result open: lrintf
         * of inf is unspecified, so scalar and vcvtps2dq bytes may differ. */
        scale[g] = amax / 127.0f;
        group_quantize(x + begin, length, 127.0f / amax, q + begin);
    }
}
