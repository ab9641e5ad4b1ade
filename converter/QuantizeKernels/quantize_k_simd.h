// The K-quant quantizers' SIMD body, written once for any vector width: included by
// quantize_k_avx2.c (8 lanes) and quantize_k_avx512.c (16 lanes), which define the vector
// operations below first. Not a standalone header.
//
// Bit-identical to the portable reference in quantize_k.c: the same IEEE operations in the same
// order, one sub-block per lane ("structure of arrays": X[i] holds element i of LANES
// sub-blocks). Each lane runs the reference's sequential sums unchanged and its
// `if (err < best)` becomes a compare and blend. The searches are chains of dependent adds and
// divisions (a candidate needs the previous one's winner), so G vectors of sub-blocks go through
// every step together: their chains are independent and overlap.
//   - The including file compiles without fused multiply-adds (no fma target for AVX2, and the
//     contraction pragmas): the reference fuses nothing.
//   - gt_kq_level's `t = v > lo ? v : lo; t < hi ? t : hi` is max(v, lo) then min(t, hi) with
//     the x86 operand rule (the second operand when the comparison is false or unordered), then
//     a round to nearest even, which equals the reference's add and subtract of 1.5 * 2^23 on
//     those small values.
//   - `x < min ? x : min` is min(x, min), `min > 0 ? 0 : min` is min(0, min) (so -0 stays -0).
//   - Division and square root are IEEE-exact in both.
// The sub-block scale quantization and the bit packing are the shared scalar code of quantize_k.c.
//
// Required: VEC, MASK, LANES, KINLINE, and
//   V_SET1(f) V_ZERO() V_LOADU(p) V_STOREU(p, v) V_STORE_INT(p, v) (int32, truncating)
//   V_ADD V_SUB V_MUL V_DIV V_MIN(a, b) (a < b ? a : b) V_MAX(a, b) (a > b ? a : b) V_SQRT V_ROUND V_ABS V_NEG
//   V_LT V_GT V_EQ (ordered) V_NE (unordered: true for NaN) -> MASK; M_AND(m, n)
//   V_BLEND(a, b, m) (b where m, else a); V_ZERO_IF(v, m) (+0 where m); V_KEEP_IF(v, m) (+0 where not m)
//   KSUFFIX(name): the name with the path's suffix.

#define Q4K_SUBS_PER_VEC LANES           // Q4_K sub-blocks of 32 per vector
#define Q6K_SUBS_PER_VEC LANES           // Q6_K sub-blocks of 16 per vector

KINLINE VEC KSUFFIX(level)(VEC v, VEC lo, VEC hi) { return V_ROUND(V_MIN(V_MAX(v, lo), hi)); }

// Element i of sub-block j (`len` values each, back to back at x) into X[i] lane j.
KINLINE void KSUFFIX(load_soa)(const float *x, int len, VEC *X) {
    float t[GT_Q4K_SUB][LANES];
    for (int j = 0; j < LANES; j++)
        for (int i = 0; i < len; i++) t[i][j] = x[len * j + i];
    for (int i = 0; i < len; i++) X[i] = V_LOADU(t[i]);
}

// Levels V[i] lane j (small non-negative integers as floats) into L[len * j + i].
KINLINE void KSUFFIX(store_levels)(const VEC *V, int len, uint8_t *L) {
    int32_t t[GT_Q4K_SUB][LANES];
    for (int i = 0; i < len; i++) V_STORE_INT(t[i], V[i]);
    for (int j = 0; j < LANES; j++)
        for (int i = 0; i < len; i++) L[len * j + i] = (uint8_t)t[i][j];
}

// ---- Q4_K ----

