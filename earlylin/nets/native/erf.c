/* φ = erf and φ′ = (2/√π)·e^{−z²} of float32 values in one pass (docs/theory.md §1.2), for the fast CPU step,
   alone (earlylin_erf_dphi) or fused with the readout of the two-layer net (earlylin_erf_readout).

   Why: the step evaluates both at n·m points per seed and step; torch's CPU erf and exp go through MKL's vector
   maths library, which takes a slow generic path on some CPUs (BENCHMARKS.md). Here every operation is a float32
   multiply, add or fused multiply-add that the compiler vectorises, with no branches.

   How (constants from earlylin/nets/native/erf_fit.py):
     φ′(x) = 2^k · E(r):   x² = h + l exactly (h = fl(x²), l = fma(x, x, −h)), k = round(−h·log₂e),
                           r = −h − k·ln2 − l (ln2 in two parts), E(r) ≈ (2/√π)·e^r on |r| ≤ ln(2)/2;
                           h ≥ 87 gives φ′ = 0 (the exact value is below 2e-38, float32's normal range).
     |x| < 1:              erf(x) = x + x·S(x²)           (x·S is at most 0.13·|x|: its rounding barely shows)
     |x| ≥ 1:              erf(x) = sign(x)·(1 − φ′(x)·R(min(|x|, 4))),  R(x) ≈ (√π/2)·erfcx(x)
   No division; both branches are computed and one is selected. Measured over 2·10⁷ points
   (tests/nets/test_native.py): erf within 1 ulp of the float64 value, φ′ within 2 ulp where it is a normal float32.

   Exactness: built with -ffp-contract=off, so every rounding is the one written here, and every sum has a fixed
   order (no reassociation); the result depends only on the input and the instruction set the compiler chose, so
   reruns on one machine agree bit for bit. */

#include <stdint.h>
#include <string.h>

/* S: degree 6, largest relative error 1.21e-09 before rounding to float32 */
static const float S[7] = {0x1.06eba8p-3f, -0x1.81273ep-2f, 0x1.ce2cf8p-4f, -0x1.b7f90cp-6f, 0x1.5405acp-8f,
                           -0x1.a3f6dp-11f, 0x1.4969a4p-14f};
/* R: degree 8, largest error put into erf 2.41e-09 before rounding to float32 */
static const float R[9] = {0x1.7e9d42p-3f, -0x1.0ddc6ep-4f, 0x1.69c244p-6f, -0x1.d851e8p-8f, 0x1.0b750ap-9f,
                           -0x1.332c5cp-11f, 0x1.f8eb8cp-12f, 0x1.a251b4p-13f, 0x1.8d2892p-14f};
/* E: degree 7, largest relative error 4.36e-11 before rounding to float32 */
static const float E[8] = {0x1.20dd76p+0f, 0x1.20dd76p+0f, 0x1.20dd76p-1f, 0x1.812744p-3f, 0x1.81263p-5f,
                           0x1.3421aap-7f, 0x1.9c9e92p-10f, 0x1.d3ecd4p-13f};

#define SPLIT 1.0f
#define R_CENTRE 2.5f
#define R_TOP 4.0f
#define NORMAL_HI 87.0f           /* x² beyond: φ′ < 2e-38, below float32's normal range, is flushed to 0 */
#define LOG2E 0x1.715476p+0f
#define LN2_HI 0x1.62e4p-1f       /* ln 2 to 16 bits: k·LN2_HI is exact for |k| < 2^8 */
#define LN2_LO 0x1.7f7d1cp-20f    /* ln 2 − LN2_HI */
#define ROUND_SHIFT 0x1.8p+23f    /* adding it rounds a float below 2^22 in magnitude to an integer */

static inline float horner(const float *c, int degree, float x) {
    float p = c[degree];
    for (int j = degree - 1; j >= 0; j--) p = __builtin_fmaf(p, x, c[j]);
    return p;
}

