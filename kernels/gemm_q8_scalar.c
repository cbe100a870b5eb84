/* Quantized matrix product, plain loops: the specification in kernels.h,
 * walking the blocked layout in its storage order. */
#include "kernels.h"

/* Adds to acc[r] the terms of one block's rows r < 8 with activation row x
 * (scales xs), group by group. */
static void block_dot(const uint8_t *block, size_t k, size_t group,
                      const int8_t *x, const float *xs, float *acc) {
    const uint8_t *record = block;
    for (size_t g = 0, begin = 0; begin < k; g++, begin += group) {
        const size_t length = k - begin < group ? k - begin : group;
        const size_t quads = pp_q8_quads(length);
        int32_t isum[PP_Q8_BLOCK_ROWS] = {0};
        for (size_t quad = 0; quad < quads; quad++) {
            const uint8_t *run = record + 32 * quad;
            const size_t c0 = begin + 4 * quad;
            const size_t width = length - 4 * quad < 4 ? length - 4 * quad : 4;
            for (size_t r = 0; r < PP_Q8_BLOCK_ROWS; r++)
                for (size_t e = 0; e < width; e++)
                    isum[r] += (int32_t)(int8_t)run[4 * r + e] *
                               (int32_t)x[c0 + e];
        }
        const uint8_t *scales = record + 32 * quads;
        for (size_t r = 0; r < PP_Q8_BLOCK_ROWS; r++)
            acc[r] += (float)isum[r] * (pp_q8_half(scales + 2 * r) * xs[g]);
        record = scales + PP_Q8_SCALE_BYTES;
    }
}

void pp_gemm_q8__scalar(size_t m, size_t n, size_t k, size_t group,
                        const uint8_t *w, const int8_t *x, size_t ldx,
                        const float *xs, size_t ldxs,
                        float *y, size_t ldy, int accumulate) {
    const size_t block_bytes = pp_q8_block_bytes(k, group);

    for (size_t j = 0; j < n; j++) {
        for (size_t i0 = 0; i0 < m; i0 += PP_Q8_BLOCK_ROWS) {
            float acc[PP_Q8_BLOCK_ROWS] = {0.0f};
            block_dot(w + i0 / PP_Q8_BLOCK_ROWS * block_bytes, k, group,
                      x + j * ldx, xs + j * ldxs, acc);
            float *yj = y + j * ldy + i0;
            for (size_t r = 0; r < PP_Q8_BLOCK_ROWS && i0 + r < m; r++)
                yj[r] = accumulate ? yj[r] + acc[r] : acc[r];
        }
    }
}

void pp_gemv_q8__scalar(size_t m, size_t k, size_t group, const uint8_t *w,
                        const int8_t *x, const float *xs, float *y,
                        int accumulate, const pp_q8_next *next) {
    (void)next;
    pp_gemm_q8__scalar(m, 1, k, group, w, x, k, xs, pp_group_count(k, group),
                       y, m, accumulate);
}
