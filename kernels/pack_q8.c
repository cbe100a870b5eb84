/* Writing a q8 matrix in the blocked layout of kernels.h. */
#include "kernels.h"

void pp_q8_pack(size_t m, size_t k, size_t group, const int8_t *q,
                const float *s, uint8_t *out) {
    const size_t groups = pp_group_count(k, group);
    const size_t blocks = (m + PP_Q8_BLOCK_ROWS - 1) / PP_Q8_BLOCK_ROWS;
    uint8_t *at = out;

    for (size_t b = 0; b < blocks; b++) {
        for (size_t g = 0; g < groups; g++) {
            const size_t begin = g * group;
            const size_t length = k - begin < group ? k - begin : group;
            const size_t quads = pp_q8_quads(length);
            for (size_t quad = 0; quad < quads; quad++) {
                for (size_t r = 0; r < PP_Q8_BLOCK_ROWS; r++) {
                    const size_t row = b * PP_Q8_BLOCK_ROWS + r;
                    for (size_t e = 0; e < 4; e++) {
                        const size_t c = 4 * quad + e;
                        *at++ = row < m && c < length
                                    ? (uint8_t)q[row * k + begin + c]
                                    : 0;
                    }
                }
            }
            for (size_t r = 0; r < PP_Q8_BLOCK_ROWS; r++) {
                const size_t row = b * PP_Q8_BLOCK_ROWS + r;
                const float scale = row < m ? s[row * groups + g] : 0.0f;
                __builtin_memcpy(at, &scale, sizeof scale);
                at += sizeof scale;
            }
        }
    }
}