// G * LANES / 8 super-blocks at x into as many blocks at out: quantize_k.c's q4k_search for
// their sub-blocks, gt_q4k_scales, the re-quantization, gt_q4k_pack_levels.
KINLINE void KSUFFIX(q4k_blocks)(const float *x, uint8_t *out, const int G) {
    const VEC zero = V_ZERO(), fifteen = V_SET1(15.0f);
    VEC X[Q4K_G][GT_Q4K_SUB], W[Q4K_G][GT_Q4K_SUB], la[Q4K_G][GT_Q4K_SUB];
    VEC min[Q4K_G], max[Q4K_G], min0[Q4K_G], sum_w[Q4K_G], sum_x[Q4K_G];
    VEC scale[Q4K_G], best[Q4K_G], l_iscale[Q4K_G], l_min[Q4K_G];
    MASK flat[Q4K_G];
    for (int g = 0; g < G; g++) {
        KSUFFIX(load_soa)(x + GT_Q4K_SUB * LANES * g, GT_Q4K_SUB, X[g]);
        VEC sum_x2 = zero;
        for (int i = 0; i < GT_Q4K_SUB; i++) sum_x2 = V_ADD(sum_x2, V_MUL(X[g][i], X[g][i]));
        VEC av_x = V_SQRT(V_DIV(sum_x2, V_SET1(32.0f)));
        for (int i = 0; i < GT_Q4K_SUB; i++) W[g][i] = V_ADD(av_x, V_ABS(X[g][i]));
        min[g] = max[g] = X[g][0];
        sum_w[g] = W[g][0];
        sum_x[g] = V_MUL(W[g][0], X[g][0]);
        for (int i = 1; i < GT_Q4K_SUB; i++) {
            min[g] = V_MIN(X[g][i], min[g]);
            max[g] = V_MAX(X[g][i], max[g]);
            sum_w[g] = V_ADD(sum_w[g], W[g][i]);
            sum_x[g] = V_ADD(sum_x[g], V_MUL(W[g][i], X[g][i]));
        }
        min[g] = min0[g] = V_MIN(zero, min[g]);
        flat[g] = V_EQ(max[g], min[g]);  // the reference returns early
        VEC iscale = V_DIV(fifteen, V_SUB(max[g], min[g]));
        scale[g] = V_DIV(V_SET1(1.0f), iscale);
        best[g] = zero;
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            VEC l = KSUFFIX(level)(V_MUL(iscale, V_SUB(X[g][i], min[g])), zero, fifteen);
            VEC diff = V_SUB(V_ADD(V_MUL(scale[g], l), min[g]), X[g][i]);
            best[g] = V_ADD(best[g], V_MUL(W[g][i], V_MUL(diff, diff)));
        }
        // The winner's levels are recomputed at the end from the inverse scale and offset that made them.
        l_iscale[g] = iscale;
        l_min[g] = min[g];
    }
    for (int k = 0; k < GT_Q4K_STEPS; k++) {
        const VEC step = V_SET1(gt_q4k_step(k));
        VEC iscale[Q4K_G], sum_l[Q4K_G], sum_l2[Q4K_G], sum_xl[Q4K_G];
        for (int g = 0; g < G; g++) {
            iscale[g] = V_DIV(step, V_SUB(max[g], min[g]));
            sum_l[g] = sum_l2[g] = sum_xl[g] = zero;
        }
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            for (int g = 0; g < G; g++) {
                VEC l = KSUFFIX(level)(V_MUL(iscale[g], V_SUB(X[g][i], min[g])), zero, fifteen);
                la[g][i] = l;
                VEC wl = V_MUL(W[g][i], l);
                sum_l[g] = V_ADD(sum_l[g], wl);
                sum_l2[g] = V_ADD(sum_l2[g], V_MUL(wl, l));
                sum_xl[g] = V_ADD(sum_xl[g], V_MUL(wl, X[g][i]));
            }
        }
        VEC this_scale[Q4K_G], this_min[Q4K_G], err[Q4K_G];
        MASK fit[Q4K_G];
        for (int g = 0; g < G; g++) {
            VEC D = V_SUB(V_MUL(sum_w[g], sum_l2[g]), V_MUL(sum_l[g], sum_l[g]));
            fit[g] = V_GT(D, zero);
            this_scale[g] = V_DIV(V_SUB(V_MUL(sum_w[g], sum_xl[g]), V_MUL(sum_x[g], sum_l[g])), D);
            this_min[g] = V_DIV(V_SUB(V_MUL(sum_l2[g], sum_x[g]), V_MUL(sum_l[g], sum_xl[g])), D);
            MASK positive = V_GT(this_min[g], zero);
            this_min[g] = V_BLEND(this_min[g], zero, positive);
            this_scale[g] = V_BLEND(this_scale[g], V_DIV(sum_xl[g], sum_l2[g]), positive);
            err[g] = zero;
        }
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            for (int g = 0; g < G; g++) {
                VEC diff = V_SUB(V_ADD(V_MUL(this_scale[g], la[g][i]), this_min[g]), X[g][i]);
                err[g] = V_ADD(err[g], V_MUL(W[g][i], V_MUL(diff, diff)));
            }
        }
        for (int g = 0; g < G; g++) {
            MASK win = M_AND(fit[g], V_LT(err[g], best[g]));
            best[g] = V_BLEND(best[g], err[g], win);
            scale[g] = V_BLEND(scale[g], this_scale[g], win);
            l_iscale[g] = V_BLEND(l_iscale[g], iscale[g], win);
            l_min[g] = V_BLEND(l_min[g], min[g], win);  // the offset these levels were made with
            min[g] = V_BLEND(min[g], this_min[g], win);
        }
    }
    for (int g = 0; g < G; g++) {
        float scales[LANES], mins[LANES], d[LANES], dm[LANES];
        V_STOREU(scales, V_ZERO_IF(scale[g], flat[g]));
        V_STOREU(mins, V_NEG(V_BLEND(min[g], min0[g], flat[g])));  // -min
        uint8_t *o = out + GT_Q4K_BLOCK_BYTES * (LANES / 8) * g;
        for (int s = 0; s < LANES / 8; s++) gt_q4k_scales(scales + 8 * s, mins + 8 * s, o + GT_Q4K_BLOCK_BYTES * s, d + 8 * s, dm + 8 * s);
        // Re-quantized levels; sub-blocks with d == 0 keep the search's (0 for flat sub-blocks).
        VEC dv = V_LOADU(d), dmv = V_LOADU(dm);
        MASK keep = V_EQ(dv, zero);
        VEC V[GT_Q4K_SUB];
        for (int i = 0; i < GT_Q4K_SUB; i++) {
            VEC searched = V_ZERO_IF(KSUFFIX(level)(V_MUL(l_iscale[g], V_SUB(X[g][i], l_min[g])), zero, fifteen), flat[g]);
            VEC requant = KSUFFIX(level)(V_DIV(V_ADD(X[g][i], dmv), dv), zero, fifteen);
            V[i] = V_BLEND(requant, searched, keep);
        }
        uint8_t L[GT_Q4K_SUB * LANES];
        KSUFFIX(store_levels)(V, GT_Q4K_SUB, L);
        for (int s = 0; s < LANES / 8; s++) gt_q4k_pack_levels(L + GT_KBLOCK * s, o + GT_Q4K_BLOCK_BYTES * s);
    }
}

