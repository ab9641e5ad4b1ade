// Which instruction sets this CPU (and its OS) supports, each checked once and cached.
#ifndef GT_CPU_FEATURES_H
#define GT_CPU_FEATURES_H

#if defined(__x86_64__) || defined(_M_X64)
int gt_cpu_has_avx2(void);        // AVX2 + FMA + F16C, YMM state saved by the OS
int gt_cpu_has_avxvnni(void);     // AVX-VNNI (VEX vpdpbusd), on top of AVX2
int gt_cpu_has_avx512vnni(void);  // AVX-512 F/BW/VL/VNNI, opmask and ZMM state saved by the OS
#endif
#if defined(__aarch64__)
int gt_cpu_has_dotprod(void);     // ARMv8.2 dot product (SDOT)
#endif

#endif
