/* A conv block's ReLU -> training-mode batch norm -> sparse dropout, then a 1x1 convolution without bias
 * and a 2x2, stride-2 max-pool, forward and backward, over a channels-last activation x (N, H, W, C in
 * memory, H and W even), C and K (the projection's output channels) at most 16. Built and loaded by
 * acceleration/native.py; the batch statistics come from rbd_statistics (relu_bn_drop.c).
 *
 * Why: run as two kernels (relu_bn_drop, then pointwise_pool), the block's full-size output is written
 * and read back, and backward writes its full-size gradient and reads it twice. Here the output y of each
 * pixel is made in registers where it is projected and pooled, and backward remakes y and its gradient
 * per pixel from x and the pooled gradient: forward reads x (plus the statistics pass) and writes only
 * the pooled output; backward reads x twice and writes dx once.
 *
 * With a = w * s * invstd and b = (bias - mean * w * invstd) * s per channel (s = 1 / (1 - p)):
 * y = relu(x) * a + b, zero where dropped; z_q = W y_q for the window's pixels q = 0..3 (row-major);
 * out = the first largest z_q, or the last NaN (max_pool2d's rule), winner = its q.
 * Backward: gz_q[k] = g[k] at the winner, else 0; gy_q = W^T gz_q, zero where dropped; dW[k] = sum of
 * g[k] * y at the winner; then as relu_bn_drop's backward with g' = gy: with xhat = (relu(x) - mean) *
 * invstd, dbias = s * sum(gy), dw = s * sum(gy * xhat), dx = [x > 0] * w * s * invstd * (gy - mean(gy) -
 * xhat * mean(gy * xhat)). The dropped elements are one bit each, two bytes per pixel ("bits").
 * Sums are taken in float over blocks of 64 windows and the block sums in double, threads added in
 * thread order, so a result never depends on which thread finished first. */
#include <stdlib.h>

#include "vectors.h"

#define BLOCK 64

/* All ones in lane c unless bit c of the pixel's two drop bytes is set. */
static inline vi kept(const uint8_t *bits, int64_t pixel) {
    const vi lane = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
    vi b = {0};
    b += (int32_t)bits[2 * pixel] | (int32_t)bits[2 * pixel + 1] << 8;
    return (b & lane) == 0;
}

/* The index of window p's top-left pixel (n, 2i, 2j); its four pixels are that + 0, 1, W, W + 1. */
static inline int64_t corner(int64_t p, int64_t Ho, int64_t Wo, int64_t Wd) {
    int64_t n = p / (Ho * Wo), r = p % (Ho * Wo), i = r / Wo, j = r % Wo;
    return (n * 2 * Ho + 2 * i) * Wd + 2 * j;
}

/* The block's output at one pixel: relu(x) * a + b, zero where dropped and beyond C. */
static inline vf block_out(const float *x, const uint8_t *bits, int64_t pixel, vf a, vf b, const int C) {
    return (vf)((vi)(relu(load_part(x + pixel * C, C)) * a + b) & kept(bits, pixel));
}

/* Marks the dropped positions (indices into the N*H*W*C floats) in bits. -1 on a position out of range. */
static int mark(const int64_t *pos, int64_t npos, uint8_t *bits, int64_t pixels, int C) {
    memset(bits, 0, (size_t)(2 * pixels));
    for (int64_t i = 0; i < npos; i++) {
        if (pos[i] < 0 || pos[i] >= pixels * C) return -1;
        int64_t px = pos[i] / C; int c = (int)(pos[i] % C);
        bits[2 * px + c / 8] |= (uint8_t)(1u << (c % 8));
    }
    return 0;
}

static inline __attribute__((always_inline))
void forward_range(const float *x, const uint8_t *bits, vf a, vf b, const vf *cols, float *out, uint8_t *which,
                   int64_t lo, int64_t hi, int64_t Ho, int64_t Wo, int64_t Wd, const int C, int K) {
    const int64_t step[4] = {0, 1, Wd, Wd + 1};
    for (int64_t p = lo; p < hi; p++) {
        int64_t base = corner(p, Ho, Wo, Wd);
        float y[4][LANES];
        for (int q = 0; q < 4; q++) { vf v = block_out(x, bits, base + step[q], a, b, C); memcpy(y[q], &v, sizeof v); }
        vf z[4] = {{0}};
        for (int c = 0; c < C; c++)  /* the four pixels' sums are independent chains */
            for (int q = 0; q < 4; q++) z[q] += y[q][c] * cols[c];
        pool4(z, out + p * K, which + p * K, K);
    }
}

