/* The scalar dispatch table: the fallback on every CPU. */
#include "kernels.h"

const pp_kernels pp_kernels_scalar = {
    .isa = "scalar",
    .gemm_q8 = pp_gemm_q8__scalar,
    .gemv_q8 = pp_gemv_q8__scalar,
    .quantize_q8 = pp_quantize_q8__scalar,
    .rmsnorm = pp_rmsnorm__scalar,
    .softmax = pp_softmax__scalar,
    .swiglu = pp_swiglu__scalar,
    .dot_f32 = pp_dot_f32__scalar,
    .axpy_f32 = pp_axpy_f32__scalar,
    .rope = pp_rope__scalar,
};
