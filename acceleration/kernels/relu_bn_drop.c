/* ReLU -> training-mode batch norm -> sparse dropout, forward and backward, over one channels-last
 * activation of M rows (pixels) by C channels, in float32. Built and loaded by acceleration/native.py.
 *
 * Why: in the tiny nets these three element-wise steps cost as much as the convolutions. PyTorch runs
 * them as separate passes over memory (and, for C = 8 or 10, through layout copies, because its
 * channels-last batch norm is slow there); here the forward reads the input twice and writes the output
 * once, and the backward reads the gradient and the input twice and writes the input's gradient once.
 *
 * Forward:  r = relu(x); out = (r - mean) * invstd * w * s + b * s, zeroed at the dropped positions, with
 *           s = 1 / (1 - p) the dropout's scale and mean/var the batch's (biased var for normalizing,
 *           unbiased var into the running statistics, as nn.BatchNorm2d).
 * Backward: with g' = g zeroed at the dropped positions and xhat = (r - mean) * invstd,
 *           db = s * sum(g'), dw = s * sum(g' * xhat), dx = [x > 0] * w * s * invstd *
 *           (g' - mean(g') - xhat * mean(g' * xhat)). Sums run over everything, then the few dropped
 *           positions' terms are taken back out, so the full passes need no mask.
 *
 * Data are walked in tiles of L = lcm(C, 16) floats, so that each 16-float vector of a tile always holds
 * the same channels and per-channel constants become per-vector constants. Statistics are summed in
 * float over blocks of 64 tiles and the block sums in double. Threads: the OpenMP runtime PyTorch loaded
 * (same thread count as torch.get_num_threads()). */
#include <math.h>
#include <stdlib.h>

#include "vectors.h"

#define W LANES          /* floats per vector */
#define MAXV 16           /* vectors per tile at most (L <= 256) */
#define BLOCK 64          /* tiles summed in float before the sums are added up in double */

static inline vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf where_positive(vf x, vf v) { return (vf)((vi)v & (x > 0)); }

/* The loops take V (vectors per tile) as a constant in the common cases (C = 8 or 16: 1; C = 10: 5), so
   that the compiler keeps the accumulators in registers; SPECIALIZE picks the instance. */
#define SPECIALIZE(call) switch (V) { case 1: call(1); break; case 5: call(5); break; default: call(V); }

static inline void add_block(double *s, const vf *acc, const int V) {
    for (int v = 0; v < V; v++) for (int k = 0; k < W; k++) s[v * W + k] += acc[v][k];
}

/* Per tile position over tiles [lo, hi): sums of relu(x) and relu(x)^2. */
static inline __attribute__((always_inline))
void value_sums(const float *x, int64_t lo, int64_t hi, const int V, double *s1, double *s2) {
    for (int64_t b = lo; b < hi; b += BLOCK) {
        int64_t e = b + BLOCK < hi ? b + BLOCK : hi;
        vf a1[MAXV] = {0}, a2[MAXV] = {0};
        for (int64_t t = b; t < e; t++)
            for (int v = 0; v < V; v++) { vf r = relu(load(x + (t * V + v) * W)); a1[v] += r; a2[v] += r * r; }
        add_block(s1, a1, V); add_block(s2, a2, V);
    }
}

/* Per tile position over tiles [lo, hi): sums of g and g*xhat, xhat = relu(x)*A + B. */
static inline __attribute__((always_inline))
void grad_sums(const float *x, const float *g, int64_t lo, int64_t hi, const int V, const vf *A, const vf *B,
               double *s1, double *s2) {
    for (int64_t b = lo; b < hi; b += BLOCK) {
        int64_t e = b + BLOCK < hi ? b + BLOCK : hi;
        vf a1[MAXV] = {0}, a2[MAXV] = {0};
        for (int64_t t = b; t < e; t++)
            for (int v = 0; v < V; v++) {
                int64_t i = (t * V + v) * W;
                vf q = load(g + i), xh = relu(load(x + i)) * A[v] + B[v];
                a1[v] += q; a2[v] += q * xh;
            }
        add_block(s1, a1, V); add_block(s2, a2, V);
    }
}

/* out = relu(x)*A + B. */
static inline __attribute__((always_inline))
void affine(const float *x, float *out, int64_t lo, int64_t hi, const int V, const vf *A, const vf *B) {
    for (int64_t t = lo; t < hi; t++)
        for (int v = 0; v < V; v++) { int64_t i = (t * V + v) * W; store(out + i, relu(load(x + i)) * A[v] + B[v]); }
}

