/* Symmetric per-group int8 quantization: the specification in kernels.h. */
#include <math.h>

#include "kernels.h"

void pp_quantize_q8__scalar(size_t n, size_t group, const float *x,
                            int8_t *q, float *scale) {
    for (size_t begin = 0, g = 0; begin < n; begin += group, g++) {
        const size_t end = begin + group < n ? begin + group : n;

        float amax = 0.0f;
        for (size_t i = begin; i < end; i++) {
            const float a = fabsf(x[i]);
            if (a > amax)
                amax = a;
        }

        if (amax == 0.0f) {
            scale[g] = 0.0f;
            for (size_t i = begin; i < end; i++)
                q[i] = 0;
            continue;
        }

        /* Multiply by the inverse, rounding half to even (the default FP
         * rounding mode), which is what SIMD conversions do too. */
        const float inv = 127.0f / amax;
        scale[g] = amax / 127.0f;
        for (size_t i = begin; i < end; i++)
            q[i] = (int8_t)lrintf(x[i] * inv);
    }
}

void pp_quantize_q8_half(size_t n, size_t group, const float *x, int8_t *q,
                         float *scale) {
    for (size_t begin = 0, g = 0; begin < n; begin += group, g++) {
        const size_t end = begin + group < n ? begin + group : n;

        float amax = 0.0f;
        for (size_t i = begin; i < end; i++)
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;

        const float s = pp_half_to_float(pp_float_to_half(amax / 127.0f));
        scale[g] = s;
        for (size_t i = begin; i < end; i++) {
            /* The half scale can be a little below amax / 127. */
            long v = s > 0.0f ? lrintf(x[i] / s) : 0;
            if (v > 127)
                v = 127;
            if (v < -127)
                v = -127;
            q[i] = (int8_t)v;
        }
    }
}
