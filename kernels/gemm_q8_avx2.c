/* Quantized matrix product with AVX2: vpmaddubsw + vpmaddwd. */
#include <immintrin.h>

#include "kernels_simd.h"

/*
 * vpmaddubsw saturates its int16 pair sums, but with |u|, |s| <= 127 a pair
 * sum is at most 2 * 127 * 127 = 32258 < 32767, so it is exact here.
 */
static inline __m256i q8_dot32(__m256i acc, __m256i uw, __m256i sx) {
    const __m256i pairs = _mm256_maddubs_epi16(uw, sx);
    return _mm256_add_epi32(acc,
                            _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

#define GEMM_Q8_NAME pp_gemm_q8__avx2
#define GEMV_Q8_NAME pp_gemv_q8__avx2
#include "gemm_q8_x86.h"
