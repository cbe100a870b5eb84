/*
 * test_kernels.c - every kernel variant this CPU can run against the scalar
 * specification and a double-precision reference, plus kernel selection,
 * CPU feature detection and the worker pool.
 *
 * Variants whose ISA this CPU lacks are skipped with a message. Set
 * PPRT_TEST_EXHAUSTIVE=1 to check the vector exp() on every float in
 * [-104, 89] instead of a sample (about a minute per variant natively).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cpu_features.h"
#include "dispatch.h"
#include "kernels.h"
#include "kernels_simd.h"
#include "pool.h"

/* ---- Test data --------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/* Uniform in [lo, hi). */
static float rng_float(float lo, float hi) {
    const double unit = (double)(rng_next() >> 11) / 9007199254740992.0;
    return (float)(lo + (hi - lo) * unit);
}

/* How gemm test operands are filled. */
typedef enum q8_fill {
    FILL_RANDOM,   /* uniform in [-127, 127] */
    FILL_EXTREME,  /* +127 or -127 at random: the largest pair sums */
    FILL_MAX,      /* all +127 */
    FILL_SPARSE,   /* mostly 0, to exercise the sign trick on zeros */
} q8_fill;

static void fill_q8(int8_t *p, size_t count, q8_fill fill) {
    for (size_t i = 0; i < count; i++) {
        const uint64_t r = rng_next() >> 32;
        switch (fill) {
        case FILL_RANDOM:
            p[i] = (int8_t)((int)(r % 255) - 127);
            break;
        case FILL_EXTREME:
            p[i] = (r & 1) ? 127 : -127;
            break;
        case FILL_MAX:
            p[i] = 127;
            break;
        case FILL_SPARSE:
            p[i] = (r % 5 == 0) ? (int8_t)((int)(r / 5 % 255) - 127) : 0;
            break;
        }
    }
}

/* ---- Variants ----------------------------------------------------------- */

/* The SIMD ISAs built for this architecture. */
static const char *const simd_isas[] = {
#if defined(__x86_64__)
    "avx2", "vnni",
#elif defined(__aarch64__)
    "neon", "dotprod",
#endif
};
#define SIMD_ISA_COUNT (sizeof simd_isas / sizeof simd_isas[0])

/* The variant the per-variant tests run on, set by run_variant(). */
static pp_kernels variant;

static void mark_skipped(void) {
    check_skip_current = 1;
}

/* ---- gemm_q8 ------------------------------------------------------------ */

/* Weights row-major (w, ws) for the reference sums, and blocked (packed)
 * for the kernels; gemm_pack writes the second from the first. */
typedef struct gemm_buffers {
    size_t m, n, k, group, groups, ldx, ldxs, ldy;
    int8_t *w, *x;
    float *ws, *xs, *y, *y0;
    uint8_t *packed;
} gemm_buffers;

static void gemm_free(gemm_buffers *b) {
    free(b->w);
    free(b->x);
    free(b->ws);
    free(b->xs);
    free(b->y);
    free(b->y0);
    free(b->packed);
}

static void gemm_pack(gemm_buffers *b) {
    pp_q8_pack(b->m, b->k, b->group, b->w, b->ws, b->packed);
}

/* Allocates operands with padded strides; returns 0 on allocation failure. */
static int gemm_alloc(gemm_buffers *b, size_t m, size_t n, size_t k,
                      size_t group) {
    memset(b, 0, sizeof *b);
    b->m = m;
    b->n = n;
    b->k = k;
    b->group = group;
    b->groups = pp_group_count(k, group);
    b->ldx = k + 3;
    b->ldxs = b->groups + 2;
    b->ldy = m + 5;
    b->w = malloc(m * k);
    b->x = malloc(n * b->ldx);
    b->ws = malloc(m * b->groups * sizeof(float));
    b->xs = malloc(n * b->ldxs * sizeof(float));
    b->y = malloc(n * b->ldy * sizeof(float));
    b->y0 = malloc(n * b->ldy * sizeof(float));
    b->packed = malloc(pp_q8_matrix_bytes(m, k, group));
    if (!b->w || !b->x || !b->ws || !b->xs || !b->y || !b->y0 || !b->packed) {
        gemm_free(b);
        return 0;
    }
    return 1;
}

/* Scales like the quantizer's (amax / 127), with some zero groups. They
 * are half-precision values, as the blocked layout stores weight scales;
 * the activation scales use them too. */
static void fill_scales(float *s, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const float v = (rng_next() % 17 == 0) ? 0.0f : rng_float(1e-3f, 2e-2f);
        s[i] = pp_half_to_float(pp_float_to_half(v));
    }
}

static int32_t group_isum(const gemm_buffers *b, size_t i, size_t j,
                          size_t g) {
    const int8_t *wi = b->w + i * b->k;
    const int8_t *xj = b->x + j * b->ldx;
    const size_t begin = g * b->group;
    const size_t end = begin + b->group < b->k ? begin + b->group : b->k;
    int32_t sum = 0;
    for (size_t c = begin; c < end; c++)
        sum += (int32_t)wi[c] * (int32_t)xj[c];
    return sum;
}

/*
 * Runs `gemm` on random operands and compares every output with the double
 * sum of the exact group terms isum * (float)(ws * xs): the error must be
 * within 1e-5 of the sum of |terms| (plus |y0| when accumulating). Padding
 * between rows of y must stay untouched, and every variant must give the
 * scalar kernel's floats bit for bit.
 */
