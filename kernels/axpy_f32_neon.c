/* y += alpha * x with Advanced SIMD fused multiply-add. */
#include <arm_neon.h>

#include "kernels_simd.h"

void pp_axpy_f32__neon(size_t n, float alpha, const float *x, float *y) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), alpha));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}
