/* RMS normalization with AVX2: the sum of squares runs in 4 x 8 lanes. */
#include <immintrin.h>
#include <math.h>

#include "kernels_simd.h"

void pp_rmsnorm__avx2(size_t n, const float *x, const float *w, float eps,
                      float *out) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 a = _mm256_loadu_ps(x + i);
        const __m256 b = _mm256_loadu_ps(x + i + 8);
        const __m256 c = _mm256_loadu_ps(x + i + 16);
        const __m256 d = _mm256_loadu_ps(x + i + 24);
        acc0 = _mm256_fmadd_ps(a, a, acc0);
        acc1 = _mm256_fmadd_ps(b, b, acc1);
        acc2 = _mm256_fmadd_ps(c, c, acc2);
        acc3 = _mm256_fmadd_ps(d, d, acc3);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i);
        acc0 = _mm256_fmadd_ps(a, a, acc0);
    }
    const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1),
                                     _mm256_add_ps(acc2, acc3));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc),
                          _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float ss = _mm_cvtss_f32(s);
    for (; i < n; i++)
        ss += x[i] * x[i];

    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(vinv, _mm256_loadu_ps(x + i));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), v));
    }
    for (; i < n; i++)
        out[i] = w[i] * (inv * x[i]);
}