static void check_gemm_case(pp_gemm_q8_fn gemm, const char *isa, size_t m,
                            size_t n, size_t k, size_t group, int accumulate,
                            q8_fill fill) {
    gemm_buffers b;
    if (!gemm_alloc(&b, m, n, k, group)) {
        CHECKF(0, "out of memory for m=%zu n=%zu k=%zu", m, n, k);
        return;
    }
    fill_q8(b.w, m * k, fill);
    fill_q8(b.x, n * b.ldx, fill == FILL_MAX ? FILL_MAX : FILL_RANDOM);
    fill_scales(b.ws, m * b.groups);
    fill_scales(b.xs, n * b.ldxs);
    gemm_pack(&b);
    for (size_t i = 0; i < n * b.ldy; i++)
        b.y0[i] = rng_float(-4.0f, 4.0f);
    memcpy(b.y, b.y0, n * b.ldy * sizeof(float));

    gemm(m, n, k, group, b.packed, b.x, b.ldx, b.xs, b.ldxs, b.y, b.ldy,
         accumulate);

    float *scalar = malloc(n * b.ldy * sizeof(float));
    if (scalar) {
        memcpy(scalar, b.y0, n * b.ldy * sizeof(float));
        pp_gemm_q8__scalar(m, n, k, group, b.packed, b.x, b.ldx, b.xs,
                           b.ldxs, scalar, b.ldy, accumulate);
        CHECKF(memcmp(scalar, b.y, n * b.ldy * sizeof(float)) == 0,
               "%s gemm m=%zu n=%zu k=%zu group=%zu accumulate=%d fill=%d "
               "differs from scalar in some bits",
               isa, m, n, k, group, accumulate, (int)fill);
        free(scalar);
    }

    double worst = 0.0;
    size_t worst_i = 0, worst_j = 0;
    double worst_value = 0.0, worst_reference = 0.0;
    int padding_changed = 0;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < m; i++) {
            double reference = 0.0, magnitude = 0.0;
            for (size_t g = 0; g < b.groups; g++) {
                const float scale = b.ws[i * b.groups + g] * b.xs[j * b.ldxs + g];
                const double term = (double)group_isum(&b, i, j, g) * scale;
                reference += term;
                magnitude += fabs(term);
            }
            const double start = accumulate ? b.y0[j * b.ldy + i] : 0.0;
            reference += start;
            magnitude += fabs(start);

            const double error = fabs(b.y[j * b.ldy + i] - reference);
            const double relative = magnitude > 0.0 ? error / magnitude
                                                    : (error > 0.0 ? 1.0 : 0.0);
            if (relative > worst) {
                worst = relative;
                worst_i = i;
                worst_j = j;
                worst_value = b.y[j * b.ldy + i];
                worst_reference = reference;
            }
        }
        for (size_t i = m; i < b.ldy; i++)
            if (memcmp(&b.y[j * b.ldy + i], &b.y0[j * b.ldy + i], sizeof(float)))
                padding_changed = 1;
    }

    CHECKF(worst <= 1e-5,
           "%s gemm m=%zu n=%zu k=%zu group=%zu accumulate=%d fill=%d: "
           "y[%zu][%zu] = %.9g, expected %.9g (relative error %.3g)",
           isa, m, n, k, group, accumulate, (int)fill, worst_j, worst_i,
           worst_value, worst_reference, worst);
    CHECKF(!padding_changed,
           "%s gemm m=%zu n=%zu k=%zu group=%zu wrote past m in a row of y",
           isa, m, n, k, group);
    gemm_free(&b);
}

static const size_t gemm_ks[] = {1, 2, 3, 7, 15, 16, 17, 31, 32, 33,
                                 63, 64, 65, 172, 2048 + 7};
static const size_t gemm_groups[] = {4, 8, 32, 64};
static const size_t gemm_mns[] = {1, 3, 4, 5, 17};

static void check_gemm_shapes(pp_gemm_q8_fn gemm, const char *isa) {
    const size_t n_k = sizeof gemm_ks / sizeof gemm_ks[0];
    const size_t n_group = sizeof gemm_groups / sizeof gemm_groups[0];
    const size_t n_mn = sizeof gemm_mns / sizeof gemm_mns[0];

    for (size_t a = 0; a < n_k; a++) {
        const size_t k = gemm_ks[a];
        for (size_t c = 0; c <= n_group; c++) {
            /* The last entry is one group spanning the whole row. */
            const size_t group = c < n_group ? gemm_groups[c] : k;
            for (size_t mi = 0; mi < n_mn; mi++) {
                for (size_t ni = 0; ni < n_mn; ni++) {
                    /* Long rows: fewer shapes keep the qemu run short. */
                    if (k > 100 && mi != ni && (mi + ni) % 2 == 0)
                        continue;
                    check_gemm_case(gemm, isa, gemm_mns[mi], gemm_mns[ni],
                                    k, group, 0, FILL_RANDOM);
                }
            }
        }
    }
}

static void test_gemm_scalar_matches_reference(void) {
    check_gemm_shapes(pp_gemm_q8__scalar, "scalar");
    check_gemm_case(pp_gemm_q8__scalar, "scalar", 5, 3, 172, 32, 1,
                    FILL_RANDOM);
}

static void test_gemm_matches_reference(void) {
    check_gemm_shapes(variant.gemm_q8, variant.isa);
}

static void test_gemm_accumulate(void) {
    const size_t ks[] = {8, 64, 172, 2055};
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        check_gemm_case(variant.gemm_q8, variant.isa, 5, 5, ks[a], 32, 1,
                        FILL_RANDOM);
        check_gemm_case(variant.gemm_q8, variant.isa, 3, 1, ks[a], 4, 1,
                        FILL_RANDOM);
    }
}

/* More weight rows than one cache block of the kernels (at most 128 KiB of
 * weights), with GEMV and prefill row counts. */
static void test_gemm_row_blocks(void) {
    const size_t groups[] = {32, 64, 8};
    for (size_t c = 0; c < sizeof groups / sizeof groups[0]; c++) {
        check_gemm_case(variant.gemm_q8, variant.isa, 131, 1, 2055,
                        groups[c], 0, FILL_RANDOM);
        check_gemm_case(variant.gemm_q8, variant.isa, 131, 6, 2055,
                        groups[c], 1, FILL_RANDOM);
        check_gemm_case(variant.gemm_q8, variant.isa, 67, 5, 4128,
                        groups[c], 0, FILL_RANDOM);
    }
}

static void test_gemm_extreme_values(void) {
    const size_t ks[] = {16, 32, 64, 172, 2055};
    const size_t groups[] = {8, 32, 64, 2055};
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        for (size_t c = 0; c < sizeof groups / sizeof groups[0]; c++) {
            check_gemm_case(variant.gemm_q8, variant.isa, 5, 5, ks[a],
                            groups[c], 0, FILL_EXTREME);
            check_gemm_case(variant.gemm_q8, variant.isa, 4, 4, ks[a],
                            groups[c], 0, FILL_MAX);
            check_gemm_case(variant.gemm_q8, variant.isa, 3, 5, ks[a],
                            groups[c], 0, FILL_SPARSE);
        }
    }
}

/*
 * Picks out one group's int32 sum: with ws = 1 for group g0 and 0 for the
 * others and xs = 1, every output equals that group's sum exactly, because
 * the sums are below 2^24 and every other term is 0.
 */