/* dx = x > 0 ? K*g + xhat*Q + P : 0, xhat = x*A + B. */
static inline __attribute__((always_inline))
void grad_input(const float *g, const float *x, float *dx, int64_t lo, int64_t hi, const int V, const vf *A,
                const vf *B, const vf *K, const vf *Q, const vf *P) {
    for (int64_t t = lo; t < hi; t++)
        for (int v = 0; v < V; v++) {
            int64_t i = (t * V + v) * W;
            vf xv = load(x + i), xh = xv * A[v] + B[v];
            store(dx + i, where_positive(xv, K[v] * load(g + i) + xh * Q[v] + P[v]));
        }
}

/* Sums per tile position, over all tiles and threads: of relu(x), relu(x)^2 (g == 0) or g, g*xhat. */
/* Sums per tile position, over all tiles and threads: of relu(x), relu(x)^2 (g == 0) or g, g*xhat. The
   threads' partial sums are added in thread order, so that a result never depends on which thread
   finished first. -1 if the partial sums cannot be allocated. */
static int tile_sums(const float *x, const float *g, int64_t ntiles, const int V, const vf *A, const vf *B,
                     double *s1, double *s2) {
    const int T = omp_get_max_threads(), S = MAXV * W;
    double *part = calloc((size_t)T * 2 * S, sizeof *part);
    int used = 1;
    if (!part) return -1;
    #pragma omp parallel num_threads(T)
    {
        double *t1 = part + (size_t)omp_get_thread_num() * 2 * S, *t2 = t1 + S;
        int64_t lo, hi;
        share(ntiles, &lo, &hi);
        if (g) {
            #define CALL(n) grad_sums(x, g, lo, hi, n, A, B, t1, t2)
            SPECIALIZE(CALL)
            #undef CALL
        } else {
            #define CALL(n) value_sums(x, lo, hi, n, t1, t2)
            SPECIALIZE(CALL)
            #undef CALL
        }
        #pragma omp single nowait
        used = omp_get_num_threads();
    }
    for (int i = 0; i < used; i++) {
        const double *t1 = part + (size_t)i * 2 * S, *t2 = t1 + S;
        for (int j = 0; j < V * W; j++) { s1[j] += t1[j]; s2[j] += t2[j]; }
    }
    free(part);
    return 0;
}

static void tile_affine(const float *x, float *out, int64_t ntiles, const int V, const vf *A, const vf *B) {
    #pragma omp parallel
    {
        int64_t lo, hi;
        share(ntiles, &lo, &hi);
        #define CALL(n) affine(x, out, lo, hi, n, A, B)
        SPECIALIZE(CALL)
        #undef CALL
    }
}

static void tile_grad_input(const float *g, const float *x, float *dx, int64_t ntiles, const int V, const vf *A,
                            const vf *B, const vf *K, const vf *Q, const vf *P) {
    #pragma omp parallel
    {
        int64_t lo, hi;
        share(ntiles, &lo, &hi);
        #define CALL(n) grad_input(g, x, dx, lo, hi, n, A, B, K, Q, P)
        SPECIALIZE(CALL)
        #undef CALL
    }
}

/* Per-channel values laid out over a tile. */
static void tile(const float *per_channel, vf *tiled, int C, int V) {
    for (int j = 0; j < V * W; j++) tiled[j / W][j % W] = per_channel[j % C];
}

/* Per-channel totals of per-tile-position sums. */
static void fold(const double *s, double *per_channel, int C, int V) {
    for (int c = 0; c < C; c++) per_channel[c] = 0;
    for (int j = 0; j < V * W; j++) per_channel[j % C] += s[j];
}

/* Tiles of lcm(C, 16) floats: V vectors each; 0 if the data cannot be walked in whole tiles. */
int rbd_vectors_per_tile(int64_t M, int C) {
    int a = C, b = W;
    while (b) { int r = a % b; a = b; b = r; }
    int L = C / a * W;
    return (C > 0 && L <= MAXV * W && (M * C) % L == 0) ? L / W : 0;
}

/* The statistics pass of rbd_forward, on its own for kernels that apply the affine themselves: writes
   the batch mean and 1/std, updates the running statistics, and writes a and bb (C floats each) with
   dropout(batchnorm(relu(x))) = relu(x) * a + bb where not dropped. */
