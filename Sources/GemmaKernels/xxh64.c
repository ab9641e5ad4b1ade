// XXH64, written from the public xxHash specification (doc/xxhash_spec.md).
#include "gemma_kernels.h"
#include <string.h>

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t P5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t read64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t read32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static inline uint64_t xround(uint64_t acc, uint64_t input) {
    acc += input * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t merge_round(uint64_t acc, uint64_t val) {
    acc ^= xround(0, val);
    return acc * P1 + P4;
}

static uint64_t finish(uint64_t h, const uint8_t *p, size_t len) {
    while (len >= 8) {
        h ^= xround(0, read64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8; len -= 8;
    }
    if (len >= 4) {
        h ^= (uint64_t)read32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4; len -= 4;
    }
    while (len > 0) {
        h ^= (*p) * P5;
        h = rotl64(h, 11) * P1;
        p++; len--;
    }
    h ^= h >> 33; h *= P2;
    h ^= h >> 29; h *= P3;
    h ^= h >> 32;
    return h;
}

static uint64_t converge(const uint64_t v[4]) {
    uint64_t h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) + rotl64(v[3], 18);
    for (int i = 0; i < 4; i++) h = merge_round(h, v[i]);
    return h;
}

void gt_xxh64_reset(gt_xxh64_state *s, uint64_t seed) {
    memset(s, 0, sizeof(*s));
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void gt_xxh64_update(gt_xxh64_state *s, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    s->total_len += len;
    uint8_t *mem = (uint8_t *)s->mem;
    if (s->memsize + len < 32) {
        if (len) memcpy(mem + s->memsize, p, len);
        s->memsize += (uint32_t)len;
        return;
    }
    if (s->memsize) {
        size_t fill = 32 - s->memsize;
        memcpy(mem + s->memsize, p, fill);
        for (int i = 0; i < 4; i++) s->v[i] = xround(s->v[i], read64(mem + 8 * i));
        p += fill; len -= fill;
        s->memsize = 0;
    }
    while (len >= 32) {
        for (int i = 0; i < 4; i++) s->v[i] = xround(s->v[i], read64(p + 8 * i));
        p += 32; len -= 32;
    }
    if (len) memcpy(mem, p, len);
    s->memsize = (uint32_t)len;
}

uint64_t gt_xxh64_digest(const gt_xxh64_state *s) {
    uint64_t h = s->total_len >= 32 ? converge(s->v) : s->seed + P5;
    h += s->total_len;
    return finish(h, (const uint8_t *)s->mem, s->memsize);
}

uint64_t gt_xxh64(const void *data, size_t len, uint64_t seed) {
    gt_xxh64_state s;
    gt_xxh64_reset(&s, seed);
    gt_xxh64_update(&s, data, len);
    return gt_xxh64_digest(&s);
}