static void check_group_sums_exact(size_t k, size_t group, q8_fill fill) {
    const size_t m = 19, n = 5;  /* 2 blocks of 8 rows and 3 more */
    gemm_buffers b;
    if (!gemm_alloc(&b, m, n, k, group)) {
        CHECKF(0, "out of memory for k=%zu", k);
        return;
    }
    fill_q8(b.w, m * k, fill);
    fill_q8(b.x, n * b.ldx, fill);
    for (size_t i = 0; i < n * b.ldxs; i++)
        b.xs[i] = 1.0f;

    int mismatches = 0;
    for (size_t g0 = 0; g0 < b.groups; g0++) {
        /* Long rows: the first groups, one in the middle, the last two. */
        if (b.groups > 24 && g0 >= 8 && g0 != b.groups / 2 &&
            g0 + 2 < b.groups)
            continue;
        for (size_t i = 0; i < m * b.groups; i++)
            b.ws[i] = (i % b.groups == g0) ? 1.0f : 0.0f;
        gemm_pack(&b);

        variant.gemm_q8(m, n, k, group, b.packed, b.x, b.ldx, b.xs, b.ldxs,
                        b.y, b.ldy, 0);

        for (size_t j = 0; j < n; j++) {
            for (size_t i = 0; i < m; i++) {
                const int32_t expected = group_isum(&b, i, j, g0);
                const float got = b.y[j * b.ldy + i];
                if (got != (float)expected && mismatches++ < 3)
                    CHECKF(0, "%s k=%zu group=%zu fill=%d: group %zu of "
                              "y[%zu][%zu] = %.1f, exact sum %d",
                           variant.isa, k, group, (int)fill, g0, j, i,
                           (double)got, (int)expected);
            }
        }
    }
    CHECK(mismatches == 0);
    gemm_free(&b);
}

static void test_gemm_group_sums_exact(void) {
    static const struct {
        size_t k, group;
    } cases[] = {{4, 4},    {8, 8},    {8, 4},    {33, 8},   {64, 32},
                 {65, 4},   {96, 32},  {172, 32}, {160, 32}, {256, 64},
                 {2055, 64}, {2055, 32}, {100, 48}, {512, 128}, {48, 16}};
    const q8_fill fills[] = {FILL_RANDOM, FILL_EXTREME, FILL_MAX};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++)
            check_group_sums_exact(cases[c].k, cases[c].group, fills[f]);
}

/* Column products (a tile's down columns, a head's o columns) have many
 * short rows, in blocks of 8; the cases leave a partial last block. The
 * group sums must stay exact. */
static void test_gemm_short_rows(void) {
    const size_t ks[] = {16, 32, 64, 48, 96};
    const size_t ms[] = {8, 64 + 7, 512};
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        for (size_t r = 0; r < sizeof ms / sizeof ms[0]; r++) {
            check_gemm_case(variant.gemm_q8, variant.isa, ms[r], 1, ks[a],
                            32, 1, FILL_RANDOM);
            check_gemm_case(variant.gemm_q8, variant.isa, ms[r], 3, ks[a],
                            32, 0, FILL_EXTREME);
        }
        check_group_sums_exact(ks[a], 32, FILL_MAX);
    }
}

/*
 * gemv_q8 is gemm_q8 with one activation row, bit for bit, whatever its
 * next-product hint: none, a separate matrix, or the blocks right after
 * its own (where the prefetch runs on through the end). The hint matrix
 * must stay unchanged.
 */
static void check_gemv_case(const pp_kernels *k, size_t m, size_t cols,
                            size_t group, int accumulate) {
    gemm_buffers b, other;
    if (!gemm_alloc(&b, 2 * m, 1, cols, group) ||
        !gemm_alloc(&other, m + 3, 1, cols, group)) {
        CHECKF(0, "out of memory for m=%zu k=%zu", m, cols);
        return;
    }
    fill_q8(b.w, 2 * m * cols, FILL_RANDOM);
    fill_q8(b.x, b.ldx, FILL_RANDOM);
    fill_q8(other.w, (m + 3) * cols, FILL_RANDOM);
    fill_scales(b.ws, 2 * m * b.groups);
    fill_scales(b.xs, b.ldxs);
    fill_scales(other.ws, (m + 3) * other.groups);
    gemm_pack(&b);
    gemm_pack(&other);
    for (size_t i = 0; i < m; i++)
        b.y0[i] = rng_float(-4.0f, 4.0f);

    /* The gemv covers the first m rows of b's 2m; the blocks after those
     * rows hold the rest. */
    float *expected = b.y + m;  /* b.y has room for 2m + 5 floats */
    memcpy(expected, b.y0, m * sizeof(float));
    k->gemm_q8(m, 1, cols, group, b.packed, b.x, b.ldx, b.xs, b.ldxs,
               expected, m, accumulate);

    const size_t own_blocks = (m + PP_Q8_BLOCK_ROWS - 1) / PP_Q8_BLOCK_ROWS;
    const pp_q8_next hints[] = {
        {NULL, 0, 0},
        {other.packed, m + 3, cols},
        {b.packed + own_blocks * pp_q8_block_bytes(cols, group),
         2 * m - own_blocks * PP_Q8_BLOCK_ROWS, cols},
    };
    const uint8_t first = other.packed[0];
    for (size_t h = 0; h < 4; h++) {
        memcpy(b.y, b.y0, m * sizeof(float));
        k->gemv_q8(m, cols, group, b.packed, b.x, b.xs, b.y, accumulate,
                   h < 3 ? &hints[h] : NULL);
        CHECKF(memcmp(b.y, expected, m * sizeof(float)) == 0,
               "%s gemv m=%zu k=%zu group=%zu accumulate=%d hint %zu "
               "differs from gemm with n = 1",
               k->isa, m, cols, group, accumulate, h);
    }
    CHECK(other.packed[0] == first);
    gemm_free(&b);
    gemm_free(&other);
}

static void check_gemv_shapes(const pp_kernels *k) {
    const size_t ks[] = {16, 32, 64, 33, 172, 512, 2048 + 7};
    const size_t ms[] = {1, 5, 8, 13, 64 + 3};
    const size_t groups[] = {32, 64, 8};
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t r = 0; r < sizeof ms / sizeof ms[0]; r++)
            for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
                check_gemv_case(k, ms[r], ks[a], groups[g], (int)(r % 2));
}

static void test_gemv_scalar_matches_gemm(void) {
    check_gemv_shapes(&pp_kernels_scalar);
}

static void test_gemv_matches_gemm(void) {
    check_gemv_shapes(&variant);
}

/* ---- Half-precision weight scales --------------------------------------- */

/* Every half converts to a float and back to itself (NaNs aside), and a
 * float halfway between two neighbouring halves rounds to the even one. */
