/* The passes around an int8 layer's integer matmul, one read of the input and one of the
 * output instead of ~6 and ~4 torch ops, and the elementwise passes between an int8 Llama
 * block's matmuls (RMSNorm, SiLU gate): one pass each instead of ~5 and 2 (models/int8_passes.py
 * says why and how this is built). Rows are independent: they are shared among the threads
 * torch itself runs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* For each row of x (n, k): its abs-max over the columns not in cols (clamped to 1e-8),
 * then either int8 q = round(x * levels / amax) + offset (q != NULL) or fp32 unit = x / amax
 * (unit != NULL), the cols written as 0 (+ offset) in both; exact (n, ncol) gathers x's cols.
 * The scale factors are computed as torch computes levels / amax and 1 / amax (a reciprocal,
 * then a multiply), so q is bit for bit the torch passes' q. Returns 0, or -1 (no memory). */
int lmc_quantize(const float *x, int64_t n, int64_t k, const int64_t *cols, int64_t ncol,
                 int8_t *q, float *unit, float *amax, float *exact, float levels, int offset, int threads) {
    float *keep = malloc((size_t)k * sizeof(float));
    if (!keep) return -1;
    for (int64_t j = 0; j < k; j++) keep[j] = 1.0f;
    for (int64_t c = 0; c < ncol; c++) keep[cols[c]] = 0.0f;
    #pragma omp parallel for schedule(static) num_threads(threads) if (n * k > 16384)
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * k;
        float m = 0.0f;
        #pragma omp simd reduction(max:m)
        for (int64_t j = 0; j < k; j++) {
            float a = fabsf(r[j]) * keep[j];
            m = a > m ? a : m;
        }
        m = m > 1e-8f ? m : 1e-8f;
        amax[i] = m;
        if (q) {
            const float inv = (1.0f / m) * levels;
            int8_t *qr = q + i * k;
            #pragma omp simd
            for (int64_t j = 0; j < k; j++) qr[j] = (int8_t)((int32_t)nearbyintf(r[j] * inv * keep[j]) + offset);
        } else {
            const float inv = 1.0f / m;
            float *ur = unit + i * k;
            #pragma omp simd
            for (int64_t j = 0; j < k; j++) ur[j] = r[j] * inv * keep[j];
        }
        for (int64_t c = 0; c < ncol; c++) exact[i * ncol + c] = r[cols[c]];
    }
    free(keep);
    return 0;
}

/* y (n, m) = (acc * rs[i] + exact @ wc) * s[j] + b[j], written over acc in place: acc is
 * the matmul's int32 output (is_int) or fp32 output; rs (n) the row scales; s (m), b (m),
 * exact (n, ncol) and wc (ncol, m: already divided by s) may be NULL / 0. */
void lmc_finish(void *acc, int is_int, int64_t n, int64_t m, const float *rs, const float *s, const float *b,
                const float *exact, int64_t ncol, const float *wc, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads) if (n * m > 16384)
    for (int64_t i = 0; i < n; i++) {
        float *y = (float *)acc + i * m;
        const float ri = rs[i];
        if (is_int) {
            const int32_t *a = (const int32_t *)acc + i * m;
            #pragma omp simd
            for (int64_t j = 0; j < m; j++) y[j] = (float)a[j] * ri;
        } else {
            #pragma omp simd
            for (int64_t j = 0; j < m; j++) y[j] *= ri;
        }
        for (int64_t c = 0; c < ncol; c++) {
            const float e = exact[i * ncol + c], *w = wc + c * m;
            #pragma omp simd
            for (int64_t j = 0; j < m; j++) y[j] += e * w[j];
        }
        if (s && b) {
            #pragma omp simd
            for (int64_t j = 0; j < m; j++) y[j] = y[j] * s[j] + b[j];
        } else if (s) {
            #pragma omp simd
            for (int64_t j = 0; j < m; j++) y[j] *= s[j];
        } else if (b) {
            #pragma omp simd
            for (int64_t j = 0; j < m; j++) y[j] += b[j];
        }
    }
}

/* out (n, k) = w * (x * 1 / sqrt(mean(x^2) + eps)) per row: Llama's RMSNorm in fp32. */
void lmc_rmsnorm(const float *x, int64_t n, int64_t k, const float *w, float eps, float *out, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads) if (n * k > 16384)
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * k;
        float *o = out + i * k;
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int64_t j = 0; j < k; j++) s += r[j] * r[j];
        const float inv = 1.0f / sqrtf(s / (float)k + eps);
        #pragma omp simd
        for (int64_t j = 0; j < k; j++) o[j] = w[j] * (r[j] * inv);
    }
}

/* exp(x), branch-free so that the compiler vectorizes it (libm's expf does not without
 * -ffast-math): x = n ln2 + r, |r| <= ln2 / 2, e^r by Cephes' expf polynomial (~1 ulp),
 * times 2^n built in the exponent bits. x is clamped to where 2^n is a normal float. */
static inline float lmc_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = nearbyintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* g (n) = silu(g) * u = g / (1 + e^-g) * u in place: the gated MLP's activation. */
void lmc_silu_mul(float *g, const float *u, int64_t n, int threads) {
    #pragma omp parallel for simd schedule(static) num_threads(threads) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        const float v = g[i];
        g[i] = v / (1.0f + lmc_expf(-v)) * u[i];
    }
}
