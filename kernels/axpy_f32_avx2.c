/* y += alpha * x with AVX2 + FMA: one rounding per element, not two. */
#include <immintrin.h>

#include "kernels_simd.h"

void pp_axpy_f32__avx2(size_t n, float alpha, const float *x, float *y) {
    const __m256 va = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}
