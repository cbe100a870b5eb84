/*
 * kernels_simd.h - the SIMD variants of the kernels in kernels.h.
 *
 * Each variant has the signature and semantics of its scalar version and is
 * named pp_<op>__<isa>. Only the variants of the target architecture are
 * declared, and each may run only on a CPU that has its ISA: dispatch.c
 * checks that before handing one out.
 */
#ifndef PP_KERNELS_SIMD_H
#define PP_KERNELS_SIMD_H

#include "kernels.h"

#if defined(__x86_64__)

/* AVX2 + FMA. */
void pp_gemm_q8__avx2(size_t m, size_t n, size_t k, size_t group,
                      const uint8_t *w, const int8_t *x, size_t ldx,
                      const float *xs, size_t ldxs,
                      float *y, size_t ldy, int accumulate);
void pp_gemv_q8__avx2(size_t m, size_t k, size_t group, const uint8_t *w,
                      const int8_t *x, const float *xs, float *y,
                      int accumulate, const pp_q8_next *next);
void pp_quantize_q8__avx2(size_t n, size_t group, const float *x,
                          int8_t *q, float *scale);
void pp_rmsnorm__avx2(size_t n, const float *x, const float *w, float eps,
                      float *out);
void pp_softmax__avx2(size_t n, float *x);
void pp_swiglu__avx2(size_t n, float *gate, const float *up);
float pp_dot_f32__avx2(size_t n, const float *a, const float *b);
void pp_axpy_f32__avx2(size_t n, float alpha, const float *x, float *y);
void pp_rope__avx2(size_t n_heads, size_t head_dim, const float *cos_sin,
                   float *x);

/* AVX512-VNNI with AVX512-VL: vpdpbusd on 256-bit registers. */
void pp_gemm_q8__vnni(size_t m, size_t n, size_t k, size_t group,
                      const uint8_t *w, const int8_t *x, size_t ldx,
                      const float *xs, size_t ldxs,
                      float *y, size_t ldy, int accumulate);
void pp_gemv_q8__vnni(size_t m, size_t k, size_t group, const uint8_t *w,
                      const int8_t *x, const float *xs, float *y,
                      int accumulate, const pp_q8_next *next);

/* out[i] = exp(x[i]) with the vector exponential that softmax and swiglu
 * use (error bound in exp_avx2.h). Exposed for the tests. */
void pp_expf__avx2(size_t n, const float *x, float *out);

#endif /* __x86_64__ */

#if defined(__aarch64__)

/* Armv8.0 Advanced SIMD. */
void pp_gemm_q8__neon(size_t m, size_t n, size_t k, size_t group,
                      const uint8_t *w, const int8_t *x, size_t ldx,
                      const float *xs, size_t ldxs,
                      float *y, size_t ldy, int accumulate);
void pp_gemv_q8__neon(size_t m, size_t k, size_t group, const uint8_t *w,
                      const int8_t *x, const float *xs, float *y,
                      int accumulate, const pp_q8_next *next);
void pp_quantize_q8__neon(size_t n, size_t group, const float *x,
                          int8_t *q, float *scale);
void pp_rmsnorm__neon(size_t n, const float *x, const float *w, float eps,
                      float *out);
void pp_softmax__neon(size_t n, float *x);
void pp_swiglu__neon(size_t n, float *gate, const float *up);
float pp_dot_f32__neon(size_t n, const float *a, const float *b);
void pp_axpy_f32__neon(size_t n, float alpha, const float *x, float *y);
void pp_rope__neon(size_t n_heads, size_t head_dim, const float *cos_sin,
                   float *x);

/* Armv8.2 dot product (SDOT). */
void pp_gemm_q8__dotprod(size_t m, size_t n, size_t k, size_t group,
                         const uint8_t *w, const int8_t *x, size_t ldx,
                         const float *xs, size_t ldxs,
                         float *y, size_t ldy, int accumulate);
void pp_gemv_q8__dotprod(size_t m, size_t k, size_t group, const uint8_t *w,
                         const int8_t *x, const float *xs, float *y,
                         int accumulate, const pp_q8_next *next);

/* out[i] = exp(x[i]) with the vector exponential that softmax and swiglu
 * use (error bound in exp_neon.h). Exposed for the tests. */
void pp_expf__neon(size_t n, const float *x, float *out);

#endif /* __aarch64__ */

#endif /* PP_KERNELS_SIMD_H */
