/*
 * CPU feature detection: cpuid and xgetbv on x86-64, the kernel's hardware
 * capability bits (getauxval) on Linux/aarch64.
 */
#include "cpu_features.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#if defined(__x86_64__)

/* XCR0 bits: the register state the OS saves and restores. */
enum {
    XCR0_SSE = 1u << 1,
    XCR0_AVX = 1u << 2,       /* upper halves of YMM0-15 */
    XCR0_OPMASK = 1u << 5,    /* k0-k7 */
    XCR0_ZMM_HI256 = 1u << 6, /* upper halves of ZMM0-15 */
    XCR0_HI16_ZMM = 1u << 7,  /* ZMM16-31 */
};

static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    /* xgetbv as an instruction, so this file needs no -mxsave. */
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void detect_x86(pp_cpu_features *features) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return;

    const int osxsave = (ecx >> 27) & 1;
    const int avx = (ecx >> 28) & 1;
    const int fma = (ecx >> 12) & 1;
    const int f16c = (ecx >> 29) & 1;
    if (!osxsave || !avx)
        return;

    const unsigned long long xcr0 = read_xcr0();
    const unsigned long long ymm_state = XCR0_SSE | XCR0_AVX;
    const unsigned long long zmm_state =
        ymm_state | XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM;
    const int os_ymm = (xcr0 & ymm_state) == ymm_state;
    const int os_zmm = (xcr0 & zmm_state) == zmm_state;
    if (!os_ymm)
        return;

    features->fma = fma;
    features->f16c = f16c;

    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return;
    features->avx2 = (ebx >> 5) & 1;
    if (os_zmm) {
        features->avx512f = (ebx >> 16) & 1;
        features->avx512bw = (ebx >> 30) & 1;
        features->avx512vl = (ebx >> 31) & 1;
        features->avx512vnni = (ecx >> 11) & 1;
    }
}

#endif /* __x86_64__ */

#if defined(__aarch64__)

static void detect_aarch64(pp_cpu_features *features) {
    /* Advanced SIMD is mandatory in Armv8-A application profiles. */
    features->neon = 1;

#if defined(__linux__)
    /* Bit positions from the Linux arm64 ABI (asm/hwcap.h), written out so
     * older C libraries without the macros still build this file. */
    const unsigned long hwcap_asimddp = 1ul << 20;
    const unsigned long hwcap2_i8mm = 1ul << 13;
    const unsigned long hwcap = getauxval(AT_HWCAP);
    const unsigned long hwcap2 = getauxval(AT_HWCAP2);
    features->dotprod = (hwcap & hwcap_asimddp) != 0;
    features->i8mm = (hwcap2 & hwcap2_i8mm) != 0;
#else
    /* NOTE: without Linux hardware capability bits only what the compiler
     * was told to assume is reported. */
#if defined(__ARM_FEATURE_DOTPROD)
    features->dotprod = 1;
#endif
#if defined(__ARM_FEATURE_MATMUL_INT8)
    features->i8mm = 1;
#endif
#endif
}

#endif /* __aarch64__ */

void pp_cpu_detect(pp_cpu_features *features) {
    memset(features, 0, sizeof *features);
#if defined(__x86_64__)
    detect_x86(features);
#elif defined(__aarch64__)
    detect_aarch64(features);
#endif
}
