/* film2vec's training step on the CPU, fused into one pass over the batch: the same minibatch step as
 * film2vec/train/model.py's `_train_step` (scores, closed-form gradients from the weights before the step,
 * row-wise Adagrad), without materialising the [batch, candidates, dim] tensors the tensor code needs.
 *
 * Each row's gradient is summed in sample order by the one thread that owns the row (row % threads), so the
 * result does not depend on the number of threads. Built and loaded by film2vec/train/native.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline float dot(const float *a, const float *b, int64_t dim) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < dim; d++) sum += a[d] * b[d];
    return sum;
}

static inline void add_scaled(float *into, const float *row, float scale, int64_t dim) {
#pragma omp simd
    for (int64_t d = 0; d < dim; d++) into[d] += scale * row[d];
}

static inline double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

/* d(loss)/d(scores) of one sample into `gradient`, target in position 0; returns the sample's loss. */
static double loss_and_gradient(const float *scores, float *gradient, int64_t width, int sigmoid) {
    if (sigmoid) {
        double loss = 0.0;
        for (int64_t k = 0; k < width; k++) {
            double label = k == 0 ? 1.0 : 0.0;
            gradient[k] = (float)(1.0 / (1.0 + exp(-(double)scores[k])) - label);
            loss += softplus(k == 0 ? -(double)scores[k] : (double)scores[k]);
        }
        return loss;
    }
    float top = scores[0];
    for (int64_t k = 1; k < width; k++) top = scores[k] > top ? scores[k] : top;
    double total = 0.0;
    for (int64_t k = 0; k < width; k++) total += exp((double)(scores[k] - top));
    for (int64_t k = 0; k < width; k++) gradient[k] = (float)(exp((double)(scores[k] - top)) / total);
    gradient[0] -= 1.0f;
    return log(total) + top - scores[0];
}

/* Row-wise Adagrad on the rows in `touched`: grow each accumulator by the mean squared summed gradient, step
 * by lr / sqrt(accumulator); then clear the sums and marks for the next batch. */
static void adagrad_rows(float *matrix, float *state, float *sums, uint8_t *marks, const int64_t *touched,
                         int64_t n_touched, int64_t dim, float learning_rate, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < n_touched; t++) {
        int64_t row = touched[t];
        float *sum = sums + row * dim;
        float squares = 0.0f;
        for (int64_t d = 0; d < dim; d++) squares += sum[d] * sum[d];
        state[row] += squares / (float)dim;
        float rate = -learning_rate / (sqrtf(state[row]) + 1e-10f);
        add_scaled(matrix + row * dim, sum, rate, dim);
        memset(sum, 0, (size_t)dim * sizeof(float));
        marks[row] = 0;
    }
}

/* Appends `row` to `touched` the first time a batch touches it. */
static inline void touch(int64_t row, uint8_t *marks, int64_t *touched, int64_t *n_touched) {
    if (!marks[row]) {
        marks[row] = 1;
        touched[(*n_touched)++] = row;
    }
}

/* One step on `batch` samples of `width` candidates (target first); returns the summed loss before the step.
 *
 * vectors/context: [rows, dim] (the same pointer when shared, as are their states, sums, marks and touched);
 * sums: zeroed [rows, dim] buffers; marks: zeroed [rows]; touched: [rows] scratch; gradients: [batch, width]
 * and losses: [batch] scratch. Sums and marks are left zeroed.
 */
double film2vec_step(float *vectors, float *vectors_state, float *context, float *context_state, int64_t dim,
                     const int64_t *origin, const int64_t *candidates, int64_t batch, int64_t width,
                     float learning_rate, int sigmoid, float *vector_sums, float *context_sums,
                     uint8_t *vector_marks, uint8_t *context_marks, int64_t *vector_touched,
                     int64_t *context_touched, float *gradients, double *losses, int threads) {
    int shared = vectors == context;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < batch; i++) {
        const float *origin_row = vectors + origin[i] * dim;
        const int64_t *row = candidates + i * width;
        float scores[width];
        for (int64_t k = 0; k < width; k++) scores[k] = dot(origin_row, context + row[k] * dim, dim);
        losses[i] = loss_and_gradient(scores, gradients + i * width, width, sigmoid);
    }
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int64_t owner = omp_get_thread_num(), owners = omp_get_num_threads();
#else
        int64_t owner = 0, owners = 1;
#endif
        for (int64_t i = 0; i < batch; i++) {
            const int64_t o = origin[i], *row = candidates + i * width;
            const float *gradient = gradients + i * width, *origin_row = vectors + o * dim;
            if (o % owners == owner) {
                float *sum = vector_sums + o * dim;
                for (int64_t k = 0; k < width; k++) add_scaled(sum, context + row[k] * dim, gradient[k], dim);
            }
            for (int64_t k = 0; k < width; k++)
                if (row[k] % owners == owner) add_scaled(context_sums + row[k] * dim, origin_row, gradient[k], dim);
        }
    }
    double loss = 0.0;  /* summed in sample order: the same figure on any number of threads */
    int64_t n_vectors = 0, n_context = 0;
    for (int64_t i = 0; i < batch; i++) {
        loss += losses[i];
        touch(origin[i], vector_marks, vector_touched, &n_vectors);
        for (int64_t k = 0; k < width; k++)
            touch(candidates[i * width + k], context_marks, context_touched, shared ? &n_vectors : &n_context);
    }
    adagrad_rows(vectors, vectors_state, vector_sums, vector_marks, vector_touched, n_vectors, dim, learning_rate,
                 threads);
    if (!shared)
        adagrad_rows(context, context_state, context_sums, context_marks, context_touched, n_context, dim,
                     learning_rate, threads);
    return loss;
}
