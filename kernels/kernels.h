/*
 * kernels.h - signatures of pprt's compute kernels and their dispatch table.
 *
 * Every operation has one signature. The scalar version (suffix __scalar) is
 * the specification: plain loops, always compiled, and the reference that
 * the SIMD versions are tested against. SIMD versions carry the ISA in the
 * suffix (__avx2, __vnni, __neon, __dotprod) and live in their own files, so
 * ISA compiler flags apply to those files only.
 *
 * Quantized data (q8): int8 values, symmetric, with one scale per group of
 * consecutive values along the reduction axis (float32 for activations,
 * half precision for weights in the blocked layout below). A row of length k has
 * ceil(k / group) groups; the last one is shorter when group does not divide
 * k. Value = scale * q.
 *
 * Integer accumulation is exact, and every variant adds the group terms of
 * a product in the same order with the same float operations, so gemm_q8
 * gives the same floats bit for bit on every ISA. Float kernels state their
 * tolerance next to their signature.
 */
#ifndef PP_KERNELS_H
#define PP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Number of groups of at most `group` values in a row of `k` values. */
static inline size_t pp_group_count(size_t k, size_t group) {
    return (k + group - 1) / group;
}

/*
 * Blocked q8 matrix: the weight layout of every product, chosen so that a
 * SIMD kernel reads one stream front to back and each int32 lane of a dot
 * product instruction sums one row, with no horizontal adds.
 *
 * Rows go in blocks of 8 (the last block padded with zero rows). A block
 * holds, for each group g in order, one record:
 *   runs     ceil(len_g / 4) runs of 32 bytes; run q holds columns
 *            [g*group + 4q, g*group + 4q + 4) of the block's 8 rows, row r
 *            at bytes [4r, 4r + 4) (zero past the group's end)
 *   scales   8 IEEE half-precision floats (little-endian), the group's
 *            scale for rows 0..7 (0 for padding rows)
 * where len_g = group except for a shorter last group. Blocks follow each
 * other with no gaps; a full group's record is 32 * ceil(group / 4) + 16
 * bytes, 272 for group 32: 8.5 bits per weight.
 */
#define PP_Q8_BLOCK_ROWS 8
#define PP_Q8_SCALE_BYTES 16  /* 8 half-precision scales */

static inline size_t pp_q8_quads(size_t length) { return (length + 3) / 4; }

/* Bytes of a full group's record. */
static inline size_t pp_q8_record_bytes(size_t group) {
    return 32 * pp_q8_quads(group) + PP_Q8_SCALE_BYTES;
}

/* Runs in group g of a row of k values. */
static inline size_t pp_q8_group_quads(size_t k, size_t group, size_t g) {
    const size_t begin = g * group;
    return pp_q8_quads(k - begin < group ? k - begin : group);
}

/* Bytes of one block of 8 rows of k values. */
static inline size_t pp_q8_block_bytes(size_t k, size_t group) {
    const size_t groups = pp_group_count(k, group);
    return (groups - 1) * pp_q8_record_bytes(group) +
           32 * pp_q8_group_quads(k, group, groups - 1) + PP_Q8_SCALE_BYTES;
}

/* Bytes of a blocked matrix of m rows of k values. */
static inline size_t pp_q8_matrix_bytes(size_t m, size_t k, size_t group) {
    return (m + PP_Q8_BLOCK_ROWS - 1) / PP_Q8_BLOCK_ROWS *
           pp_q8_block_bytes(k, group);
}

/* Offset of the record of group g in the block that holds row r. */
static inline size_t pp_q8_record_offset(size_t k, size_t group, size_t r,
                                         size_t g) {
    return r / PP_Q8_BLOCK_ROWS * pp_q8_block_bytes(k, group) +
           g * pp_q8_record_bytes(group);
}

