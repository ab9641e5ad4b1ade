// CPU feature detection for choosing a kernel path at run time: cpuid + XCR0 on x86-64 (the
// instructions and the OS saving their registers), getauxval(AT_HWCAP) on AArch64 Linux. Every
// ISA-specific file asks here; none compiles for a newer ISA than the baseline.
#include "cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

// AVX2, FMA and F16C, with the OS saving the YMM state (OSXSAVE + XCR0 bits 1 and 2).
int gt_cpu_has_avx2(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    unsigned a, b, c, d;
    v = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
        if (fma && osxsave && avx && f16c) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            if ((lo & 6) == 6 && __get_cpuid_max(0, 0) >= 7) {
                __cpuid_count(7, 0, a, b, c, d);
                v = (b >> 5) & 1;
            }
        }
    }
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

// AVX-VNNI (the VEX-encoded vpdpbusd of Alder Lake, Gracemont / N100, Sapphire Rapids, Zen 5):
// cpuid leaf 7 subleaf 1, EAX bit 4, on top of AVX2.
int gt_cpu_has_avxvnni(void) {
#ifdef GT_TEST_AVXVNNI_AS_EVEX
    return gt_cpu_has_avx512vnni();  // a test build's stand-in (simd_x86.h)
#else
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    v = 0;
    if (gt_cpu_has_avx2()) {
        unsigned a, b, c, d;
        __cpuid_count(7, 0, a, b, c, d);
        if (a >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            v = (a >> 4) & 1;
        }
    }
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
#endif
}

// AVX-512 F, BW, VL and VNNI, with the OS saving the opmask and ZMM state (XCR0 bits 1, 2, 5-7).
int gt_cpu_has_avx512vnni(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    v = 0;
    if (gt_cpu_has_avx2()) {
        unsigned lo, hi, a, b, c, d;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        if ((lo & 0xe6) == 0xe6) {
            __cpuid_count(7, 0, a, b, c, d);
            int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
            v = f && bw && vl && vnni;
        }
    }
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

#endif

#if defined(__aarch64__)
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

int gt_cpu_has_dotprod(void) {
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    return 1;  // every Apple arm64 CPU (A11 / M1 on) has it
#else
    return 0;
#endif
}

#endif
