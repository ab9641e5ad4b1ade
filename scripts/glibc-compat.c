// Linked into the release binaries by scripts/dist.sh, so that they run on glibc 2.35 and newer
// (Raspberry Pi OS and Debian 12 "bookworm": 2.36; Ubuntu 22.04: 2.35), not only on the 2.38+ of
// the Debian 13 toolchain that builds them.
//
// Debian 13's static Swift runtime and Foundation were compiled against glibc 2.41's headers,
// which send strtol, sscanf and friends to their C23 versions (__isoc23_*, new in glibc 2.38),
// and its libm gives fmod / fmodf a new default version (2.38). Those 8 symbols are the only ones
// newer than 2.35 in the binaries (`readelf -V`; scripts/dist.sh checks it). Defined here, the
// link binds them to these definitions instead of glibc's:
//   - __isoc23_strtol / strtoll / strtoul / sscanf: the C17 functions. C23 adds only the "0b"
//     binary prefix (and %b), which nothing here parses;
//   - strlcpy / strlcat: BSD's semantics, as glibc 2.38 implements them;
//   - fmod / fmodf: glibc's own, at the version every glibc has (the 2.38 default only dropped
//     the SVID error-handling wrapper; the results are the same).
// Hidden visibility: libgemmatiny.so keeps exporting only gemma_tiny.h's functions.
//
// Compiled without _GNU_SOURCE and as C11, so that glibc's headers do not redirect this file's
// own strtol / vsscanf calls to the C23 versions.
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIDDEN __attribute__((visibility("hidden")))

#if defined(__x86_64__)
#define GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define GLIBC_BASE "GLIBC_2.17"
#else
#error "glibc-compat.c: x86_64 or aarch64 only"
#endif

HIDDEN long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
HIDDEN long long __isoc23_strtoll(const char *s, char **end, int base) { return strtoll(s, end, base); }
HIDDEN unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }

HIDDEN int __isoc23_sscanf(const char *s, const char *format, ...) {
    va_list args;
    va_start(args, format);
    const int n = vsscanf(s, format, args);
    va_end(args);
    return n;
}

// Copies up to size - 1 bytes and terminates (size > 0); returns strlen(src).
HIDDEN size_t strlcpy(char *dst, const char *src, size_t size) {
    const size_t n = strlen(src);
    if (size > 0) {
        const size_t copied = n < size - 1 ? n : size - 1;
        memcpy(dst, src, copied);
        dst[copied] = '\0';
    }
    return n;
}

// Appends to the string in dst (of at most size bytes); returns the length it tried to make.
HIDDEN size_t strlcat(char *dst, const char *src, size_t size) {
    size_t used = 0;
    while (used < size && dst[used] != '\0') used++;
    if (used == size) return size + strlen(src);  // no terminator within size: nothing appended
    return used + strlcpy(dst + used, src, size - used);
}

// glibc's fmod / fmodf at their first version.
double gemma_compat_fmod_base(double x, double y);
float gemma_compat_fmodf_base(float x, float y);
__asm__(".symver gemma_compat_fmod_base, fmod@" GLIBC_BASE);
__asm__(".symver gemma_compat_fmodf_base, fmodf@" GLIBC_BASE);

HIDDEN double fmod(double x, double y) { return gemma_compat_fmod_base(x, y); }
HIDDEN float fmodf(float x, float y) { return gemma_compat_fmodf_base(x, y); }

#ifdef GEMMA_COMPAT_GLIBC_2_43
// The server (scripts/dist.sh --server) is built by Debian unstable's Swift 6.2.3, whose static
// runtime and Foundation were linked against glibc 2.43. That libm gives these 13 float functions
// new default versions (2.43: its correctly rounded implementations, without the SVID
// error-handling wrappers). Bound here to the versions every glibc has: the same functions as
// before glibc 2.43 (results within glibc's documented error bounds, errno as C requires).
#define GEMMA_COMPAT_1(type, name)                                             \
    type gemma_compat_##name##_base(type x);                                   \
    __asm__(".symver gemma_compat_" #name "_base, " #name "@" GLIBC_BASE);     \
    HIDDEN type name(type x) { return gemma_compat_##name##_base(x); }
#define GEMMA_COMPAT_2(type, name)                                             \
    type gemma_compat_##name##_base(type x, type y);                           \
    __asm__(".symver gemma_compat_" #name "_base, " #name "@" GLIBC_BASE);     \
    HIDDEN type name(type x, type y) { return gemma_compat_##name##_base(x, y); }
GEMMA_COMPAT_1(float, acosf)
GEMMA_COMPAT_1(float, acoshf)
GEMMA_COMPAT_1(float, asinf)
GEMMA_COMPAT_2(float, atan2f)
GEMMA_COMPAT_1(float, atanhf)
GEMMA_COMPAT_1(float, coshf)
GEMMA_COMPAT_1(float, log10f)
GEMMA_COMPAT_2(double, remainder)
GEMMA_COMPAT_2(float, remainderf)
GEMMA_COMPAT_1(float, sinhf)
GEMMA_COMPAT_1(float, sqrtf)
GEMMA_COMPAT_1(float, tgammaf)
float gemma_compat_lgammaf_r_base(float x, int *sign);
__asm__(".symver gemma_compat_lgammaf_r_base, lgammaf_r@" GLIBC_BASE);
HIDDEN float lgammaf_r(float x, int *sign) { return gemma_compat_lgammaf_r_base(x, sign); }
#endif
