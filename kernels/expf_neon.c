/* exp() over an array with the NEON vector exponential of exp_neon.h. */
#include "exp_neon.h"
#include "kernels_simd.h"

void pp_expf__neon(size_t n, const float *x, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(out + i, pp_exp_neon(vld1q_f32(x + i)));

    if (i < n) {
        float in[4] = {0}, result[4];
        for (size_t t = 0; i + t < n; t++)
            in[t] = x[i + t];
        vst1q_f32(result, pp_exp_neon(vld1q_f32(in)));
        for (size_t t = 0; i + t < n; t++)
            out[i + t] = result[t];
    }
}