static void test_half_round_trip(void) {
    int wrong = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0)
            continue;  /* NaN */
        const float f = pp_half_to_float((uint16_t)h);
        if (pp_float_to_half(f) != h && wrong++ < 3)
            CHECKF(0, "half 0x%04x -> %a -> 0x%04x", (unsigned)h, (double)f,
                   (unsigned)pp_float_to_half(f));
    }
    CHECK(wrong == 0);
    /* 1 + 2^-11 lies halfway between 1 (0x3C00) and 1 + 2^-10 (0x3C01). */
    CHECK(pp_float_to_half(1.0f + 0x1p-11f) == 0x3C00u);
    CHECK(pp_float_to_half(1.0f + 3 * 0x1p-11f) == 0x3C02u);
    CHECK(pp_float_to_half(1.0f + 0x1p-11f + 0x1p-20f) == 0x3C01u);
    CHECK(pp_float_to_half(65504.0f) == 0x7BFFu);
    CHECK(pp_float_to_half(65520.0f) == 0x7C00u);   /* rounds to Inf */
    CHECK(pp_float_to_half(-0x1p-24f) == 0x8001u);  /* smallest subnormal */
    CHECK(pp_float_to_half(0x1p-26f) == 0x0000u);
    CHECK(pp_half_to_float(0x0001u) == 0x1p-24f);
}

/* Weight quantization with half scales: every scale is a half, every value
 * in [-127, 127], and each dequantized weight within half a step of the
 * input (or clamped at 127 steps when the half scale rounded down). */
static void test_quantize_half_scales(void) {
    enum { N = 300, GROUP = 32 };
    float x[N], s[(N + GROUP - 1) / GROUP];
    int8_t q[N];
    for (size_t i = 0; i < N; i++)
        x[i] = rng_float(-3.0f, 3.0f) * (i < 64 ? 1e-3f : 1.0f);
    for (size_t i = 96; i < 128; i++)
        x[i] = 0.0f;  /* a zero group */
    pp_quantize_q8_half(N, GROUP, x, q, s);

    int bad = 0;
    for (size_t i = 0; i < N; i++) {
        const float scale = s[i / GROUP];
        const double error = fabs((double)q[i] * scale - x[i]);
        const int clamped = q[i] == 127 || q[i] == -127;
        if (q[i] < -127 || error > 0.5 * scale * (1.0 + 1e-6) + (clamped ? 1e-3 * fabs(x[i]) : 0.0))
            bad++;
    }
    for (size_t g = 0; g < sizeof s / sizeof s[0]; g++)
        CHECKF(pp_half_to_float(pp_float_to_half(s[g])) == s[g],
               "scale %zu = %a is not a half", g, (double)s[g]);
    CHECK(s[3] == 0.0f);
    CHECK(q[100] == 0);
    CHECKF(bad == 0, "%d values off by more than half a step", bad);
}

/* ---- quantize_q8 -------------------------------------------------------- */

static void check_quantize(const char *what, size_t n, size_t group,
                           const float *x) {
    const size_t groups = pp_group_count(n, group);
    int8_t *q_ref = malloc(n), *q = malloc(n);
    float *s_ref = malloc(groups * sizeof(float));
    float *s = malloc(groups * sizeof(float));
    if (!q_ref || !q || !s_ref || !s) {
        CHECKF(0, "out of memory for n=%zu", n);
    } else {
        pp_quantize_q8__scalar(n, group, x, q_ref, s_ref);
        variant.quantize_q8(n, group, x, q, s);

        size_t first_byte = n;
        for (size_t i = 0; i < n && first_byte == n; i++)
            if (q[i] != q_ref[i])
                first_byte = i;
        size_t first_scale = groups;
        for (size_t g = 0; g < groups && first_scale == groups; g++)
            if (memcmp(&s[g], &s_ref[g], sizeof(float)))
                first_scale = g;

        CHECKF(first_byte == n,
               "%s quantize %s n=%zu group=%zu: q[%zu] = %d, scalar %d "
               "(x = %.9g)",
               variant.isa, what, n, group, first_byte,
               first_byte < n ? q[first_byte] : 0,
               first_byte < n ? q_ref[first_byte] : 0,
               first_byte < n ? (double)x[first_byte] : 0.0);
        CHECKF(first_scale == groups,
               "%s quantize %s n=%zu group=%zu: scale[%zu] = %a, scalar %a",
               variant.isa, what, n, group, first_scale,
               first_scale < groups ? (double)s[first_scale] : 0.0,
               first_scale < groups ? (double)s_ref[first_scale] : 0.0);
    }
    free(q_ref);
    free(q);
    free(s_ref);
    free(s);
}

static void test_quantize_matches_scalar(void) {
    const size_t ns[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33,
                         63, 64, 65, 172, 2048 + 7};
    const size_t groups[] = {4, 8, 32, 64, 0};
    float *x = malloc(2055 * sizeof(float));
    if (!x) {
        CHECK(x != NULL);
        return;
    }

    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        const size_t n = ns[a];
        for (size_t c = 0; c < sizeof groups / sizeof groups[0]; c++) {
            const size_t group = groups[c] ? groups[c] : n;

            for (size_t i = 0; i < n; i++)
                x[i] = rng_float(-3.0f, 3.0f);
            check_quantize("random", n, group, x);

            /* Zero groups, negative zeros and a lone nonzero value. */
            for (size_t i = 0; i < n; i++)
                x[i] = (i / group) % 2 ? -0.0f : 0.0f;
            x[n - 1] = -1e-20f;
            check_quantize("zeros", n, group, x);

            /* amax = 127 makes the factor 1, so x.5 values are exact ties
             * that must round to even. */
            for (size_t i = 0; i < n; i++)
                x[i] = (float)((int)(rng_next() % 254) - 127) + 0.5f;
            for (size_t i = 0; i < n; i += group)
                x[i] = (i / group) % 2 ? -127.0f : 127.0f;
            check_quantize("ties", n, group, x);

            /* Wide dynamic range within a group. */
            for (size_t i = 0; i < n; i++)
                x[i] = rng_float(-1.0f, 1.0f) *
                       powf(10.0f, rng_float(-6.0f, 4.0f));
            check_quantize("wide range", n, group, x);
        }
    }
    free(x);
}

/* ---- Float kernels ------------------------------------------------------ */

static const size_t float_ns[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33,
                                  63, 64, 65, 172, 2048 + 7};
#define FLOAT_N_COUNT (sizeof float_ns / sizeof float_ns[0])
#define FLOAT_N_MAX 2055

