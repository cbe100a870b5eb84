/* Float dot product with Advanced SIMD fused multiply-add in 4 x 4 lanes. */
#include <arm_neon.h>

#include "kernels_simd.h"

float pp_dot_f32__neon(size_t n, const float *a, const float *b) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float32x4_t acc2 = vdupq_n_f32(0.0f), acc3 = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));

    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1),
                                     vaddq_f32(acc2, acc3)));
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}