static inline float dphi_of(float x, float h) {
    float l = __builtin_fmaf(x, x, -h);
    float hc = h > NORMAL_HI ? NORMAL_HI : h; /* comparisons written so that a NaN goes through */
    float kf = __builtin_fmaf(-hc, LOG2E, ROUND_SHIFT);
    int32_t ki;
    memcpy(&ki, &kf, 4);
    ki -= 0x4B400000; /* the integer k (in [−126, 0]) from the bits of ROUND_SHIFT + k */
    kf -= ROUND_SHIFT;
    float r = __builtin_fmaf(kf, -LN2_HI, -hc);
    r = __builtin_fmaf(kf, -LN2_LO, r);
    r = r - l;
    int32_t bits = (ki + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    float g = horner(E, 7, r) * scale;
    return h >= NORMAL_HI ? 0.0f : g;
}

static inline float erf_of(float x, float h, float g) {
    float ax = __builtin_fabsf(x);
    float small = __builtin_fmaf(x, horner(S, 6, h), x);
    float t = (ax > R_TOP ? R_TOP : ax) - R_CENTRE;
    float large = __builtin_copysignf(__builtin_fmaf(-g, horner(R, 8, t), 1.0f), x);
    return ax < SPLIT ? small : large;
}

/* phi[i] = erf(z[i]) and, unless dphi is NULL, dphi[i] = φ′(z[i]), for i < n; dphi may be z itself. */
void earlylin_erf_dphi(int64_t n, const float *z, float *phi, float *dphi) {
    if (dphi == NULL) {
#pragma GCC ivdep
        for (int64_t i = 0; i < n; i++) {
            float x = z[i], h = x * x;
            phi[i] = erf_of(x, h, dphi_of(x, h));
        }
        return;
    }
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) {
        float x = z[i], h = x * x;
        float g = dphi_of(x, h);
        phi[i] = erf_of(x, h, g);
        dphi[i] = g;
    }
}

#define LANES 16 /* the lanes of a row's dot product, added pairwise at the end: a fixed order */

/* φ and φ′ of `lanes` consecutive values, their φ·v added to the lanes' partial sums acc. */
static inline void erf_lanes(int lanes, float *zi, int dphi, const float *v, float *h, float *acc) {
#pragma GCC ivdep
    for (int l = 0; l < lanes; l++) {
        float x = zi[l], x2 = x * x;
        float g = dphi_of(x, x2);
        float p = erf_of(x, x2, g);
        h[l] = p;
        acc[l] = __builtin_fmaf(p, v[l], acc[l]);
        if (dphi) zi[l] = g;
    }
}

/* One block of rows of the two-layer net's step (docs/theory.md §1), row by row, so that no row of φ(Z) leaves
   the cache. With z the block's pre-activations Z_b (rows × m, row-major), for each row i:
       h = φ(z_i) (into the scratch row h, m floats),  f_i = (h·v)·scale,  r_i = f_i − y_i;
   if gv is not NULL, gv = Σ_i r_i·h (the block's Hᵀr, summed in row order);
   if rx is not NULL, z_i ← φ′(z_i) in place and rx_i = r_i·x_i (x and rx: rows × d), the two factors of the
   block's ∇_W product (r ⊙ X_b)ᵀ φ′(Z_b).
   h·v is summed in LANES partial sums (lane l takes j ≡ l mod LANES), then pairwise. */
void earlylin_erf_readout(int64_t rows, int64_t m, int64_t d, float *z, const float *v, const float *y, float scale,
                          float *f, float *r, float *gv, const float *x, float *rx, float *h) {
    int dphi = rx != NULL;
    if (gv != NULL)
        for (int64_t k = 0; k < m; k++) gv[k] = 0.0f;
    for (int64_t i = 0; i < rows; i++) {
        float *zi = z + i * m;
        float acc[LANES] = {0};
        int64_t j = 0;
        for (; j + LANES <= m; j += LANES) erf_lanes(LANES, zi + j, dphi, v + j, h + j, acc);
        if (j < m) erf_lanes((int)(m - j), zi + j, dphi, v + j, h + j, acc);
        for (int width = LANES / 2; width > 0; width /= 2)
            for (int l = 0; l < width; l++) acc[l] += acc[l + width];
        float fi = acc[0] * scale, ri = fi - y[i];
        f[i] = fi;
        r[i] = ri;
        if (gv != NULL) {
#pragma GCC ivdep
            for (int64_t k = 0; k < m; k++) gv[k] = __builtin_fmaf(ri, h[k], gv[k]);
        }
        if (dphi) {
#pragma GCC ivdep
            for (int64_t c = 0; c < d; c++) rx[i * d + c] = ri * x[i * d + c];
        }
    }
}
