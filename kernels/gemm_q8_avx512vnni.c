/*
 * Quantized matrix product with AVX512-VNNI: vpdpbusd on 256-bit registers
 * (AVX512-VL), one instruction per 32 byte products in place of AVX2's
 * three. NOTE: 512-bit registers would halve the instruction count again on
 * CPUs with full-width AVX-512 units (Intel server cores), but not on
 * Zen 4, which splits them into two 256-bit halves.
 */
#include <immintrin.h>

#include "kernels_simd.h"

/* vpdpbusd (not the saturating vpdpbusds): exact int32 accumulation. */
static inline __m256i q8_dot32(__m256i acc, __m256i uw, __m256i sx) {
    return _mm256_dpbusd_epi32(acc, uw, sx);
}

#define GEMM_Q8_NAME pp_gemm_q8__vnni
#define GEMV_Q8_NAME pp_gemv_q8__vnni
#include "gemm_q8_x86.h"
