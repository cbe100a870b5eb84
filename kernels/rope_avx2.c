/*
 * Rotary embedding with AVX2. x and cos_sin both interleave pairs, so 8
 * floats hold 4 pairs: with c = (c0 c0 c1 c1 ..), s = (s0 s0 ..) and the
 * pairs swapped, xs = (b0 a0 b1 a1 ..), fmaddsub(x, c, xs * s) gives
 * a*c - b*s in even lanes and b*c + a*s in odd lanes.
 */
#include <immintrin.h>

#include "kernels_simd.h"

void pp_rope__avx2(size_t n_heads, size_t head_dim, const float *cos_sin,
                   float *x) {
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        size_t i = 0;
        for (; i + 8 <= head_dim; i += 8) {
            const __m256 cs = _mm256_loadu_ps(cos_sin + i);
            const __m256 c = _mm256_moveldup_ps(cs);
            const __m256 s = _mm256_movehdup_ps(cs);
            const __m256 xv = _mm256_loadu_ps(v + i);
            const __m256 swapped = _mm256_permute_ps(xv, _MM_SHUFFLE(2, 3, 0, 1));
            _mm256_storeu_ps(v + i, _mm256_fmaddsub_ps(
                                        xv, c, _mm256_mul_ps(swapped, s)));
        }
        for (; i < head_dim; i += 2) {
            const float c = cos_sin[i];
            const float s = cos_sin[i + 1];
            const float a = v[i];
            const float b = v[i + 1];
            v[i] = a * c - b * s;
            v[i + 1] = a * s + b * c;
        }
    }
}
