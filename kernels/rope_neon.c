/*
 * Rotary embedding with Advanced SIMD. vld2q splits 4 interleaved pairs
 * into their first and second elements (a, b) and (cos, sin), so the
 * rotation is plain lane-wise arithmetic.
 */
#include <arm_neon.h>

#include "kernels_simd.h"

void pp_rope__neon(size_t n_heads, size_t head_dim, const float *cos_sin,
                   float *x) {
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        size_t i = 0;
        for (; i + 8 <= head_dim; i += 8) {
            const float32x4x2_t cs = vld2q_f32(cos_sin + i);
            const float32x4x2_t ab = vld2q_f32(v + i);
            float32x4x2_t rotated;
            /* a*c - b*s and a*s + b*c, each with one fused step. */
            rotated.val[0] = vfmsq_f32(vmulq_f32(ab.val[0], cs.val[0]),
                                       ab.val[1], cs.val[1]);
            rotated.val[1] = vfmaq_f32(vmulq_f32(ab.val[0], cs.val[1]),
                                       ab.val[1], cs.val[0]);
            vst2q_f32(v + i, rotated);
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
