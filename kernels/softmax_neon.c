/* Softmax with Advanced SIMD: vector max, vector exp (exp_neon.h), sum. */
#include <math.h>

#include "exp_neon.h"
#include "kernels_simd.h"

void pp_softmax__neon(size_t n, float *x) {
    size_t i = 0;
    float max = x[0];
    if (n >= 4) {
        float32x4_t vmax = vld1q_f32(x);
        for (i = 4; i + 4 <= n; i += 4)
            vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
        max = vmaxvq_f32(vmax);
    }
    for (; i < n; i++)
        if (x[i] > max)
            max = x[i];

    const float32x4_t vmax = vdupq_n_f32(max);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t e = pp_exp_neon(vsubq_f32(vld1q_f32(x + i), vmax));
        vst1q_f32(x + i, e);
        vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }

    const float inv = 1.0f / sum;
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++)
        x[i] *= inv;
}
