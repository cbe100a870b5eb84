/* Quantized matrix product with Armv8.0 Advanced SIMD: smull + smlal2 +
 * sadalp. */
#include <arm_neon.h>

#include "kernels_simd.h"

/*
 * The int16 lanes of smull + smlal2 hold two products each, at most
 * 2 * 127 * 127 = 32258 in magnitude, so they cannot overflow; sadalp then
 * widens pairs of them into the int32 accumulator.
 */
static inline int32x4_t q8_dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
    int16x8_t products = vmull_s8(vget_low_s8(w), vget_low_s8(x));
    products = vmlal_high_s8(products, w, x);
    return vpadalq_s16(acc, products);
}

#define GEMM_Q8_NAME pp_gemm_q8__neon
#define GEMV_Q8_NAME pp_gemv_q8__neon
#include "gemm_q8_arm.h"