static float buf_a[FLOAT_N_MAX], buf_b[FLOAT_N_MAX], buf_c[FLOAT_N_MAX];
static float buf_out[FLOAT_N_MAX];

static void test_rmsnorm_tolerance(void) {
    for (size_t t = 0; t < FLOAT_N_COUNT; t++) {
        const size_t n = float_ns[t];
        for (size_t i = 0; i < n; i++) {
            buf_a[i] = rng_float(-2.0f, 2.0f);
            buf_b[i] = rng_float(0.5f, 1.5f);
        }
        const float eps = 1e-5f;
        variant.rmsnorm(n, buf_a, buf_b, eps, buf_out);

        double ss = 0.0;
        for (size_t i = 0; i < n; i++)
            ss += (double)buf_a[i] * buf_a[i];
        const double inv = 1.0 / sqrt(ss / (double)n + eps);
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double reference = (double)buf_b[i] * buf_a[i] * inv;
            const double error = fabs(buf_out[i] - reference) /
                                 fmax(fabs(reference), 1e-30);
            worst = fmax(worst, error);
        }
        CHECKF(worst <= 1e-5, "%s rmsnorm n=%zu: relative error %.3g",
               variant.isa, n, worst);
    }
}

static void test_softmax_tolerance(void) {
    for (size_t t = 0; t < FLOAT_N_COUNT; t++) {
        const size_t n = float_ns[t];
        for (size_t i = 0; i < n; i++)
            buf_a[i] = rng_float(-8.0f, 8.0f);
        if (n > 4) {
            buf_a[1] = -INFINITY; /* a masked position */
            buf_a[2] = -200.0f;   /* exp underflows to 0 */
        }
        memcpy(buf_out, buf_a, n * sizeof(float));
        variant.softmax(n, buf_out);

        double max = buf_a[0], sum = 0.0;
        for (size_t i = 1; i < n; i++)
            max = fmax(max, buf_a[i]);
        for (size_t i = 0; i < n; i++)
            sum += exp(buf_a[i] - max);
        double worst = 0.0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs(buf_out[i] - exp(buf_a[i] - max) / sum));
        CHECKF(worst <= 1e-6, "%s softmax n=%zu: absolute error %.3g",
               variant.isa, n, worst);
        if (n > 4)
            CHECKF(buf_out[1] == 0.0f, "%s softmax: exp(-inf) gave %g",
                   variant.isa, (double)buf_out[1]);
    }

    /* One element: probability 1 exactly. */
    buf_out[0] = 3.5f;
    variant.softmax(1, buf_out);
    CHECK(buf_out[0] == 1.0f);
}

static void test_swiglu_tolerance(void) {
    for (size_t t = 0; t < FLOAT_N_COUNT; t++) {
        const size_t n = float_ns[t];
        for (size_t i = 0; i < n; i++) {
            buf_a[i] = (i % 11 == 5) ? rng_float(-100.0f, 100.0f)
                                     : rng_float(-20.0f, 20.0f);
            buf_b[i] = rng_float(-3.0f, 3.0f);
        }
        memcpy(buf_out, buf_a, n * sizeof(float));
        variant.swiglu(n, buf_out, buf_b);

        double worst = 0.0;
        size_t worst_i = 0;
        for (size_t i = 0; i < n; i++) {
            const double g = buf_a[i];
            const double reference = g / (1.0 + exp(-g)) * buf_b[i];
            /* Below 1e-35 the float result may underflow (scalar expf
             * overflows to inf for g < -88.7 and gives -0). */
            const double error = fabs(buf_out[i] - reference) -
                                 1e-5 * fabs(reference);
            if (error > 1e-35 && error > worst) {
                worst = error;
                worst_i = i;
            }
        }
        CHECKF(worst == 0.0,
               "%s swiglu n=%zu: gate %.9g up %.9g gave %.9g (excess %.3g)",
               variant.isa, n, (double)buf_a[worst_i], (double)buf_b[worst_i],
               (double)buf_out[worst_i], worst);
    }
}

static void test_dot_tolerance(void) {
    for (size_t t = 0; t < FLOAT_N_COUNT; t++) {
        const size_t n = float_ns[t];
        for (size_t i = 0; i < n; i++) {
            buf_a[i] = rng_float(-1.0f, 1.0f);
            buf_b[i] = rng_float(-1.0f, 1.0f);
        }
        const float got = variant.dot_f32(n, buf_a, buf_b);
        double reference = 0.0, magnitude = 0.0;
        for (size_t i = 0; i < n; i++) {
            reference += (double)buf_a[i] * buf_b[i];
            magnitude += fabs((double)buf_a[i] * buf_b[i]);
        }
        CHECKF(fabs(got - reference) <= 1e-5 * magnitude,
               "%s dot n=%zu: %.9g, expected %.9g", variant.isa, n,
               (double)got, reference);
    }
}

static void test_axpy_tolerance(void) {
    for (size_t t = 0; t < FLOAT_N_COUNT; t++) {
        const size_t n = float_ns[t];
        const float alpha = rng_float(-2.0f, 2.0f);
        for (size_t i = 0; i < n; i++) {
            buf_a[i] = rng_float(-4.0f, 4.0f);
            buf_b[i] = rng_float(-4.0f, 4.0f);
        }
        memcpy(buf_out, buf_b, n * sizeof(float));
        variant.axpy_f32(n, alpha, buf_a, buf_out);

        /* Two roundings (FMA-free) or one (FMA): within 2^-23 of the
         * magnitudes involved. */
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double product = (double)alpha * buf_a[i];
            const double reference = buf_b[i] + product;
            const double bound = 0x1p-23 * (fabs(buf_b[i]) + fabs(product));
            worst = fmax(worst, fabs(buf_out[i] - reference) / bound);
        }
        CHECKF(worst <= 1.0, "%s axpy n=%zu: error %.3g of the bound",
               variant.isa, n, worst);
    }
}

