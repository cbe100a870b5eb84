/* exp() over an array with the AVX2 vector exponential of exp_avx2.h. */
#include <math.h>

#include "exp_avx2.h"
#include "kernels_simd.h"

void pp_expf__avx2(size_t n, const float *x, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, pp_exp_avx2(_mm256_loadu_ps(x + i)));

    if (i < n) {
        float in[8] = {0}, result[8];
        for (size_t t = 0; i + t < n; t++)
            in[t] = x[i + t];
        _mm256_storeu_ps(result, pp_exp_avx2(_mm256_loadu_ps(in)));
        for (size_t t = 0; i + t < n; t++)
            out[i + t] = result[t];
    }
}
