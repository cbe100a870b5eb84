/*
 * Symmetric per-group int8 quantization with Advanced SIMD, producing the
 * same bytes and scales as the scalar version. The max is exact, and
 * 127 / amax and amax / 127 are the same scalar divisions. fcvtns rounds
 * half to even, as lrintf does in the default rounding mode.
 */
#include <arm_neon.h>
#include <math.h>

#include "kernels_simd.h"

static float group_amax(const float *x, size_t length) {
    size_t i = 0;
    float amax = 0.0f;
    if (length >= 4) {
        float32x4_t vmax = vdupq_n_f32(0.0f);
        for (; i + 4 <= length; i += 4)
            vmax = vmaxq_f32(vmax, vabsq_f32(vld1q_f32(x + i)));
        amax = vmaxvq_f32(vmax);
    }
    for (; i < length; i++) {
        const float a = fabsf(x[i]);
        if (a > amax)
            amax = a;
    }
    return amax;
}

static void group_quantize(const float *x, size_t length, float inv,
                           int8_t *q) {
    size_t i = 0;
    for (; i + 16 <= length; i += 16) {
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i), inv));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 4), inv));
        const int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 8), inv));
        const int32x4_t d = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 12), inv));
        const int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
        const int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
        vst1q_s8(q + i, vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd)));
    }
    for (; i + 8 <= length; i += 8) {
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i), inv));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 4), inv));
        vst1_s8(q + i, vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
    }
    for (; i < length; i++)
        q[i] = (int8_t)lrintf(x[i] * inv);
}

void pp_quantize_q8__neon(size_t n, size_t group, const float *x, int8_t *q,
                          float *scale) {
    for (size_t begin = 0, g = 0; begin < n; begin += group, g++) {
        const size_t length = begin + group < n ? group : n - begin;
        const float amax = group_amax(x + begin, length);

        if (amax == 0.0f) {
            scale[g] = 0.0f;
            for (size_t i = 0; i < length; i++)
                q[begin + i] = 0;
            continue;
        }

        /* NOTE: for amax below 127 / FLT_MAX (about 3.7e-37) the factor
         * 127 / amax is inf, and kernels.h leaves the result open: lrintf
         * of inf is unspecified, so scalar and fcvtns bytes may differ. */
        scale[g] = amax / 127.0f;
        group_quantize(x + begin, length, 127.0f / amax, q + begin);
    }
}
