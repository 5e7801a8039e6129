/* An int8 matmul for CPUs with AVX2 but without VNNI, where torch._int_mm falls to a slow
 * path and FBGEMM's dynamic linear reaches ~1.4-2x fp32 (models/int8_kernels.py says why this
 * exists). AVX2's only 8-bit multiply, vpmaddubsw, takes unsigned bytes times signed bytes
 * into 16-bit sums of pairs; widening those to 32 bits (vpmaddwd) after every multiply caps
 * int8 at 2x fp32's multiply-adds per cycle. With 7-bit operands (activations as
 * q + 64 in [1, 127], q in [-63, 63]; weights in [-63, 63]) two pair sums add in 16 bits
 * without overflow (2 x 2 x 127 x 63 = 32004 < 32767), so one widening serves 8 products:
 * 2.1-2.6x fp32 measured (bench/results/int8_gemm.md, AVX2 emulated). Results are exact
 * integers: sum_k q[i,k] w[j,k].
 *
 * Weights are packed once, in panels of 16 output columns: for every group of 4 inputs, 16
 * columns x 4 bytes (columns 0-7, then 8-15), zero-padded to whole groups and panels. A
 * tile of up to 4 rows x 16 columns keeps its sums in 8 registers; the threads share
 * (chunk of rows, panel) pairs, a chunk's rows staying in L2 while the panels stream by. */
#include <stdint.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define PANEL 16
#define OFFSET 64   /* what activations carry: q + OFFSET is unsigned */
#define ROWS 4      /* rows per tile */
#define CHUNK 32    /* rows per thread task: measured best of 32-512 */

/* 1 where this library was compiled with AVX2 (the kernel exists), else 0. */
int lmc_gemm_available(void) {
#ifdef __AVX2__
    return 1;
#else
    return 0;
#endif
}

/* Bytes lmc_gemm_pack writes for n outputs of k inputs. */
int64_t lmc_gemm_packed_size(int64_t n, int64_t k) {
    return (n + PANEL - 1) / PANEL * ((k + 3) / 4) * 4 * PANEL;
}

/* Packs w (n, k), entries in [-63, 63], as the kernel reads it; comp (n rounded up to
 * whole panels) = OFFSET x each row's sum: what the activations' offset adds. */
void lmc_gemm_pack(const int8_t *w, int64_t n, int64_t k, int8_t *packed, int32_t *comp) {
    const int64_t groups = (k + 3) / 4, panels = (n + PANEL - 1) / PANEL;
    memset(packed, 0, (size_t)lmc_gemm_packed_size(n, k));
    memset(comp, 0, (size_t)(panels * PANEL) * sizeof(int32_t));
    for (int64_t j = 0; j < n; j++) {
        int8_t *panel = packed + (j / PANEL) * groups * 4 * PANEL + (j % PANEL) * 4;
        int32_t s = 0;
        for (int64_t i = 0; i < k; i++) {
            s += w[j * k + i];
            panel[(i / 4) * 4 * PANEL + i % 4] = w[j * k + i];
        }
        comp[j] = OFFSET * s;
    }
}

#ifdef __AVX2__
/* Four bytes of a row as a broadcast; past the row's end (k % 4 inputs left) zero bytes,
 * which the packed weights meet with zeros. */
static inline __m256i bytes4(const int8_t *a, int64_t left) {
    int32_t v = 0;
    memcpy(&v, a, (size_t)(left < 4 ? left : 4));
    return _mm256_set1_epi32(v);
}

/* What turns a tile's integer sums into the layer's output, in the tile's own registers:
 * y = ((sum - comp) * rs[i] + exact[i] . wc[:, j]) * s[j] + b[j]. Fields offset to the
 * tile's first row (rs, exact) and column (s, b, wc); s, b, exact may be NULL. */
struct finish {
    const float *rs, *s, *b, *exact, *wc;
    int64_t ncol, n;  /* exact columns; outputs (wc's row length) */
};

static inline void finish_row(const struct finish *f, int r, __m256i y0, __m256i y1, float *out, int nc) {
    float y[PANEL];
    const __m256 ri = _mm256_set1_ps(f->rs[r]);
    __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(y0), ri), v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(y1), ri);
    if (nc == PANEL) {
        for (int64_t c = 0; c < f->ncol; c++) {
            const __m256 e = _mm256_set1_ps(f->exact[r * f->ncol + c]);
            v0 = _mm256_add_ps(v0, _mm256_mul_ps(e, _mm256_loadu_ps(f->wc + c * f->n)));
            v1 = _mm256_add_ps(v1, _mm256_mul_ps(e, _mm256_loadu_ps(f->wc + c * f->n + 8)));
        }
        if (f->s) {
            v0 = _mm256_mul_ps(v0, _mm256_loadu_ps(f->s));
            v1 = _mm256_mul_ps(v1, _mm256_loadu_ps(f->s + 8));
        }
        if (f->b) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(f->b));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(f->b + 8));
        }
        _mm256_storeu_ps(out, v0);
        _mm256_storeu_ps(out + 8, v1);
        return;
    }
    _mm256_storeu_ps(y, v0);  /* a partial panel: past column nc, wc, s and b end */
    _mm256_storeu_ps(y + 8, v1);
    for (int j = 0; j < nc; j++) {
        float v = y[j];
        for (int64_t c = 0; c < f->ncol; c++) v += f->exact[r * f->ncol + c] * f->wc[c * f->n + j];
        if (f->s) v *= f->s[j];
        if (f->b) v += f->b[j];
        out[j] = v;
    }
}

