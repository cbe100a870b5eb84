/* Writing a q8 matrix in the blocked layout of kernels.h. */
#include <math.h>

#include "kernels.h"

uint16_t pp_float_to_half(float f) {
    uint32_t x;
    __builtin_memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7FFFFFFFu;
    if (a >= 0x477FF000u)  /* 65520 and up round to Inf */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 0x38800000u) {  /* below 2^-14: a subnormal half, m * 2^-24 */
        float magnitude;
        __builtin_memcpy(&magnitude, &a, sizeof magnitude);
        return (uint16_t)(sign | (uint16_t)lrintf(magnitude * 16777216.0f));
    }
    /* Normal: drop 13 mantissa bits rounding to even, then rebias the
     * exponent from 127 to 15. A carry out of the mantissa moves to the
     * exponent, which is the right result. */
    const uint32_t rounded = a + 0x0FFFu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((rounded >> 13) - (112u << 10)));
}

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
                const uint16_t h =
                    row < m ? pp_float_to_half(s[row * groups + g]) : 0;
                *at++ = (uint8_t)(h & 0xFFu);
                *at++ = (uint8_t)(h >> 8);
            }
        }
    }
}