static void test_rope_tolerance(void) {
    const size_t head_dims[] = {2, 4, 6, 8, 10, 16, 18, 64, 128};
    for (size_t t = 0; t < sizeof head_dims / sizeof head_dims[0]; t++) {
        const size_t head_dim = head_dims[t];
        const size_t n_heads = 3;
        const double pos = 37.0;
        for (size_t i = 0; i < head_dim; i += 2) {
            const double angle =
                pos * pow(10000.0, -(double)i / (double)head_dim);
            buf_c[i] = (float)cos(angle);
            buf_c[i + 1] = (float)sin(angle);
        }
        for (size_t i = 0; i < n_heads * head_dim; i++)
            buf_a[i] = rng_float(-3.0f, 3.0f);
        memcpy(buf_out, buf_a, n_heads * head_dim * sizeof(float));
        variant.rope(n_heads, head_dim, buf_c, buf_out);

        double worst = 0.0;
        for (size_t h = 0; h < n_heads; h++) {
            for (size_t i = 0; i < head_dim; i += 2) {
                const double a = buf_a[h * head_dim + i];
                const double b = buf_a[h * head_dim + i + 1];
                const double c = buf_c[i], s = buf_c[i + 1];
                const double scale = fabs(a * c) + fabs(b * s) +
                                     fabs(a * s) + fabs(b * c);
                const double e0 = fabs(buf_out[h * head_dim + i] - (a * c - b * s));
                const double e1 = fabs(buf_out[h * head_dim + i + 1] - (a * s + b * c));
                worst = fmax(worst, fmax(e0, e1) / scale);
            }
        }
        CHECKF(worst <= 1e-6, "%s rope head_dim=%zu: relative error %.3g",
               variant.isa, head_dim, worst);
    }
}

/* ---- Vector exp --------------------------------------------------------- */

typedef void (*expf_array_fn)(size_t n, const float *x, float *out);

static expf_array_fn variant_expf(void) {
#if defined(__x86_64__)
    if (variant.softmax == pp_softmax__avx2)
        return pp_expf__avx2;
#elif defined(__aarch64__)
    if (variant.softmax == pp_softmax__neon)
        return pp_expf__neon;
#endif
    return NULL;
}

/* Float spacing at the magnitude of `value` (subnormal spacing below
 * FLT_MIN). */
static double float_ulp(double value) {
    value = fabs(value);
    if (value < FLT_MIN)
        return 0x1p-149;
    int exponent;
    frexp(value, &exponent);
    return ldexp(1.0, exponent - 24);
}

static void test_vector_exp_error(void) {
    const expf_array_fn expf_array = variant_expf();
    CHECK(expf_array != NULL);
    if (!expf_array)
        return;

    const char *exhaustive_env = getenv("PPRT_TEST_EXHAUSTIVE");
    const int exhaustive = exhaustive_env && strcmp(exhaustive_env, "1") == 0;
    const uint32_t stride = exhaustive ? 1 : 2053;
    enum { BATCH = 4096 };
    static float in[BATCH], out[BATCH];

    double worst = 0.0, worst_x = 0.0;
    int overflow_wrong = 0;
    for (int negative = 0; negative < 2; negative++) {
        const float limit = negative ? 104.0f : 89.0f;
        uint32_t last;
        memcpy(&last, &limit, sizeof last);
        for (uint32_t bits = 0; bits <= last;) {
            size_t count = 0;
            for (; count < BATCH && bits <= last; count++, bits += stride) {
                const uint32_t pattern = bits | (negative ? 0x80000000u : 0);
                memcpy(&in[count], &pattern, sizeof pattern);
            }
            expf_array(count, in, out);
            for (size_t i = 0; i < count; i++) {
                const double reference = exp((double)in[i]);
                if (reference > FLT_MAX) {
                    /* Correct rounding gives inf from FLT_MAX + half an ulp. */
                    if (reference >= 0x1.ffffffp127 && !isinf(out[i]))
                        overflow_wrong++;
                    continue;
                }
                const double error = fabs(out[i] - reference) /
                                      float_ulp(reference);
                if (error > worst) {
                    worst = error;
                    worst_x = in[i];
                }
            }
        }
    }
    CHECKF(worst <= 2.0, "%s exp: %.3f ulp at x = %a", variant.isa, worst,
           worst_x);
    CHECKF(overflow_wrong == 0, "%s exp: %d overflowing inputs not inf",
           variant.isa, overflow_wrong);
    if (exhaustive)
        printf("%s exp: max error %.3f ulp at x = %a over every float in "
               "[-104, 89]\n", variant.isa, worst, worst_x);

    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.7f,
                             89.5f, -103.0f, -105.0f, 1000.0f, -1000.0f};
    const size_t n_special = sizeof special / sizeof special[0];
    expf_array(n_special, special, out);
    CHECK(out[0] == 1.0f);
    CHECK(out[1] == 1.0f);
    CHECK(isinf(out[2]));
    CHECK(out[2] > 0.0f);
    CHECK(out[3] == 0.0f);
    CHECK(isnan(out[4]));
    const double near_max = exp((double)special[5]);
    CHECK(isfinite(out[5]));
    CHECK(fabs(out[5] - near_max) <= 2 * float_ulp(near_max));
    CHECK(isinf(out[6]));
    CHECK(out[7] > 0.0f);
    CHECK(out[7] < FLT_MIN);
    CHECK(out[8] == 0.0f);
    CHECK(isinf(out[9]));
    CHECK(out[10] == 0.0f);
}

/* ---- Selection and CPU features ----------------------------------------- */

static int list_contains(const char *list, const char *name) {
    const size_t length = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += length)
        if ((p == list || p[-1] == ' ') && (p[length] == ' ' || !p[length]))
            return 1;
    return 0;
}

static void test_cpu_features_consistent(void) {
    pp_cpu_features f;
    pp_cpu_detect(&f);
#if defined(__x86_64__)
    CHECK(f.neon == 0);
    CHECK(f.dotprod == 0);
    CHECK(f.i8mm == 0);
    if (f.avx512vnni || f.avx512bw || f.avx512vl)
        CHECK(f.avx512f);
#elif defined(__aarch64__)
    CHECK(f.neon == 1);
    CHECK(f.avx2 == 0);
    CHECK(f.avx512f == 0);
    CHECK(f.avx512vnni == 0);
#endif
    printf("cpu features: avx2 %d fma %d f16c %d avx512f %d avx512bw %d "
           "avx512vl %d avx512vnni %d neon %d dotprod %d i8mm %d\n",
           f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl,
           f.avx512vnni, f.neon, f.dotprod, f.i8mm);
}

