/* Quantized matrix product with Armv8.0 Advanced SIMD: smull, smull2,
 * addp, sadalp in place of sdot. */
#include <arm_neon.h>

#include "kernels_simd.h"

/*
 * smull and smull2 give the 16 products as int16, each at most 127 * 127 in
 * magnitude. addp adds neighbours, so each int16 lane holds 2 products (at
 * most 32258, no overflow), rows 0 and 1 from smull, then rows 2 and 3 from
 * smull2. sadalp adds neighbouring pairs into the 4 int32 lanes.
 */
static inline int32x4_t q8_dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
    const int16x8_t rows01 = vmull_s8(vget_low_s8(w), vget_low_s8(x));
    const int16x8_t rows23 = vmull_high_s8(w, x);
    return vpadalq_s16(acc, vpaddq_s16(rows01, rows23));
}

#define GEMM_Q8_NAME pp_gemm_q8__neon
#define GEMV_Q8_NAME pp_gemv_q8__neon
#include "gemm_q8_arm.h"
