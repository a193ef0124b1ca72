/* film2vec's training step on the CPU, fused into one pass over the batch: the same minibatch step as
 * film2vec/train/model.py's `_train_step` (scores, closed-form gradients from the weights before the step,
 * row-wise Adagrad), without materialising the [batch, candidates, dim] tensors the tensor code needs.
 *
 * Threads are plain pthreads forked and joined three times a step, never spinning: the trainer often shares the
 * machine with Spark sampling the next season, and OpenMP's spinning barriers (torch's runtime, whose wait
 * policy is fixed when torch loads) made two threads 5x slower than one there. Each row belongs to one thread
 * (row % threads), which sums its gradients in sample order and updates it, so the result does not depend on
 * the number of threads. Built and loaded by film2vec/train/c_step.py.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define MAX_THREADS 256

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

/* One matrix's side of the step: its rows, Adagrad state, gradient sums (zero between steps), first-touch
 * marks (zero between steps) and the rows touched this step, each owner's in its own stretch. */
typedef struct {
    float *matrix, *state, *sums;
    uint8_t *marks;
    int64_t *touched;
} Side;

typedef struct {
    Side vectors, context;
    int shared;
    int64_t rows, dim, batch, width;
    const int64_t *origin, *candidates;
    float learning_rate, *gradients;
    int sigmoid;
    double *losses;
} Step;

typedef struct {
    const Step *step;
    int owner, owners;
    int64_t stretch, vectors_end, context_end; /* this owner's part of the touched lists: [stretch, end) */
} Share;

/* Phase 1, samples split into contiguous stretches: scores and d(loss)/d(scores), weights untouched. */
static void *score(void *argument) {
    const Share *share = argument;
    const Step *s = share->step;
    int64_t begin = s->batch * share->owner / share->owners, end = s->batch * (share->owner + 1) / share->owners;
    float scores[s->width];
    for (int64_t i = begin; i < end; i++) {
        const float *origin_row = s->vectors.matrix + s->origin[i] * s->dim;
        const int64_t *row = s->candidates + i * s->width;
        for (int64_t k = 0; k < s->width; k++) scores[k] = dot(origin_row, s->context.matrix + row[k] * s->dim, s->dim);
        s->losses[i] = loss_and_gradient(scores, s->gradients + i * s->width, s->width, s->sigmoid);
    }
    return NULL;
}

/* Row-wise Adagrad on one touched row: grow its accumulator by the mean squared summed gradient, step by
 * lr / sqrt(accumulator), clear the sum and the mark. */
static void adagrad_row(const Side *side, int64_t row, int64_t dim, float learning_rate) {
    float *sum = side->sums + row * dim;
    float squares = 0.0f;
    for (int64_t d = 0; d < dim; d++) squares += sum[d] * sum[d];
    side->state[row] += squares / (float)dim;
    add_scaled(side->matrix + row * dim, sum, -learning_rate / (sqrtf(side->state[row]) + 1e-10f), dim);
    memset(sum, 0, (size_t)dim * sizeof(float));
    side->marks[row] = 0;
}

static inline void touch(const Side *side, int64_t row, int64_t *n_touched) {
    if (!side->marks[row]) {
        side->marks[row] = 1;
        side->touched[(*n_touched)++] = row;
    }
}

/* Phase 2, by row ownership: sum the owned rows' gradients in sample order (still reading the weights
 * before the step, so no row may change until every owner is done). */
static void *accumulate(void *argument) {
    Share *share = argument;
    const Step *s = share->step;
    int64_t owner = share->owner, owners = share->owners, dim = s->dim, width = s->width;
    share->stretch = (s->rows + owners - 1) / owners * owner; /* an owner has at most that many rows */
    int64_t n_vectors = share->stretch, n_context = share->stretch;
    const Side *vectors = &s->vectors, *context = &s->context;
    for (int64_t i = 0; i < s->batch; i++) {
        const int64_t o = s->origin[i], *row = s->candidates + i * width;
        const float *gradient = s->gradients + i * width, *origin_row = vectors->matrix + o * dim;
        if (o % owners == owner) {
            touch(vectors, o, &n_vectors);
            float *sum = vectors->sums + o * dim;
            for (int64_t k = 0; k < width; k++) add_scaled(sum, context->matrix + row[k] * dim, gradient[k], dim);
        }
        for (int64_t k = 0; k < width; k++) {
            if (row[k] % owners != owner) continue;
            touch(context, row[k], s->shared ? &n_vectors : &n_context);
            add_scaled(context->sums + row[k] * dim, origin_row, gradient[k], dim);
        }
    }
    share->vectors_end = n_vectors;
    share->context_end = n_context;
    return NULL;
}

/* Phase 3, by row ownership: Adagrad on the rows this owner touched. */
static void *update(void *argument) {
    const Share *share = argument;
    const Step *s = share->step;
    for (int64_t t = share->stretch; t < share->vectors_end; t++)
        adagrad_row(&s->vectors, s->vectors.touched[t], s->dim, s->learning_rate);
    for (int64_t t = share->stretch; t < share->context_end; t++)
        adagrad_row(&s->context, s->context.touched[t], s->dim, s->learning_rate);
    return NULL;
}

/* Runs `work` on each of `owners` shares, the calling thread taking share 0; returns when all are done. */
static void run_shares(void *(*work)(void *), Share *shares, int owners) {
    pthread_t threads[MAX_THREADS];
    int started = 1;
    for (; started < owners; started++)
        if (pthread_create(&threads[started], NULL, work, &shares[started]) != 0) break;
    for (int owner = started; owner < owners; owner++) work(&shares[owner]);  /* no thread to spare: do it here */
    work(&shares[0]);
    for (int owner = 1; owner < started; owner++) pthread_join(threads[owner], NULL);
}

/* One step on `batch` samples of `width` candidates (target first); returns the summed loss before the step.
 *
 * vectors/context: [rows, dim] (the same pointer when shared, as are their states, sums, marks and touched);
 * sums: zeroed [rows, dim] buffers; marks: zeroed [rows]; touched: [rows] scratch; gradients: [batch, width]
 * and losses: [batch] scratch. Sums and marks are left zeroed.
 */
double film2vec_step(float *vectors, float *vectors_state, float *context, float *context_state, int64_t rows,
                     int64_t dim, const int64_t *origin, const int64_t *candidates, int64_t batch, int64_t width,
                     float learning_rate, int sigmoid, float *vector_sums, float *context_sums,
                     uint8_t *vector_marks, uint8_t *context_marks, int64_t *vector_touched,
                     int64_t *context_touched, float *gradients, double *losses, int threads) {
    Step step = {
        .vectors = {vectors, vectors_state, vector_sums, vector_marks, vector_touched},
        .context = {context, context_state, context_sums, context_marks, context_touched},
        .shared = vectors == context,
        .rows = rows, .dim = dim, .batch = batch, .width = width,
        .origin = origin, .candidates = candidates,
        .learning_rate = learning_rate, .gradients = gradients, .sigmoid = sigmoid, .losses = losses,
    };
    int owners = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    Share shares[MAX_THREADS];
    for (int owner = 0; owner < owners; owner++) shares[owner] = (Share){.step = &step, .owner = owner, .owners = owners};
    run_shares(score, shares, owners);
    run_shares(accumulate, shares, owners);
    run_shares(update, shares, owners);
    double loss = 0.0;  /* summed in sample order: the same figure on any number of threads */
    for (int64_t i = 0; i < batch; i++) loss += losses[i];
    return loss;
}