static void test_select_automatic(void) {
    char names[64], message[256];
    const size_t length = pp_kernels_available(names, sizeof names);
    CHECK(length == strlen(names));
    CHECK(list_contains(names, "scalar"));

    pp_kernels k;
    CHECK(pp_kernels_select(NULL, &k, message, sizeof message) == 0);
    CHECK(message[0] == '\0');
    CHECK(k.gemm_q8 != NULL);
    CHECK(k.quantize_q8 != NULL);
    CHECK(k.rmsnorm != NULL);
    CHECK(k.softmax != NULL);
    CHECK(k.swiglu != NULL);
    CHECK(k.dot_f32 != NULL);
    CHECK(k.axpy_f32 != NULL);
    CHECK(k.rope != NULL);
    /* The automatic choice is the last (fastest) usable name. */
    const char *last = strrchr(names, ' ');
    CHECKF(strcmp(k.isa, last ? last + 1 : names) == 0,
           "automatic choice %s, usable: %s", k.isa, names);

    pp_kernels same;
    CHECK(pp_kernels_select("auto", &same, message, sizeof message) == 0);
    CHECK(strcmp(same.isa, k.isa) == 0);
    CHECK(pp_kernels_select("", &same, NULL, 0) == 0);

    CHECK(pp_kernels_select("scalar", &k, message, sizeof message) == 0);
    CHECK(k.gemm_q8 == pp_gemm_q8__scalar);
    printf("usable kernel ISAs: %s\n", names);
}

static void test_select_rejects_bad_names(void) {
    char message[256];
    pp_kernels k;
    memset(&k, 0, sizeof k);

    CHECK(pp_kernels_select("sse9", &k, message, sizeof message) == -1);
    CHECKF(strstr(message, "'sse9' is unknown") != NULL, "message: %s",
           message);
    CHECKF(strstr(message, "choose one of: scalar") != NULL, "message: %s",
           message);
    CHECK(k.gemm_q8 == NULL);

#if defined(__x86_64__)
    const char *foreign = "dotprod";
#else
    const char *foreign = "vnni";
#endif
    CHECK(pp_kernels_select(foreign, &k, message, sizeof message) == -1);
    CHECKF(strstr(message, "is not built for") != NULL, "message: %s",
           message);

    /* A short buffer gets a cut, NUL-terminated message. */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    CHECK(pp_kernels_select("sse9", &k, tiny, sizeof tiny) == -1);
    CHECK(tiny[sizeof tiny - 1] == '\0');
    CHECK(strlen(tiny) == sizeof tiny - 1);
    CHECK(pp_kernels_select("sse9", &k, NULL, 0) == -1);

    /* Every built SIMD ISA is either selectable or rejected with the
     * missing feature named. */
    char names[64];
    pp_kernels_available(names, sizeof names);
    for (size_t i = 0; i < SIMD_ISA_COUNT; i++) {
        const int status = pp_kernels_select(simd_isas[i], &k, message,
                                             sizeof message);
        if (list_contains(names, simd_isas[i])) {
            CHECKF(status == 0, "%s listed but rejected: %s", simd_isas[i],
                   message);
        } else {
            CHECK(status == -1);
            CHECKF(strstr(message, "this CPU lacks") != NULL, "message: %s",
                   message);
        }
    }
}

/* ---- Worker pool -------------------------------------------------------- */

enum { SUM_TASKS = 97, SUM_CHUNK = 1000 };

typedef struct sum_job {
    const float *data;
    float partial[SUM_TASKS];
    atomic_int runs[SUM_TASKS];
} sum_job;

static void sum_task(void *arg, size_t index) {
    sum_job *job = arg;
    float s = 0.0f;
    for (size_t i = 0; i < SUM_CHUNK; i++)
        s += job->data[index * SUM_CHUNK + i] * (float)(i % 7);
    job->partial[index] = s;
    atomic_fetch_add(&job->runs[index], 1);
}

/* Runs the sum job on `workers` and returns the total; counts tasks that did
 * not run exactly once in *wrong_runs. */
static float pool_sum(pp_workers workers, const float *data, size_t n_tasks,
                      int *wrong_runs) {
    static sum_job job;
    job.data = data;
    for (size_t i = 0; i < SUM_TASKS; i++) {
        job.partial[i] = 0.0f;
        atomic_store(&job.runs[i], 0);
    }
    workers.run(workers.pool, n_tasks, sum_task, &job);

    float total = 0.0f;
    for (size_t i = 0; i < n_tasks; i++) {
        total += job.partial[i];
        if (atomic_load(&job.runs[i]) != 1)
            (*wrong_runs)++;
    }
    for (size_t i = n_tasks; i < SUM_TASKS; i++)
        if (atomic_load(&job.runs[i]) != 0)
            (*wrong_runs)++;
    return total;
}

static void test_pool_sum_identical(void) {
    float *data = malloc(SUM_TASKS * SUM_CHUNK * sizeof(float));
    if (!data) {
        CHECK(data != NULL);
        return;
    }
    for (size_t i = 0; i < SUM_TASKS * SUM_CHUNK; i++)
        data[i] = rng_float(-1.0f, 1.0f);

    int wrong_runs = 0;
    const float expected = pool_sum(pp_pool_workers(NULL), data, SUM_TASKS,
                                    &wrong_runs);
    CHECK(wrong_runs == 0);

    const int thread_counts[] = {1, 2, 3, 8};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        pp_pool *pool = NULL;
        const int error = pp_pool_create(&pool, thread_counts[t]);
        CHECKF(error == 0, "pp_pool_create(%d): %s", thread_counts[t],
               strerror(error));
        if (error)
            continue;
        const pp_workers workers = pp_pool_workers(pool);
        CHECK(workers.n_threads == thread_counts[t]);

        /* Many runs in a row, with task counts below, at and above the
         * thread count, and pauses long enough for the workers to sleep. */
        for (int round = 0; round < 300; round++) {
            const size_t n_tasks = round % 3 == 0 ? SUM_TASKS
                                                  : (size_t)round % SUM_TASKS;
            wrong_runs = 0;
            const float total = pool_sum(workers, data, n_tasks, &wrong_runs);
            CHECKF(wrong_runs == 0, "%d threads, round %d: %d tasks ran "
                                    "other than once",
                   thread_counts[t], round, wrong_runs);
            if (n_tasks == SUM_TASKS)
                CHECKF(memcmp(&total, &expected, sizeof total) == 0,
                       "%d threads: sum %.9g, expected %.9g",
                       thread_counts[t], (double)total, (double)expected);
            if (round % 50 == 7) {
                const struct timespec pause = {0, 2000000};
                nanosleep(&pause, NULL);
            }
            if (wrong_runs)
                break;
        }
        pp_pool_destroy(pool);
    }
    free(data);
}

