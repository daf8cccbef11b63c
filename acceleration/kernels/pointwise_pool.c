/* A 1x1 convolution without bias followed by a 2x2, stride-2 max-pool, forward and backward, over a
 * channels-last activation (N, H, W, C in memory, H and W even), C and K (output channels) at most 16.
 * Built and loaded by acceleration/native.py.
 *
 * Why: the tiny nets' stems end in a 1x1 convolution to 10 channels and a max-pool at 24x24, where
 * every pass over memory costs as much as the arithmetic. Run as two layers, the convolution writes a
 * full-size output that the pool reads, and backward writes a full-size gradient (three quarters
 * zeros) that the convolution reads twice. Here each 2x2 window's four pixels are projected and pooled
 * in registers: forward reads the input once and writes only the pooled output and each output's
 * winner; backward reads the input once and writes its gradient once, summing the weight's gradient on
 * the way.
 *
 * Forward, per window and output channel k: z_q = sum_c w[k][c] * x_q[c] for the window's pixels
 * q = 0..3 in row-major order; out = the first largest z_q, or the last NaN (max_pool2d's rule,
 * `z > best || isnan(z)`), winner = its q. Backward: the winner pixel gets g[k] in its z, the others 0;
 * dx_q = sum_k gz_q[k] * w[k], dw[k] = sum over all pixels of gz_q[k] * x_q. The weight gradient is
 * summed in float over blocks of 64 windows and the block sums in double, threads added in thread order. */
#include <stdlib.h>

#include "vectors.h"

#define BLOCK 64

/* The top-left input pixel of output pixel p, and the offsets of the window's four pixels from it. */
static inline const float *window(const float *x, int64_t p, int64_t Ho, int64_t Wo, int64_t Wd, int C) {
    int64_t n = p / (Ho * Wo), r = p % (Ho * Wo), i = r / Wo, j = r % Wo;
    return x + ((n * 2 * Ho + 2 * i) * Wd + 2 * j) * C;
}

static inline __attribute__((always_inline))
void forward_range(const float *x, const vf *cols, float *out, uint8_t *which, int64_t lo, int64_t hi, int64_t Ho,
                   int64_t Wo, int64_t Wd, const int C, int K) {
    const int64_t step[4] = {0, C, Wd * C, Wd * C + C};
    for (int64_t p = lo; p < hi; p++) {
        const float *base = window(x, p, Ho, Wo, Wd, C);
        vf z[4] = {{0}};
        for (int c = 0; c < C; c++)  /* the four pixels' sums are independent chains */
            for (int q = 0; q < 4; q++) z[q] += base[step[q] + c] * cols[c];
        pool4(z, out + p * K, which + p * K, K);
    }
}

/* x: (N, H, W, C) channels-last; w: (K, C); out, which: (N, H/2, W/2, K). -1 on sizes it does not take. */
int pp_forward(const float *x, const float *w, float *out, uint8_t *which, int64_t N, int64_t H, int64_t Wd, int C,
               int K) {
    if (C < 1 || C > LANES || K < 1 || K > LANES || H % 2 || Wd % 2) return -1;
    vf cols[LANES];  /* cols[c][k] = w[k][c]: z = sum_c x[c] * cols[c] */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < LANES; k++) cols[c][k] = k < K ? w[k * C + c] : 0.f;
    const int64_t Ho = H / 2, Wo = Wd / 2, P = N * Ho * Wo;
    #pragma omp parallel
    {
        int64_t lo, hi;
        share(P, &lo, &hi);
        if (C == LANES) forward_range(x, cols, out, which, lo, hi, Ho, Wo, Wd, LANES, K);
        else forward_range(x, cols, out, which, lo, hi, Ho, Wo, Wd, C, K);
    }
    return 0;
}

static inline __attribute__((always_inline))
void backward_range(const float *g, const uint8_t *which, const float *x, const vf *rows, float *dx, double *dw,
                    int64_t lo, int64_t hi, int64_t Ho, int64_t Wo, int64_t Wd, const int C, const int K) {
    const int64_t step[4] = {0, C, Wd * C, Wd * C + C};
    for (int64_t b = lo; b < hi; b += BLOCK) {
        int64_t e = b + BLOCK < hi ? b + BLOCK : hi;
        vf acc[LANES] = {{0}};
        for (int64_t p = b; p < e; p++) {
            const float *base = window(x, p, Ho, Wo, Wd, C);
            float *dbase = dx + (base - x);
            const float *gp = g + p * K;
            const uint8_t *wp = which + p * K;
            /* gz[q][k]: the gradient reaching pixel q's k-th projection (g[k] at the winner, else 0) */
            float gz[4][LANES] = {{0}};
            for (int k = 0; k < K; k++) {
                gz[wp[k] & 3][k] = gp[k];  /* & 3: a winner is 0-3; never write outside gz */
                acc[k] += gp[k] * load_part(base + step[wp[k] & 3], C);  /* only the winner's pixel reaches w */
            }
            for (int q = 0; q < 4; q++) {
                vf d0 = {0}, d1 = {0};  /* two chains: half the latency of one */
                int k = 0;
                for (; k + 1 < K; k += 2) { d0 += gz[q][k] * rows[k]; d1 += gz[q][k + 1] * rows[k + 1]; }
                if (k < K) d0 += gz[q][k] * rows[k];
                d0 += d1;
                memcpy(dbase + step[q], &d0, sizeof(float) * C);
            }
        }
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++) dw[k * C + c] += acc[k][c];
    }
}

/* g, which: (N, H/2, W/2, K); x: the forward's input; writes dx (N, H, W, C) and dw (K, C). -1 on sizes
   it does not take or if the threads' partial sums cannot be allocated. */
int pp_backward(const float *g, const uint8_t *which, const float *x, const float *w, float *dx, float *dw,
                int64_t N, int64_t H, int64_t Wd, int C, int K) {
    if (C < 1 || C > LANES || K < 1 || K > LANES || H % 2 || Wd % 2) return -1;
    vf rows[LANES];  /* rows[k] = w[k], zero beyond C */
    for (int k = 0; k < K; k++) rows[k] = load_part(w + k * C, C);
    const int64_t Ho = H / 2, Wo = Wd / 2, P = N * Ho * Wo;
    const int T = omp_get_max_threads();
    double *part = calloc((size_t)T * K * C, sizeof *part);
    int used = 1;
    if (!part) return -1;
    #pragma omp parallel num_threads(T)
    {
        double *mine = part + (size_t)omp_get_thread_num() * K * C;
        int64_t lo, hi;
        share(P, &lo, &hi);
        if (C == LANES && K == 10) backward_range(g, which, x, rows, dx, mine, lo, hi, Ho, Wo, Wd, LANES, 10);
        else backward_range(g, which, x, rows, dx, mine, lo, hi, Ho, Wo, Wd, C, K);
        #pragma omp single nowait
        used = omp_get_num_threads();
    }
    for (int j = 0; j < K * C; j++) {
        double s = 0;
        for (int t = 0; t < used; t++) s += part[(size_t)t * K * C + j];
        dw[j] = (float)s;
    }
    free(part);
    return 0;
}