int rbd_statistics(const float *x, int64_t M, int C, const float *w, const float *b, double scale, double eps,
                   double momentum, float *run_mean, float *run_var, float *save_mean, float *save_invstd, float *a,
                   float *bb) {
    int V = rbd_vectors_per_tile(M, C);
    if (!V) return -1;  /* C <= L <= MAXV * W whenever V > 0 */
    int64_t ntiles = M * C / (V * W);
    double s1[MAXV * W] = {0}, s2[MAXV * W] = {0}, m1[MAXV * W], m2[MAXV * W];
    if (tile_sums(x, 0, ntiles, V, 0, 0, s1, s2)) return -1;
    fold(s1, m1, C, V); fold(s2, m2, C, V);
    for (int c = 0; c < C; c++) {
        double mean = m1[c] / M, var = m2[c] / M - mean * mean;
        if (var < 0) var = 0;
        double invstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean; save_invstd[c] = (float)invstd;
        run_mean[c] = (float)((1 - momentum) * run_mean[c] + momentum * mean);
        run_var[c] = (float)((1 - momentum) * run_var[c] + momentum * var * M / (M > 1 ? M - 1 : 1));
        a[c] = (float)(w[c] * scale * invstd); bb[c] = (float)((b[c] - mean * w[c] * invstd) * scale);
    }
    return 0;
}

/* Forward: out = dropout(batchnorm(relu(x))), the dropout's scale folded into the affine; positions
   (indices into the M*C floats) are the dropped ones. Writes the batch mean and 1/std (for backward) and
   updates the running statistics (unbiased variance), as nn.BatchNorm2d does. */
int rbd_forward(const float *x, float *out, int64_t M, int C, const float *w, const float *b, double scale,
                double eps, double momentum, float *run_mean, float *run_var, float *save_mean, float *save_invstd,
                const int64_t *pos, int64_t npos) {
    int V = rbd_vectors_per_tile(M, C);
    float a[MAXV * W], bb[MAXV * W];
    if (!V || rbd_statistics(x, M, C, w, b, scale, eps, momentum, run_mean, run_var, save_mean, save_invstd, a, bb))
        return -1;
    vf A[MAXV], B[MAXV];
    tile(a, A, C, V); tile(bb, B, C, V);
    tile_affine(x, out, M * C / (V * W), V, A, B);
    for (int64_t i = 0; i < npos; i++) out[pos[i]] = 0.f;
    return 0;
}

/* Backward of rbd_forward: g is the output's gradient (M*C, channels-last). Writes dx, dw, db. */
int rbd_backward(const float *g, const float *x, float *dx, int64_t M, int C, const float *w, double scale,
                 const float *save_mean, const float *save_invstd, const int64_t *pos, int64_t npos,
                 float *dw, float *db) {
    int V = rbd_vectors_per_tile(M, C);
    if (!V) return -1;  /* C <= L <= MAXV * W whenever V > 0 */
    int64_t ntiles = M * C / (V * W);
    float a[MAXV * W], bb[MAXV * W];  /* xhat = relu(x)*a + bb */
    for (int c = 0; c < C; c++) { a[c] = save_invstd[c]; bb[c] = -save_mean[c] * save_invstd[c]; }
    vf A[MAXV], B[MAXV];
    tile(a, A, C, V); tile(bb, B, C, V);
    double s1[MAXV * W] = {0}, s2[MAXV * W] = {0}, sg[MAXV * W], sgx[MAXV * W];
    if (tile_sums(x, g, ntiles, V, A, B, s1, s2)) return -1;
    fold(s1, sg, C, V); fold(s2, sgx, C, V);
    for (int64_t i = 0; i < npos; i++) {  /* the dropped positions pass no gradient */
        int64_t k = pos[i]; int c = (int)(k % C);
        float xh = (x[k] > 0.f ? x[k] : 0.f) * a[c] + bb[c];
        sg[c] -= g[k]; sgx[c] -= (double)g[k] * xh;
    }
    float kk[MAXV * W], qq[MAXV * W], pp[MAXV * W];
    for (int c = 0; c < C; c++) {
        double k = w[c] * scale * save_invstd[c];
        db[c] = (float)(scale * sg[c]); dw[c] = (float)(scale * sgx[c]);
        kk[c] = (float)k; qq[c] = (float)(-k * sgx[c] / M); pp[c] = (float)(-k * sg[c] / M);
    }
    vf K[MAXV], Q[MAXV], P[MAXV];
    tile(kk, K, C, V); tile(qq, Q, C, V); tile(pp, P, C, V);
    tile_grad_input(g, x, dx, ntiles, V, A, B, K, Q, P);
    for (int64_t i = 0; i < npos; i++) {
        int64_t k = pos[i]; int c = (int)(k % C);
        float xh = x[k] * a[c] + bb[c];
        dx[k] = x[k] > 0.f ? xh * qq[c] + pp[c] : 0.f;
    }
    return 0;
}