static void count_task(void *arg, size_t index) {
    (void)index;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Runs of 0 to 6 tasks, most of them after a pause long enough for the
 * workers to fall asleep, so both the spinning and the sleeping handoffs
 * are taken many times. A lost wakeup hangs this test. */
static void test_pool_many_short_runs(void) {
    pp_pool *pool = NULL;
    CHECK(pp_pool_create(&pool, 3) == 0);
    if (!pool)
        return;

    atomic_int count;
    int wrong_rounds = 0;
    for (int round = 0; round < 3000; round++) {
        const size_t n_tasks = (size_t)round % 7;
        atomic_init(&count, 0);
        pp_pool_run(pool, n_tasks, count_task, &count);
        if (atomic_load(&count) != (int)n_tasks)
            wrong_rounds++;
        if (round % 3 != 0) {
            const struct timespec pause = {0, 150000};
            nanosleep(&pause, NULL);
        }
    }
    CHECKF(wrong_rounds == 0, "%d runs ran the wrong number of tasks",
           wrong_rounds);
    pp_pool_destroy(pool);
}

typedef struct nested_job {
    pp_pool *pool;
    atomic_int inner_runs;
    atomic_int outer_runs;
} nested_job;

static void inner_task(void *arg, size_t index) {
    (void)index;
    nested_job *job = arg;
    atomic_fetch_add(&job->inner_runs, 1);
}

static void outer_task(void *arg, size_t index) {
    (void)index;
    nested_job *job = arg;
    atomic_fetch_add(&job->outer_runs, 1);
    pp_pool_run(job->pool, 5, inner_task, job);
}

static void test_pool_nested_run_inline(void) {
    nested_job job;
    CHECK(pp_pool_create(&job.pool, 3) == 0);
    if (!job.pool)
        return;
    atomic_init(&job.inner_runs, 0);
    atomic_init(&job.outer_runs, 0);
    pp_pool_run(job.pool, 10, outer_task, &job);
    CHECK(atomic_load(&job.outer_runs) == 10);
    CHECK(atomic_load(&job.inner_runs) == 50);
    pp_pool_destroy(job.pool);
}

static void test_pool_rejects_bad_count(void) {
    pp_pool *pool = (pp_pool *)&pool;
    CHECK(pp_pool_create(&pool, 0) == EINVAL);
    CHECK(pool == NULL);
    pp_pool_destroy(NULL);

    int wrong_runs = 0;
    static float data[SUM_TASKS * SUM_CHUNK];
    pool_sum(pp_pool_workers(NULL), data, 0, &wrong_runs);
    CHECK(wrong_runs == 0);
}

/* Row slices of one gemm on the pool give the bytes of the single call. */
typedef struct gemm_job {
    pp_gemm_q8_fn gemm;
    const gemm_buffers *b;
    float *y;
    size_t rows_per_task;
} gemm_job;

static void gemm_task(void *arg, size_t index) {
    const gemm_job *job = arg;
    const gemm_buffers *b = job->b;
    const size_t begin = index * job->rows_per_task;
    const size_t rows = b->m - begin < job->rows_per_task ? b->m - begin
                                                          : job->rows_per_task;
    /* begin is a multiple of the 8 rows of a block. */
    job->gemm(rows, b->n, b->k, b->group,
              b->packed + begin / PP_Q8_BLOCK_ROWS * pp_q8_block_bytes(b->k, b->group),
              b->x, b->ldx, b->xs, b->ldxs,
              job->y + begin, b->ldy, 0);
}

static void test_gemm_on_pool_identical(void) {
    gemm_buffers b;
    if (!gemm_alloc(&b, 37, 6, 172, 32)) {
        CHECK(0);
        return;
    }
    fill_q8(b.w, b.m * b.k, FILL_RANDOM);
    fill_q8(b.x, b.n * b.ldx, FILL_RANDOM);
    fill_scales(b.ws, b.m * b.groups);
    fill_scales(b.xs, b.n * b.ldxs);
    gemm_pack(&b);
    memset(b.y, 0, b.n * b.ldy * sizeof(float));
    memset(b.y0, 0, b.n * b.ldy * sizeof(float));
    variant.gemm_q8(b.m, b.n, b.k, b.group, b.packed, b.x, b.ldx, b.xs,
                    b.ldxs, b.y0, b.ldy, 0);

    pp_pool *pool = NULL;
    CHECK(pp_pool_create(&pool, 3) == 0);
    gemm_job job = {variant.gemm_q8, &b, b.y, 8};
    pp_pool_run(pool, (b.m + 7) / 8, gemm_task, &job);
    CHECKF(memcmp(b.y, b.y0, b.n * b.ldy * sizeof(float)) == 0,
           "%s gemm split over the pool differs from one call", variant.isa);
    pp_pool_destroy(pool);
    gemm_free(&b);
}

/* ---- Main --------------------------------------------------------------- */

static void test_variant_unusable(void) {
    mark_skipped();
}

/* Runs the per-variant tests on the ISA `name`, or skips them with the
 * selection message when this CPU cannot run it. */
static void run_variant(const char *name) {
    char message[256];
    if (pp_kernels_select(name, &variant, message, sizeof message) != 0) {
        printf("skipped %s kernels: %s\n", name, message);
        RUN(test_variant_unusable);
        return;
    }
    printf("testing %s kernels\n", variant.isa);
    RUN(test_gemm_matches_reference);
    RUN(test_gemm_accumulate);
    RUN(test_gemm_row_blocks);
    RUN(test_gemm_extreme_values);
    RUN(test_gemm_group_sums_exact);
    RUN(test_gemm_short_rows);
    RUN(test_gemv_matches_gemm);
    RUN(test_gemm_on_pool_identical);
    RUN(test_quantize_matches_scalar);
    RUN(test_rmsnorm_tolerance);
    RUN(test_softmax_tolerance);
    RUN(test_swiglu_tolerance);
    RUN(test_dot_tolerance);
    RUN(test_axpy_tolerance);
    RUN(test_rope_tolerance);
    /* The scalar kernels call expf() from the C library. */
    if (variant_expf())
        RUN(test_vector_exp_error);
}

int main(void) {
    RUN(test_cpu_features_consistent);
    RUN(test_select_automatic);
    RUN(test_select_rejects_bad_names);
    RUN(test_pool_sum_identical);
    RUN(test_pool_many_short_runs);
    RUN(test_pool_nested_run_inline);
    RUN(test_pool_rejects_bad_count);
    RUN(test_half_round_trip);
    RUN(test_quantize_half_scales);
    RUN(test_gemm_scalar_matches_reference);
    RUN(test_gemv_scalar_matches_gemm);

    run_variant("scalar");
    for (size_t i = 0; i < SIMD_ISA_COUNT; i++)
        run_variant(simd_isas[i]);

    return check_summary("test_kernels");
}