/* x: (N, H, W, C) channels-last, the conv's output; a, b: (C) as in the header; pos: the dropped positions;
   w: (K, C). Writes out, which: (N, H/2, W/2, K) and bits: (N*H*W*2) for the backward. -1 on sizes it does
   not take or a dropped position out of range. */
int rbdpp_forward(const float *x, const float *a, const float *b, const int64_t *pos, int64_t npos, const float *w,
                  float *out, uint8_t *which, uint8_t *bits, int64_t N, int64_t H, int64_t Wd, int C, int K) {
    if (C < 1 || C > LANES || K < 1 || K > LANES || H % 2 || Wd % 2) return -1;
    if (mark(pos, npos, bits, N * H * Wd, C)) return -1;
    vf cols[LANES];  /* cols[c][k] = w[k][c]: z = sum_c y[c] * cols[c] */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < LANES; k++) cols[c][k] = k < K ? w[k * C + c] : 0.f;
    const vf A = load_part(a, C), B = load_part(b, C);
    const int64_t Ho = H / 2, Wo = Wd / 2, P = N * Ho * Wo;
    #pragma omp parallel
    {
        int64_t lo, hi;
        share(P, &lo, &hi);
        if (C == LANES) forward_range(x, bits, A, B, cols, out, which, lo, hi, Ho, Wo, Wd, LANES, K);
        else forward_range(x, bits, A, B, cols, out, which, lo, hi, Ho, Wo, Wd, C, K);
    }
    return 0;
}

/* gy for the window's four pixels from the pooled gradient gp and winners wp (rows[k] = W[k], zero beyond C). */
static inline __attribute__((always_inline))
void pixel_grads(const float *gp, const uint8_t *wp, const vf *rows, vf *gy, const int K) {
    float gz[4][LANES] = {{0}};
    for (int k = 0; k < K; k++) gz[wp[k] & 3][k] = gp[k];  /* & 3: a winner is 0-3; never write outside gz */
    for (int q = 0; q < 4; q++) {
        vf d0 = {0}, d1 = {0};  /* two chains: half the latency of one */
        int k = 0;
        for (; k + 1 < K; k += 2) { d0 += gz[q][k] * rows[k]; d1 += gz[q][k + 1] * rows[k + 1]; }
        if (k < K) d0 += gz[q][k] * rows[k];
        gy[q] = d0 + d1;
    }
}

/* Pass 1 over windows [lo, hi): sums of gy and gy * xhat (per channel) and of the projection's gradient. */
static inline __attribute__((always_inline))
void sums_range(const float *g, const uint8_t *which, const float *x, const uint8_t *bits, vf a, vf b, vf ia, vf ib,
                const vf *rows, double *s1, double *s2, double *dw, int64_t lo, int64_t hi, int64_t Ho, int64_t Wo,
                int64_t Wd, const int C, const int K) {
    const int64_t step[4] = {0, 1, Wd, Wd + 1};
    for (int64_t lo_b = lo; lo_b < hi; lo_b += BLOCK) {
        int64_t e = lo_b + BLOCK < hi ? lo_b + BLOCK : hi;
        vf acc[LANES] = {{0}}, a1 = {0}, a2 = {0};
        for (int64_t p = lo_b; p < e; p++) {
            int64_t base = corner(p, Ho, Wo, Wd);
            const float *gp = g + p * K;
            const uint8_t *wp = which + p * K;
            vf gy[4], y[4];
            pixel_grads(gp, wp, rows, gy, K);
            for (int q = 0; q < 4; q++) {
                int64_t px = base + step[q];
                vf r = relu(load_part(x + px * C, C));
                vi keep = kept(bits, px);
                y[q] = (vf)((vi)(r * a + b) & keep);
                vf gq = (vf)((vi)gy[q] & keep);
                a1 += gq; a2 += gq * (r * ia + ib);
            }
            for (int k = 0; k < K; k++) acc[k] += gp[k] * y[wp[k] & 3];  /* only the winner's pixel reaches W */
        }
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++) dw[k * C + c] += acc[k][c];
        for (int c = 0; c < C; c++) { s1[c] += a1[c]; s2[c] += a2[c]; }
    }
}

/* Pass 2 over windows [lo, hi): dx = x > 0 ? kk * gy + xhat * qq + pp : 0. */
static inline __attribute__((always_inline))
void dx_range(const float *g, const uint8_t *which, const float *x, const uint8_t *bits, vf ia, vf ib, vf kk, vf qq,
              vf pp, const vf *rows, float *dx, int64_t lo, int64_t hi, int64_t Ho, int64_t Wo, int64_t Wd, const int C,
              const int K) {
    const int64_t step[4] = {0, 1, Wd, Wd + 1};
    for (int64_t p = lo; p < hi; p++) {
        int64_t base = corner(p, Ho, Wo, Wd);
        vf gy[4];
        pixel_grads(g + p * K, which + p * K, rows, gy, K);
        for (int q = 0; q < 4; q++) {
            int64_t px = base + step[q];
            vf xv = load_part(x + px * C, C);
            vf gq = (vf)((vi)gy[q] & kept(bits, px));
            vf d = (vf)((vi)(kk * gq + (relu(xv) * ia + ib) * qq + pp) & (xv > 0));
            memcpy(dx + px * C, &d, sizeof(float) * C);
        }
    }
}

