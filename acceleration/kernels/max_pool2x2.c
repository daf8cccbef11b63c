/* 2x2 max-pooling with stride 2 over a channels-last activation (N, H, W, C in memory, H and W even),
 * forward with each window's winner, and backward. Built and loaded by acceleration/native.py.
 *
 * Why: PyTorch's channels-last max-pool costs about four passes over its input here; this is one pass
 * each way. Same results as torch.nn.functional.max_pool2d, whose rule, scanning a window in row-major
 * order, is `v > best || isnan(v)`: the first largest value wins, or the last NaN if there is one.
 *
 * Output element f of an output row (f = j*C + c) reads the input at off[f] = 2*j*C + c and off[f] + C
 * in the two input rows; with AVX-512, 16 outputs at a time are gathered by those offsets and the rule
 * runs as mask blends (a data-dependent branch per window would mispredict half the time). */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* off[f] for one output row of `width` = (W/2)*C elements. */
static int32_t *window_offsets(int64_t width, int64_t C) {
    int32_t *off = malloc(sizeof *off * (width + 16));
    if (off)
        for (int64_t f = 0; f < width; f++) off[f] = (int32_t)(2 * (f / C) * C + f % C);
    return off;
}

static void pool_row(const float *top, const float *bottom, float *o, uint8_t *k, const int32_t *off,
                     int64_t width, int64_t C) {
    int64_t f = 0;
#ifdef __AVX512F__
    const __m512i right = _mm512_set1_epi32((int32_t)C);
    for (; f < width; f += 16) {
        __mmask16 live = width - f >= 16 ? 0xFFFF : (__mmask16)((1u << (width - f)) - 1);
        __m512i at = _mm512_maskz_loadu_epi32(live, off + f), at_right = _mm512_add_epi32(at, right);
        __m512 v[4] = {_mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at, top, 4),
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at_right, top, 4),
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at, bottom, 4),
                       _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at_right, bottom, 4)};
        __m512 best = v[0];
        __m512i which = _mm512_setzero_si512();
        for (int q = 1; q < 4; q++) {
            __mmask16 m = _mm512_cmp_ps_mask(v[q], best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v[q], v[q], _CMP_UNORD_Q);
            best = _mm512_mask_blend_ps(m, best, v[q]);
            which = _mm512_mask_blend_epi32(m, which, _mm512_set1_epi32(q));
        }
        _mm512_mask_storeu_ps(o + f, live, best);
        _mm512_mask_cvtepi32_storeu_epi8(k + f, live, which);
    }
#endif
    for (; f < width; f++) {
        const float v[4] = {top[off[f]], top[off[f] + C], bottom[off[f]], bottom[off[f] + C]};
        float best = v[0];
        uint8_t which = 0;
        for (uint8_t q = 1; q < 4; q++)
            if (v[q] > best || v[q] != v[q]) { best = v[q]; which = q; }
        o[f] = best;
        k[f] = which;
    }
}

static void unpool_row(float *top, float *bottom, const float *g, const uint8_t *k, const int32_t *off,
                       int64_t width, int64_t C, int64_t row) {
    memset(top, 0, sizeof *top * row);
    memset(bottom, 0, sizeof *bottom * row);
    int64_t f = 0;
#ifdef __AVX512F__
    /* bottom == top + row: the winner q sits at off[f] + (q & 1) * C + (q >> 1) * row from top */
    const __m512i one = _mm512_set1_epi32(1), right = _mm512_set1_epi32((int32_t)C),
                  down = _mm512_set1_epi32((int32_t)row);
    for (; f < width; f += 16) {
        __mmask16 live = width - f >= 16 ? 0xFFFF : (__mmask16)((1u << (width - f)) - 1);
        __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(live, k + f));
        __m512i at = _mm512_add_epi32(_mm512_maskz_loadu_epi32(live, off + f),
                                      _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(q, one), right),
                                                       _mm512_mullo_epi32(_mm512_srli_epi32(q, 1), down)));
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(live, g + f), _mm512_setzero_ps());  /* -0 -> +0 */
        _mm512_mask_i32scatter_ps(top, live, at, v, 4);
    }
#endif
    for (; f < width; f++) {
        int q = k[f];
        (q >> 1 ? bottom : top)[off[f] + (q & 1) * C] = g[f] + 0.f;
    }
}

/* out: N*(H/2)*(W/2)*C floats; which: each output's winner in its window (0..3, row-major). 0 on success. */
int mp_forward(const float *x, float *out, uint8_t *which, int64_t N, int64_t H, int64_t W, int64_t C) {
    const int64_t Ho = H / 2, width = W / 2 * C, row = W * C;
    int32_t *off = window_offsets(width, C);
    if (!off || row > INT32_MAX / 2) { free(off); return -1; }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * Ho; r++) {
        const float *top = x + (r / Ho * H + 2 * (r % Ho)) * row;
        pool_row(top, top + row, out + r * width, which + r * width, off, width, C);
    }
    free(off);
    return 0;
}

/* dx (N*H*W*C): each window's winner gets its output's gradient, the other three positions zero (written as
   0 + g, PyTorch's sum into a zeroed gradient, so that even a -0 comes out the same). */
int mp_backward(const float *grad, const uint8_t *which, float *dx, int64_t N, int64_t H, int64_t W, int64_t C) {
    const int64_t Ho = H / 2, width = W / 2 * C, row = W * C;
    int32_t *off = window_offsets(width, C);
    if (!off || row > INT32_MAX / 2) { free(off); return -1; }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * Ho; r++) {
        float *top = dx + (r / Ho * H + 2 * (r % Ho)) * row;
        unpool_row(top, top + row, grad + r * width, which + r * width, off, width, C, row);
    }
    free(off);
    return 0;
}
