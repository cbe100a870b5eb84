/* Quantized matrix product, plain loops: the specification in kernels.h. */
#include "kernels.h"

void pp_gemm_q8__scalar(size_t m, size_t n, size_t k, size_t group,
                        const int8_t *w, const float *ws,
                        const int8_t *x, size_t ldx,
                        const float *xs, size_t ldxs,
                        float *y, size_t ldy, int accumulate) {
    const size_t groups = pp_group_count(k, group);

    for (size_t j = 0; j < n; j++) {
        const int8_t *xj = x + j * ldx;
        const float *xsj = xs + j * ldxs;

        for (size_t i = 0; i < m; i++) {
            const int8_t *wi = w + i * k;
            const float *wsi = ws + i * groups;
            float acc = 0.0f;

            for (size_t g = 0; g < groups; g++) {
                const size_t begin = g * group;
                const size_t end = begin + group < k ? begin + group : k;
                int32_t isum = 0;
                for (size_t c = begin; c < end; c++)
                    isum += (int32_t)wi[c] * (int32_t)xj[c];
                acc += (float)isum * (wsi[g] * xsj[g]);
            }

            if (accumulate)
                y[j * ldy + i] += acc;
            else
                y[j * ldy + i] = acc;
        }
    }
}

void pp_gemv_q8__scalar(size_t m, size_t k, size_t group, const int8_t *w,
                        const float *ws, const int8_t *x, const float *xs,
                        float *y, int accumulate, const pp_q8_next *next) {
    (void)next;
    pp_gemm_q8__scalar(m, 1, k, group, w, ws, x, k, xs,
                       pp_group_count(k, group), y, m, accumulate);
}
