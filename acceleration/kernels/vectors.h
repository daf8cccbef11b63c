/* What the kernels share: 16-float vectors (gcc/clang vector extensions, one AVX-512 register or two
 * AVX2 ones; the compiler picks the instructions for the machine it builds on) and the threads' split
 * of a loop. Included by the kernels; native.py counts it in the build's cache key. */
#ifndef MNIST_ZOO_VECTORS_H
#define MNIST_ZOO_VECTORS_H
#include <omp.h>
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
#define LANES 16

/* This thread's share [*lo, *hi) of n items. */
static inline void share(int64_t n, int64_t *lo, int64_t *hi) {
    int k = omp_get_num_threads(), i = omp_get_thread_num();
    *lo = n * i / k; *hi = n * (i + 1) / k;
}

/* C floats into a vector, zero beyond them. */
static inline vf load_part(const float *p, const int C) {
    vf v = {0};
    memcpy(&v, p, sizeof(float) * C);
    return v;
}

static inline vf relu(vf x) { return (vf)((vi)x & (x > 0)); }

/* a where the mask is set, else b. */
static inline vf pick(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* A 2x2 window's four projections z[0..3] (row-major) max-pooled per lane: the first largest, or the last
   NaN (max_pool2d's rule); K lanes of the result into out and each one's winner (0-3) into which. */
static inline void pool4(const vf *z, float *out, uint8_t *which, int K) {
    vf best = z[0];
    vi win = {0};
    for (int q = 1; q < 4; q++) {
        vi m = (z[q] > best) | (z[q] != z[q]), qv = {0};
        qv += q;
        best = pick(m, z[q], best);
        win = (win & ~m) | (qv & m);
    }
    memcpy(out, &best, sizeof(float) * K);
    for (int k = 0; k < K; k++) which[k] = (uint8_t)win[k];
}

#endif
