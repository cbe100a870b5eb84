/* RMS normalization with Advanced SIMD: the sum of squares runs in 4 x 4
 * lanes. */
#include <arm_neon.h>
#include <math.h>

#include "kernels_simd.h"

void pp_rmsnorm__neon(size_t n, const float *x, const float *w, float eps,
                      float *out) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float32x4_t acc2 = vdupq_n_f32(0.0f), acc3 = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float32x4_t a = vld1q_f32(x + i);
        const float32x4_t b = vld1q_f32(x + i + 4);
        const float32x4_t c = vld1q_f32(x + i + 8);
        const float32x4_t d = vld1q_f32(x + i + 12);
        acc0 = vfmaq_f32(acc0, a, a);
        acc1 = vfmaq_f32(acc1, b, b);
        acc2 = vfmaq_f32(acc2, c, c);
        acc3 = vfmaq_f32(acc3, d, d);
    }
    for (; i + 4 <= n; i += 4) {
        const float32x4_t a = vld1q_f32(x + i);
        acc0 = vfmaq_f32(acc0, a, a);
    }
    float ss = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1),
                                    vaddq_f32(acc2, acc3)));
    for (; i < n; i++)
        ss += x[i] * x[i];

    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), inv);
        vst1q_f32(out + i, vmulq_f32(vld1q_f32(w + i), v));
    }
    for (; i < n; i++)
        out[i] = w[i] * (inv * x[i]);
}
