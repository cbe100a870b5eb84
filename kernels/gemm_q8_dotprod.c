/* Quantized matrix product with the Armv8.2 dot product extension (sdot). */
#include <arm_neon.h>

#include "kernels_simd.h"

static inline int32x4_t q8_dot16(int32x4_t acc, int8x16_t w, int8x16_t x) {
    return vdotq_s32(acc, w, x);
}

#define GEMM_Q8_NAME pp_gemm_q8__dotprod
#define GEMV_Q8_NAME pp_gemv_q8__dotprod
#include "gemm_q8_arm.h"