// ---- Q6_K ----

// G * LANES / 16 super-blocks at x into as many blocks at out: quantize_k.c's q6k_search for
// each sub-block of 16, gt_q6k_scales, the re-quantization, gt_q6k_pack_levels.
KINLINE void KSUFFIX(q6k_blocks)(const float *x, uint8_t *out, const int G) {
    const VEC zero = V_ZERO(), lo = V_SET1(-32.0f), hi = V_SET1(31.0f);
    VEC X[Q6K_G][GT_Q6K_SUB], W[Q6K_G][GT_Q6K_SUB], WX[Q6K_G][GT_Q6K_SUB];
    VEC max[Q6K_G], best_iscale[Q6K_G], scale[Q6K_G], best[Q6K_G];
    MASK empty[Q6K_G];
    for (int g = 0; g < G; g++) {
        KSUFFIX(load_soa)(x + GT_Q6K_SUB * LANES * g, GT_Q6K_SUB, X[g]);
        VEC amax = zero;
        max[g] = zero;
        for (int i = 0; i < GT_Q6K_SUB; i++) {
            VEC ax = V_ABS(X[g][i]);
            MASK gt = V_GT(ax, amax);
            amax = V_BLEND(amax, ax, gt);
            max[g] = V_BLEND(max[g], X[g][i], gt);
            W[g][i] = V_MUL(X[g][i], X[g][i]);
            WX[g][i] = V_MUL(W[g][i], X[g][i]);
        }
        empty[g] = V_LT(amax, V_SET1(1e-15f));
        VEC iscale = V_DIV(lo, max[g]);
        best_iscale[g] = iscale;
        VEC sumlx = zero, suml2 = zero;
        for (int i = 0; i < GT_Q6K_SUB; i++) {
            VEC l = KSUFFIX(level)(V_MUL(iscale, X[g][i]), lo, hi);
            sumlx = V_ADD(sumlx, V_MUL(WX[g][i], l));
            suml2 = V_ADD(suml2, V_MUL(V_MUL(W[g][i], l), l));
        }
        scale[g] = V_KEEP_IF(V_DIV(sumlx, suml2), V_NE(suml2, zero));
        best[g] = V_MUL(scale[g], sumlx);
    }
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const VEC step = V_SET1(gt_q6k_step(is));
        VEC iscale[Q6K_G], sumlx[Q6K_G], suml2[Q6K_G];
        for (int g = 0; g < G; g++) {
            iscale[g] = V_DIV(step, max[g]);
            sumlx[g] = suml2[g] = zero;
        }
        for (int i = 0; i < GT_Q6K_SUB; i++) {
            for (int g = 0; g < G; g++) {
                VEC l = KSUFFIX(level)(V_MUL(iscale[g], X[g][i]), lo, hi);
                sumlx[g] = V_ADD(sumlx[g], V_MUL(WX[g][i], l));
                suml2[g] = V_ADD(suml2[g], V_MUL(V_MUL(W[g][i], l), l));
            }
        }
        for (int g = 0; g < G; g++) {
            MASK win = M_AND(V_GT(suml2[g], zero), V_GT(V_MUL(sumlx[g], sumlx[g]), V_MUL(best[g], suml2[g])));
            VEC s = V_DIV(sumlx[g], suml2[g]);
            best_iscale[g] = V_BLEND(best_iscale[g], iscale[g], win);
            scale[g] = V_BLEND(scale[g], s, win);
            best[g] = V_BLEND(best[g], V_MUL(s, sumlx[g]), win);
        }
    }
    float scales[Q6K_G * LANES], d[Q6K_G * LANES];
    int nonzero[Q6K_G * LANES / 16];
    for (int g = 0; g < G; g++) V_STOREU(scales + LANES * g, V_ZERO_IF(scale[g], empty[g]));
    for (int s = 0; s < G * LANES / 16; s++) {
        nonzero[s] = gt_q6k_scales(scales + 16 * s, out + GT_Q6K_BLOCK_BYTES * s, d + 16 * s);
        if (!nonzero[s]) memset(d + 16 * s, 0, 16 * sizeof(float));
    }
    uint8_t L[Q6K_G * LANES * GT_Q6K_SUB];
    const VEC bias = V_SET1(32.0f);
    for (int g = 0; g < G; g++) {
        // Levels + 32; sub-blocks with d == 0 keep the search's (0 for empty sub-blocks).
        VEC dv = V_LOADU(d + LANES * g);
        MASK keep = V_EQ(dv, zero);
        VEC V[GT_Q6K_SUB];
        for (int i = 0; i < GT_Q6K_SUB; i++) {
            VEC searched = V_ADD(V_BLEND(KSUFFIX(level)(V_MUL(best_iscale[g], X[g][i]), lo, hi), lo, empty[g]), bias);
            VEC requant = V_ADD(KSUFFIX(level)(V_DIV(X[g][i], dv), lo, hi), bias);
            V[i] = V_BLEND(requant, searched, keep);
        }
        KSUFFIX(store_levels)(V, GT_Q6K_SUB, L + GT_Q6K_SUB * LANES * g);
    }
    for (int s = 0; s < G * LANES / 16; s++)
        if (nonzero[s]) gt_q6k_pack_levels(L + GT_KBLOCK * s, out + GT_Q6K_BLOCK_BYTES * s);
}

// Whole rows: groups of G vectors, then the last super-blocks padded with zeros (which do not
// affect the other lanes) through one more group.
#define KQ_ROW(name, blocks, G, block_bytes, per_group)                                             \
    KFN void name(const float *x, size_t n, uint8_t *out) {                                        \
        size_t nb = n / GT_KBLOCK, b = 0;                                                          \
        for (; b + (per_group) <= nb; b += (per_group))                                            \
            blocks(x + b * GT_KBLOCK, out + b * (block_bytes), G);                                  \
        if (b < nb) {                                                                              \
            float tail[(per_group) * GT_KBLOCK];                                                   \
            uint8_t tout[(per_group) * (block_bytes)];                                             \
            memset(tail, 0, sizeof(tail));                                                         \
            memcpy(tail, x + b * GT_KBLOCK, (nb - b) * GT_KBLOCK * sizeof(float));                 \
            blocks(tail, tout, G);                                                                 \
            memcpy(out + b * (block_bytes), tout, (nb - b) * (block_bytes));                       \
        }                                                                                          \
    }