/* g, which: (N, H/2, W/2, K); x, bits: the forward's input and drop bits; w: (K, C) the projection;
   a, b: the forward's coefficients; bnw: (C) the batch norm's weight, scale = 1 / (1 - p), mean/invstd:
   the batch's statistics. Writes dx
   (N, H, W, C), dw (K, C), dbnw and dbnb (C). -1 on sizes it does not take or if the threads' partial
   sums cannot be allocated. */
int rbdpp_backward(const float *g, const uint8_t *which, const float *x, const uint8_t *bits, const float *w,
                   const float *a, const float *b, const float *bnw, double scale, const float *mean,
                   const float *invstd, float *dx, float *dw, float *dbnw, float *dbnb, int64_t N, int64_t H,
                   int64_t Wd, int C, int K) {
    if (C < 1 || C > LANES || K < 1 || K > LANES || H % 2 || Wd % 2) return -1;
    vf rows[LANES];  /* rows[k] = w[k], zero beyond C */
    for (int k = 0; k < K; k++) rows[k] = load_part(w + k * C, C);
    float fia[LANES] = {0}, fib[LANES] = {0};
    for (int c = 0; c < C; c++) { fia[c] = invstd[c]; fib[c] = -mean[c] * invstd[c]; }  /* xhat = relu(x)*ia + ib */
    const vf A = load_part(a, C), B = load_part(b, C), IA = load_part(fia, C), IB = load_part(fib, C);
    const int64_t Ho = H / 2, Wo = Wd / 2, P = N * Ho * Wo, M = N * H * Wd;
    const int T = omp_get_max_threads(), S = 2 * LANES + K * C;
    double *part = calloc((size_t)T * S, sizeof *part);
    int used = 1;
    if (!part) return -1;
    #pragma omp parallel num_threads(T)
    {
        double *s1 = part + (size_t)omp_get_thread_num() * S, *s2 = s1 + LANES, *mine = s2 + LANES;
        int64_t lo, hi;
        share(P, &lo, &hi);
        if (C == LANES && K == 10) sums_range(g, which, x, bits, A, B, IA, IB, rows, s1, s2, mine, lo, hi, Ho, Wo, Wd, LANES, 10);
        else sums_range(g, which, x, bits, A, B, IA, IB, rows, s1, s2, mine, lo, hi, Ho, Wo, Wd, C, K);
        #pragma omp single nowait
        used = omp_get_num_threads();
    }
    double sg[LANES] = {0}, sgx[LANES] = {0}, sw[LANES * LANES] = {0};
    for (int t = 0; t < used; t++) {
        const double *s1 = part + (size_t)t * S, *s2 = s1 + LANES, *mine = s2 + LANES;
        for (int c = 0; c < C; c++) { sg[c] += s1[c]; sgx[c] += s2[c]; }
        for (int j = 0; j < K * C; j++) sw[j] += mine[j];
    }
    free(part);
    for (int j = 0; j < K * C; j++) dw[j] = (float)sw[j];
    float fk[LANES] = {0}, fq[LANES] = {0}, fp[LANES] = {0};
    for (int c = 0; c < C; c++) {
        double k = bnw[c] * scale * invstd[c];
        dbnb[c] = (float)(scale * sg[c]); dbnw[c] = (float)(scale * sgx[c]);
        fk[c] = (float)k; fq[c] = (float)(-k * sgx[c] / M); fp[c] = (float)(-k * sg[c] / M);
    }
    vf KK, QQ, PP;
    memcpy(&KK, fk, sizeof KK); memcpy(&QQ, fq, sizeof QQ); memcpy(&PP, fp, sizeof PP);
    #pragma omp parallel
    {
        int64_t lo, hi;
        share(P, &lo, &hi);
        if (C == LANES && K == 10) dx_range(g, which, x, bits, IA, IB, KK, QQ, PP, rows, dx, lo, hi, Ho, Wo, Wd, LANES, 10);
        else dx_range(g, which, x, bits, IA, IB, KK, QQ, PP, rows, dx, lo, hi, Ho, Wo, Wd, C, K);
    }
    return 0;
}
