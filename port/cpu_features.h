/*
 * cpu_features.h - run-time detection of the CPU features that select
 * pprt's kernel variants.
 */
#ifndef PP_CPU_FEATURES_H
#define PP_CPU_FEATURES_H

/*
 * One flag per feature, 1 when the running CPU has it and, for x86 vector
 * registers, the operating system saves their state on context switches
 * (XCR0 checked with xgetbv). Features of the other architecture are 0.
 */
typedef struct pp_cpu_features {
    int avx2;        /* x86: AVX2 with OS-saved YMM state */
    int fma;         /* x86: FMA3 */
    int f16c;        /* x86: half-precision conversions (the AVX2 files are
                        built with -mf16c) */
    int avx512f;     /* x86: AVX-512 Foundation with OS-saved ZMM state */
    int avx512vnni;  /* x86: AVX512-VNNI (vpdpbusd) */
    int avx512bw;    /* x86: AVX-512 byte and word instructions */
    int avx512vl;    /* x86: AVX-512 on 128- and 256-bit registers */
    int neon;        /* aarch64: Advanced SIMD */
    int dotprod;     /* aarch64: SDOT/UDOT (Armv8.2 FEAT_DotProd) */
    int i8mm;        /* aarch64: SMMLA/USMMLA (Armv8.6 FEAT_I8MM) */
} pp_cpu_features;

/* Fills `features` for the CPU this thread runs on. */
void pp_cpu_detect(pp_cpu_features *features);

#endif /* PP_CPU_FEATURES_H */