/* c[r, 0:nc] = a[r] . panel - comp for the tile's mr (1-4) rows, as int32, or finished
 * (f != NULL) as fp32; inlined per mr so that the sums live in registers. */
static inline __attribute__((always_inline)) void tile(const int8_t *a, int64_t k, const int mr,
        const int8_t *b, void *c, int64_t ldc, int nc, const int32_t *comp, const struct finish *f) {
    __m256i acc[ROWS][2];
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t groups = (k + 3) / 4;
    int64_t g = 0;
    for (; g + 2 <= k / 4; g += 2) {  /* two whole groups: 8 products per 16-bit lane, one widening */
        const __m256i *bg = (const __m256i *)(b + g * 4 * PANEL);
        const __m256i b0 = _mm256_loadu_si256(bg), b1 = _mm256_loadu_si256(bg + 1);
        const __m256i b2 = _mm256_loadu_si256(bg + 2), b3 = _mm256_loadu_si256(bg + 3);
        for (int r = 0; r < mr; r++) {
            int32_t v, u;
            memcpy(&v, a + r * k + g * 4, 4);
            memcpy(&u, a + r * k + g * 4 + 4, 4);
            const __m256i av = _mm256_set1_epi32(v), au = _mm256_set1_epi32(u);
            const __m256i s0 = _mm256_add_epi16(_mm256_maddubs_epi16(av, b0), _mm256_maddubs_epi16(au, b2));
            const __m256i s1 = _mm256_add_epi16(_mm256_maddubs_epi16(av, b1), _mm256_maddubs_epi16(au, b3));
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(s0, ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(s1, ones));
        }
    }
    for (; g < groups; g++) {  /* an odd group and a partial one */
        const __m256i *bg = (const __m256i *)(b + g * 4 * PANEL);
        const __m256i b0 = _mm256_loadu_si256(bg), b1 = _mm256_loadu_si256(bg + 1);
        for (int r = 0; r < mr; r++) {
            const __m256i av = bytes4(a + r * k + g * 4, k - g * 4);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
        }
    }
    const __m256i c0 = _mm256_loadu_si256((const __m256i *)comp);
    const __m256i c1 = _mm256_loadu_si256((const __m256i *)(comp + 8));
    for (int r = 0; r < mr; r++) {
        const __m256i y0 = _mm256_sub_epi32(acc[r][0], c0), y1 = _mm256_sub_epi32(acc[r][1], c1);
        if (f == NULL && nc == PANEL) {
            int32_t *cr = (int32_t *)c + r * ldc;
            _mm256_storeu_si256((__m256i *)cr, y0);
            _mm256_storeu_si256((__m256i *)(cr + 8), y1);
        } else if (f == NULL) {
            int32_t t[PANEL];
            _mm256_storeu_si256((__m256i *)t, y0);
            _mm256_storeu_si256((__m256i *)(t + 8), y1);
            memcpy((int32_t *)c + r * ldc, t, (size_t)nc * sizeof(int32_t));
        } else {
            finish_row(f, r, y0, y1, (float *)c + r * ldc, nc);
        }
    }
}
#endif

/* c (m, n) = (a - OFFSET) @ w^T: a (m, k) holds q + OFFSET, w as lmc_gemm_pack packed it
 * (with its comp). As int32 (rs == NULL), or finished as fp32 (struct finish says how:
 * rs (m) row scales, s (n) and b (n) or NULL, exact (m, ncol) and wc (ncol, n)): the output
 * is written once, from registers. Returns 0, or -1 where this library has no AVX2 kernel. */
int lmc_gemm(const int8_t *a, int64_t m, int64_t k, const int8_t *packed, const int32_t *comp, int64_t n,
             void *c, const float *rs, const float *s, const float *b, const float *exact, int64_t ncol,
             const float *wc, int threads) {
#ifdef __AVX2__
    const int64_t groups = (k + 3) / 4, panels = (n + PANEL - 1) / PANEL, chunks = (m + CHUNK - 1) / CHUNK;
    const size_t size = rs ? sizeof(float) : sizeof(int32_t);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (m * n * k > 1000000)
    for (int64_t ch = 0; ch < chunks; ch++) {
        for (int64_t p = 0; p < panels; p++) {
            const int8_t *bp = packed + p * groups * 4 * PANEL;
            const int32_t *cp = comp + p * PANEL;
            const int64_t j = p * PANEL;
            const int nc = (int)(n - j < PANEL ? n - j : PANEL);
            const int64_t end = (ch + 1) * CHUNK < m ? (ch + 1) * CHUNK : m;
            for (int64_t i = ch * CHUNK; i < end; i += ROWS) {
                struct finish f = {rs ? rs + i : NULL, s ? s + j : NULL, b ? b + j : NULL,
                                   exact ? exact + i * ncol : NULL, wc ? wc + j : NULL, ncol, n};
                const struct finish *fp = rs ? &f : NULL;
                char *ci = (char *)c + (i * n + j) * size;
                switch (end - i < ROWS ? end - i : ROWS) {
                    case 4: tile(a + i * k, k, 4, bp, ci, n, nc, cp, fp); break;
                    case 3: tile(a + i * k, k, 3, bp, ci, n, nc, cp, fp); break;
                    case 2: tile(a + i * k, k, 2, bp, ci, n, nc, cp, fp); break;
                    default: tile(a + i * k, k, 1, bp, ci, n, nc, cp, fp); break;
                }
            }
        }
    }
    return 0;
#else
    (void)a; (void)m; (void)k; (void)packed; (void)comp; (void)n; (void)c; (void)rs; (void)s; (void)b;
    (void)exact; (void)ncol; (void)wc; (void)threads;
    return -1;
#endif
}
