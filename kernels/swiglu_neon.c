/* SwiGLU with Advanced SIMD: silu(g) = g / (1 + exp(-g)) with exp_neon.h. */
#include <math.h>

#include "exp_neon.h"
#include "kernels_simd.h"

void pp_swiglu__neon(size_t n, float *gate, const float *up) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t e = pp_exp_neon(vnegq_f32(g));
        const float32x4_t silu = vdivq_f32(g, vaddq_f32(one, e));
        vst1q_f32(gate + i, vmulq_f32(silu, vld1q_f32(up + i)));
    }
    for (; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