/* The float value of an IEEE half (exact: every half is a float). */
static inline float pp_half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    uint32_t bits;
    if (exponent == 0x1F) {         /* Inf, NaN */
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {     /* normal */
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {     /* zero */
        bits = sign;
    } else {                        /* subnormal: m * 2^-24 */
        float f = (float)mantissa * (1.0f / 16777216.0f);
        __builtin_memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    float out;
    __builtin_memcpy(&out, &bits, sizeof out);
    return out;
}

/* The IEEE half nearest to a finite f (ties to even); magnitudes past the
 * largest half (65504) give Inf. */
uint16_t pp_float_to_half(float f);

/* The little-endian half at p, as a float. */
static inline float pp_q8_half(const uint8_t *p) {
    return pp_half_to_float((uint16_t)(p[0] | p[1] << 8));
}

/*
 * The weight of row r, column c (value times scale, exact in float) of a
 * blocked matrix of rows of k values, given the block that holds row r:
 * w + r / 8 * pp_q8_block_bytes(k, group). Callers that walk many rows
 * compute the block size once.
 */
static inline float pp_q8_block_weight(const uint8_t *block, size_t k,
                                       size_t group, size_t r, size_t c) {
    const size_t g = c / group, in_group = c - g * group;
    const size_t row = r % PP_Q8_BLOCK_ROWS;
    const uint8_t *record = block + g * pp_q8_record_bytes(group);
    const int8_t value =
        (int8_t)record[32 * (in_group / 4) + 4 * row + in_group % 4];
    return (float)value *
           pp_q8_half(record + 32 * pp_q8_group_quads(k, group, g) + 2 * row);
}

/*
 * Writes m rows of k int8 values q (row-major) and their scales s
 * ([m][ceil(k / group)], each a half-precision value) as a blocked matrix
 * of pp_q8_matrix_bytes(m, k, group) bytes at out, padding included.
 */
void pp_q8_pack(size_t m, size_t k, size_t group, const int8_t *q,
                const float *s, uint8_t *out);

/*
 * Weight quantization for the blocked layout: like pp_quantize_q8 below,
 * but each scale is rounded to a half first, and the values are quantized
 * with that scale (clamped to [-127, 127]). Finite input only.
 */
void pp_quantize_q8_half(size_t n, size_t group, const float *x, int8_t *q,
                         float *scale);

/*
 * Quantized matrix product, weights times activations, over one tile.
 *   y[j*ldy + i]  = or +=  sum_g (float)isum(i, j, g) * (ws(i, g) * xs[j*ldxs + g])
 *   isum(i, j, g) = sum over c in group g of q(i, c) * x[j*ldx + c]   (int32)
 * for rows i < m of the blocked weight matrix w (values q, scales ws as
 * floats),
 * activation rows j < n, and g < ceil(k/group). The float sum runs over g
 * in increasing order, starting from 0.0f, and is then stored (accumulate
 * == 0) or added to y (accumulate != 0). Rows of y past m are not touched.
 * Ranges: m, n, k >= 1; 1 <= group; int8 values in [-127, 127] (quantizers
 * never emit -128), so an int32 group sum cannot overflow for group <= 2^16.
 * The kernel reads no activation byte past x[j*ldx + k - 1].
 */
typedef void (*pp_gemm_q8_fn)(size_t m, size_t n, size_t k, size_t group,
                              const uint8_t *w, const int8_t *x, size_t ldx,
                              const float *xs, size_t ldxs,
                              float *y, size_t ldy, int accumulate);

/*
 * The weights of the product that a caller runs right after this one: a
 * blocked matrix of m rows of k values at w, or whole blocks of one.
 * m == 0 or a NULL pointer to it: none.
 */
typedef struct pp_q8_next {
    const uint8_t *w;
    size_t m, k;
} pp_q8_next;

/*
 * One activation row (decode): gemm_q8 with n = 1, the same result bit for
 * bit. While it runs, the kernel may start loading `next` into the caches,
 * so that the caller's next product does not begin by waiting for memory.
 * The hint never changes a result.
 */
typedef void (*pp_gemv_q8_fn)(size_t m, size_t k, size_t group,
                              const uint8_t *w, const int8_t *x,
                              const float *xs, float *y, int accumulate,
                              const pp_q8_next *next);

/*
 * Symmetric int8 quantization of one row of n floats in groups of `group`:
 * amax = max |x| over the group; scale = amax / 127; q = round-half-even(
 * x * (127 / amax)), which lies in [-127, 127]. A group of zeros gets scale
 * 0 and q = 0. Non-finite input is the caller's problem (checked upstream).
 * Exact: SIMD versions produce the same bytes and scales.
 */
typedef void (*pp_quantize_q8_fn)(size_t n, size_t group, const float *x,
                                  int8_t *q, float *scale);

/* out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps). Tolerance 1e-5 relative. */
typedef void (*pp_rmsnorm_fn)(size_t n, const float *x, const float *w,
                              float eps, float *out);

/* In place: x[i] = exp(x[i] - max) / sum. Tolerance 1e-6 absolute. */
typedef void (*pp_softmax_fn)(size_t n, float *x);

/* gate[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)).
 * Tolerance 1e-5 relative. */
typedef void (*pp_swiglu_fn)(size_t n, float *gate, const float *up);

/* Returns sum a[i] * b[i]. Tolerance 1e-5 relative to sum |a[i] b[i]|. */
typedef float (*pp_dot_f32_fn)(size_t n, const float *a, const float *b);

/* y[i] += alpha * x[i]. Tolerance: exact for FMA-free code, 1 ulp with FMA. */
typedef void (*pp_axpy_f32_fn)(size_t n, float alpha, const float *x,
                               float *y);

/*
 * Rotary position embedding in place on `n_heads` consecutive heads of
 * `head_dim` (even) floats, llama2.c pairing: for even i, the pair
 * (x[i], x[i+1]) is rotated by the angle a_i = pos * theta^(-i / head_dim).
 * cos_sin holds head_dim floats for this position: cos_sin[i] = cos(a_i),
 * cos_sin[i+1] = sin(a_i). Tolerance 1e-6 relative.
 */
typedef void (*pp_rope_fn)(size_t n_heads, size_t head_dim,
                           const float *cos_sin, float *x);

/* The kernels chosen for this CPU. Filled once by pp_kernels_select(). */
typedef struct pp_kernels {
    const char *isa;              /* "scalar", "avx2", "vnni", "neon", ... */
    pp_gemm_q8_fn gemm_q8;
    pp_gemv_q8_fn gemv_q8;
    pp_quantize_q8_fn quantize_q8;
    pp_rmsnorm_fn rmsnorm;
    pp_softmax_fn softmax;
    pp_swiglu_fn swiglu;
    pp_dot_f32_fn dot_f32;
    pp_axpy_f32_fn axpy_f32;
    pp_rope_fn rope;
} pp_kernels;

void pp_gemm_q8__scalar(size_t m, size_t n, size_t k, size_t group,
                        const uint8_t *w, const int8_t *x, size_t ldx,
                        const float *xs, size_t ldxs,
                        float *y, size_t ldy, int accumulate);
void pp_gemv_q8__scalar(size_t m, size_t k, size_t group, const uint8_t *w,
                        const int8_t *x, const float *xs, float *y,
                        int accumulate, const pp_q8_next *next);
void pp_quantize_q8__scalar(size_t n, size_t group, const float *x,
                            int8_t *q, float *scale);
void pp_rmsnorm__scalar(size_t n, const float *x, const float *w, float eps,
                        float *out);
void pp_softmax__scalar(size_t n, float *x);
void pp_swiglu__scalar(size_t n, float *gate, const float *up);
float pp_dot_f32__scalar(size_t n, const float *a, const float *b);
void pp_axpy_f32__scalar(size_t n, float alpha, const float *x, float *y);
void pp_rope__scalar(size_t n_heads, size_t head_dim, const float *cos_sin,
                     float *x);

/* The scalar table; always available. */
extern const pp_kernels pp_kernels_scalar;

#endif /* PP_KERNELS_H */
