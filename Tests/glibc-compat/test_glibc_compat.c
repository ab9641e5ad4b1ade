// Checks scripts/glibc-compat.c (the release binaries' stand-ins for glibc 2.38's symbols, and with
// -DGEMMA_COMPAT_GLIBC_2_43 the server's for glibc 2.43's) against what glibc documents for them. Built with the shims by scripts/test-aarch64-dist.sh, for
// x86-64 (run natively) and aarch64 (run under qemu on Debian 12's C library).
// Last line: "glibc-compat: P passed, F failed".
#include <math.h>
#include <stdio.h>
#include <string.h>

long __isoc23_strtol(const char *s, char **end, int base);
long long __isoc23_strtoll(const char *s, char **end, int base);
unsigned long __isoc23_strtoul(const char *s, char **end, int base);
int __isoc23_sscanf(const char *s, const char *format, ...);
size_t strlcpy(char *dst, const char *src, size_t size);
size_t strlcat(char *dst, const char *src, size_t size);
float lgammaf_r(float x, int *sign);  // (not declared by <math.h> in strict C11)

static int passed, failed;
static void check(int ok, const char *what) {
    if (ok) passed++;
    else { failed++; printf("FAIL  %s\n", what); }
}

int main(void) {
    char *end;
    check(__isoc23_strtol("-42xyz", &end, 10) == -42 && strcmp(end, "xyz") == 0, "strtol -42");
    check(__isoc23_strtol("0x1f", &end, 16) == 31 && *end == '\0', "strtol hex");
    check(__isoc23_strtoll("-9223372036854775807", &end, 10) == -9223372036854775807LL, "strtoll");
    check(__isoc23_strtoul("4294967296", &end, 10) == 4294967296UL, "strtoul");
    int a = 0; char word[8] = {0}; double x = 0;
    check(__isoc23_sscanf("7 abc 2.5", "%d %7s %lf", &a, word, &x) == 3 && a == 7 && strcmp(word, "abc") == 0 && x == 2.5,
          "sscanf");
    check(__isoc23_sscanf("", "%d", &a) == EOF, "sscanf on empty input: EOF");

    char buf[8];
    check(strlcpy(buf, "hello", sizeof buf) == 5 && strcmp(buf, "hello") == 0, "strlcpy fits");
    check(strlcpy(buf, "hello world", sizeof buf) == 11 && strcmp(buf, "hello w") == 0, "strlcpy truncates");
    memset(buf, 'x', sizeof buf);
    check(strlcpy(buf, "abc", 0) == 3 && buf[0] == 'x', "strlcpy size 0 writes nothing");
    strlcpy(buf, "abc", sizeof buf);
    check(strlcat(buf, "def", sizeof buf) == 6 && strcmp(buf, "abcdef") == 0, "strlcat fits");
    check(strlcat(buf, "ghij", sizeof buf) == 10 && strcmp(buf, "abcdefg") == 0, "strlcat truncates");
    memset(buf, 'x', sizeof buf);
    check(strlcat(buf, "ab", sizeof buf) == sizeof buf + 2 && buf[7] == 'x', "strlcat: no terminator in dst");

    volatile double dx = 7.5, dy = 2.0, big = 1e300, tiny = 3.0;
    volatile float fx = -7.5f, fy = 2.0f;
    check(fmod(dx, dy) == 1.5, "fmod 7.5 2");
    check(fmodf(fx, fy) == -1.5f, "fmodf -7.5 2");
    const double r = fmod(big, tiny);  // exact: fmod is exact for finite operands
    check(r >= 0 && r < 3.0 && r == floor(r), "fmod 1e300 3");
    check(isnan(fmod(dx, 0.0)), "fmod x 0 is NaN");

#ifdef GEMMA_COMPAT_GLIBC_2_43
    // The 13 float functions glibc 2.43 re-versioned (the server's stand-ins), against the double
    // functions (not re-versioned) to within float's precision. Built with -fno-builtin, so the
    // calls reach the stand-ins rather than being folded or inlined.
    volatile float h = 0.5f, two = 2.0f, three = 3.0f, one_half = 1.5f;
    check(fabs(acosf(h) - acos(0.5)) < 1e-6, "acosf");
    check(fabs(acoshf(one_half) - acosh(1.5)) < 1e-6, "acoshf");
    check(fabs(asinf(h) - asin(0.5)) < 1e-6, "asinf");
    check(fabs(atan2f(h, one_half) - atan2(0.5, 1.5)) < 1e-6, "atan2f");
    check(fabs(atanhf(h) - atanh(0.5)) < 1e-6, "atanhf");
    check(fabs(coshf(one_half) - cosh(1.5)) < 1e-5, "coshf");
    check(fabs(log10f(three) - log10(3.0)) < 1e-6, "log10f");
    check(remainder(dx, dy) == -0.5, "remainder 7.5 2");  // 7.5 - 4 * 2: the nearest even quotient
    check(remainderf(one_half, two) == -0.5f, "remainderf 1.5 2");
    check(fabs(sinhf(one_half) - sinh(1.5)) < 1e-5, "sinhf");
    check(sqrtf(two) == (float)sqrt(2.0), "sqrtf 2");
    check(isnan(sqrtf(-two)), "sqrtf -2 is NaN");
    check(fabs(tgammaf(one_half) - tgamma(1.5)) < 1e-6, "tgammaf");
    int sign = 0;
    check(fabs(lgammaf_r(-h, &sign) - lgamma(-0.5)) < 1e-6 && sign == -1, "lgammaf_r -0.5: value and sign");
#endif
    printf("glibc-compat: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
