/* Kernel table selection from the run-time CPU features. */
#include "dispatch.h"

#include <string.h>

#include "cpu_features.h"
#include "kernels_simd.h"

/* A table of one base ISA (suffix `base`) whose int8 products come from
 * the variant `name`: vnni and dotprod differ from their base set only
 * there. */
#define PP_KERNEL_TABLE(name, base)                                         \
    {                                                                       \
        .isa = #name,                                                       \
        .gemm_q8 = pp_gemm_q8__##name,                                      \
        .gemv_q8 = pp_gemv_q8__##name,                                      \
        .quantize_q8 = pp_quantize_q8__##base,                              \
        .rmsnorm = pp_rmsnorm__##base,                                      \
        .softmax = pp_softmax__##base,                                      \
        .swiglu = pp_swiglu__##base,                                        \
        .dot_f32 = pp_dot_f32__##base,                                      \
        .axpy_f32 = pp_axpy_f32__##base,                                    \
        .rope = pp_rope__##base,                                            \
    }

#if defined(__x86_64__)

static const pp_kernels kernels_avx2 = PP_KERNEL_TABLE(avx2, avx2);
static const pp_kernels kernels_vnni = PP_KERNEL_TABLE(vnni, avx2);

static const char *missing_avx2(const pp_cpu_features *f) {
    if (!f->avx2)
        return "AVX2";
    if (!f->fma)
        return "FMA";
    if (!f->f16c)
        return "F16C";
    return NULL;
}

static const char *missing_vnni(const pp_cpu_features *f) {
    const char *missing = missing_avx2(f);
    if (missing)
        return missing;
    if (!f->avx512f)
        return "AVX-512F";
    if (!f->avx512bw)
        return "AVX512-BW";
    if (!f->avx512vl)
        return "AVX512-VL";
    if (!f->avx512vnni)
        return "AVX512-VNNI";
    return NULL;
}

#elif defined(__aarch64__)

static const pp_kernels kernels_neon = PP_KERNEL_TABLE(neon, neon);
static const pp_kernels kernels_dotprod = PP_KERNEL_TABLE(dotprod, neon);

static const char *missing_neon(const pp_cpu_features *f) {
    return f->neon ? NULL : "Advanced SIMD";
}

static const char *missing_dotprod(const pp_cpu_features *f) {
    if (!f->neon)
        return "Advanced SIMD";
    return f->dotprod ? NULL : "the dot product extension (asimddp)";
}

#endif

static const char *missing_nothing(const pp_cpu_features *f) {
    (void)f;
    return NULL;
}

/* A table and the CPU features it needs. */
typedef struct isa_entry {
    const char *name;
    const pp_kernels *table;
    /* Returns the name of a missing feature, or NULL if the CPU has all. */
    const char *(*missing)(const pp_cpu_features *features);
} isa_entry;

/* Slowest first: automatic selection takes the last usable entry. */
static const isa_entry isa_entries[] = {
    {"scalar", &pp_kernels_scalar, missing_nothing},
#if defined(__x86_64__)
    {"avx2", &kernels_avx2, missing_avx2},
    {"vnni", &kernels_vnni, missing_vnni},
#elif defined(__aarch64__)
    {"neon", &kernels_neon, missing_neon},
    {"dotprod", &kernels_dotprod, missing_dotprod},
#endif
};

#define ISA_COUNT (sizeof isa_entries / sizeof isa_entries[0])

/* Names of the kernel ISAs of the other architecture, for a clearer error. */
static const char *const foreign_isas[] = {
#if defined(__x86_64__)
    "neon", "dotprod",
#elif defined(__aarch64__)
    "avx2", "vnni",
#else
    "avx2", "vnni", "neon", "dotprod",
#endif
};

#if defined(__x86_64__)
#define ARCH_NAME "x86-64"
#elif defined(__aarch64__)
#define ARCH_NAME "aarch64"
#else
#define ARCH_NAME "this architecture"
#endif

/* A bounded string builder: writes what fits, always NUL-terminated when
 * size > 0, and counts the full length. */
typedef struct text {
    char *buffer;
    size_t size;
    size_t length;
} text;

static void text_append(text *t, const char *s) {
    for (; *s; s++, t->length++)
        if (t->size > 0 && t->length < t->size - 1)
            t->buffer[t->length] = *s;
    if (t->size > 0)
        t->buffer[t->length < t->size ? t->length : t->size - 1] = '\0';
}

static void append_available(text *t, const pp_cpu_features *features) {
    int first = 1;
    for (size_t i = 0; i < ISA_COUNT; i++) {
        if (isa_entries[i].missing(features))
            continue;
        if (!first)
            text_append(t, " ");
        text_append(t, isa_entries[i].name);
        first = 0;
    }
}

size_t pp_kernels_available(char *names, size_t size) {
    pp_cpu_features features;
    pp_cpu_detect(&features);

    text t = {names, size, 0};
    text_append(&t, "");
    append_available(&t, &features);
    return t.length;
}

static int is_foreign(const char *name) {
    for (size_t i = 0; i < sizeof foreign_isas / sizeof foreign_isas[0]; i++)
        if (strcmp(name, foreign_isas[i]) == 0)
            return 1;
    return 0;
}

int pp_kernels_select(const char *forced_isa, pp_kernels *out,
                      char *message, size_t message_size) {
    pp_cpu_features features;
    pp_cpu_detect(&features);

    text t = {message, message_size, 0};
    text_append(&t, "");

    if (!forced_isa || !*forced_isa || strcmp(forced_isa, "auto") == 0) {
        for (size_t i = ISA_COUNT; i-- > 0;) {
            if (!isa_entries[i].missing(&features)) {
                *out = *isa_entries[i].table;
                return 0;
            }
        }
    }

    for (size_t i = 0; i < ISA_COUNT; i++) {
        if (strcmp(forced_isa, isa_entries[i].name) != 0)
            continue;
        const char *missing = isa_entries[i].missing(&features);
        if (!missing) {
            *out = *isa_entries[i].table;
            return 0;
        }
        text_append(&t, "kernel ISA '");
        text_append(&t, forced_isa);
        text_append(&t, "' is not usable: this CPU lacks ");
        text_append(&t, missing);
        text_append(&t, "; choose one of: ");
        append_available(&t, &features);
        return -1;
    }

    text_append(&t, "kernel ISA '");
    text_append(&t, forced_isa);
    text_append(&t, is_foreign(forced_isa)
                        ? "' is not built for " ARCH_NAME
                        : "' is unknown");
    text_append(&t, "; choose one of: ");
    append_available(&t, &features);
    return -1;
}
