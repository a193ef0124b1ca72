/* film2vec's training step on the CPU, fused into one pass over the batch: the same minibatch step as
 * film2vec/train/model.py's `_train_step` (scores, closed-form gradients from the weights before the step,
 * row-wise Adagrad), without materialising the [batch, candidates, dim] tensors the tensor code needs.
 *
 * Threads are plain pthreads forked and joined up to three times a step, never spinning: the trainer often shares
 * the machine with Spark sampling the next season, and OpenMP's spinning barriers (torch's runtime, whose wait
 * policy is fixed when torch loads) made two threads 5x slower than one there. Each row belongs to one thread
 * (row % threads), which sums its gradients in sample order and updates it, so the result does not depend on
 * the number of threads. On one thread the sums are taken as each sample is scored, while its rows are in cache,
 * and the rows of the samples two ahead are prefetched: the rows are scattered over matrices larger than L2,
 * and waiting on them was most of a step (benchmarks/bench_trainer.py). Built and loaded by
 * film2vec/train/c_step.py.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define MAX_THREADS 256

typedef float lanes16 __attribute__((vector_size(64)));
typedef float lanes8 __attribute__((vector_size(32)));
typedef float lanes4 __attribute__((vector_size(16)));

/* A dot product; rows of a multiple of 16 floats are summed in 16 lanes, then the lanes pairwise (a compiler
 * without -ffast-math adds a reduction's lanes one by one). */
static inline float dot(const float *a, const float *b, int64_t dim) {
    if (dim % 16 == 0) {
        lanes16 sum = {0}, x, y;
        for (int64_t d = 0; d < dim; d += 16) {
            memcpy(&x, a + d, sizeof x);
            memcpy(&y, b + d, sizeof y);
            sum += x * y;
        }
        union { lanes16 all; lanes8 half[2]; } sixteen = {sum};
        union { lanes8 all; lanes4 half[2]; } eight = {sixteen.half[0] + sixteen.half[1]};
        lanes4 four = eight.half[0] + eight.half[1];
        return (four[0] + four[2]) + (four[1] + four[3]);
    }
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
    float total = 0.0f;  /* each term is at most 1: float holds the sum of a few thousand */
    for (int64_t k = 0; k < width; k++) total += gradient[k] = expf(scores[k] - top);
    float inverse = 1.0f / total;
    for (int64_t k = 0; k < width; k++) gradient[k] *= inverse;
    gradient[0] -= 1.0f;
    return log((double)total) + top - scores[0];
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

static inline void touch(const Side *side, int64_t row, int64_t *n_touched) {
    if (!side->marks[row]) {
        side->marks[row] = 1;
        side->touched[(*n_touched)++] = row;
    }
}

/* Sample i's gradients summed into the rows this owner owns, reading the weights before the step: each
 * candidate's as it comes, the origin's over its candidates, then added to its sum. */
static void accumulate_sample(const Step *s, int64_t i, Share *share) {
    const int64_t o = s->origin[i], *row = s->candidates + i * s->width, dim = s->dim, owners = share->owners;
    const float *gradient = s->gradients + i * s->width, *origin_row = s->vectors.matrix + o * dim;
    int owns_origin = o % owners == share->owner;
    float origin_sum[dim];
    if (owns_origin) memset(origin_sum, 0, sizeof origin_sum);
    for (int64_t k = 0; k < s->width; k++) {
        if (owns_origin) add_scaled(origin_sum, s->context.matrix + row[k] * dim, gradient[k], dim);
        if (row[k] % owners != share->owner) continue;
        touch(&s->context, row[k], s->shared ? &share->vectors_end : &share->context_end);
        add_scaled(s->context.sums + row[k] * dim, origin_row, gradient[k], dim);
    }
    if (owns_origin) {
        touch(&s->vectors, o, &share->vectors_end);
        add_scaled(s->vectors.sums + o * dim, origin_sum, 1.0f, dim);
    }
}

#define PREFETCH_AHEAD 2

/* Asks for sample i's rows, and their gradient sums when they are summed as they are scored. */
static inline void prefetch_sample(const Step *s, int64_t i, int sums) {
    const int64_t *row = s->candidates + i * s->width, bytes = s->dim * (int64_t)sizeof(float);
    for (int64_t k = 0; k < s->width; k++) {
        const char *line = (const char *)(s->context.matrix + row[k] * s->dim);
        const char *sum = (const char *)(s->context.sums + row[k] * s->dim);
        for (int64_t b = 0; b < bytes; b += 64) {
            __builtin_prefetch(line + b, 0, 3);
            if (sums) __builtin_prefetch(sum + b, 1, 3);
        }
    }
}

/* Phase 1, samples split into contiguous stretches: scores and d(loss)/d(scores), weights untouched; on one
 * thread, the sums too (phase 2 then has nothing left). */
static void *score(void *argument) {
    Share *share = argument;
    const Step *s = share->step;
    int64_t begin = s->batch * share->owner / share->owners, end = s->batch * (share->owner + 1) / share->owners;
    int fused = share->owners == 1;
    float scores[s->width];
    for (int64_t i = begin; i < end; i++) {
        const float *origin_row = s->vectors.matrix + s->origin[i] * s->dim;
        const int64_t *row = s->candidates + i * s->width;
        if (i + PREFETCH_AHEAD < end) prefetch_sample(s, i + PREFETCH_AHEAD, fused);
        for (int64_t k = 0; k < s->width; k++) scores[k] = dot(origin_row, s->context.matrix + row[k] * s->dim, s->dim);
        s->losses[i] = loss_and_gradient(scores, s->gradients + i * s->width, s->width, s->sigmoid);
        if (fused) accumulate_sample(s, i, share);
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

/* Phase 2 on several threads, by row ownership: sum the owned rows' gradients in sample order (still reading
 * the weights before the step, so no row may change until every owner is done). */
static void *accumulate(void *argument) {
    Share *share = argument;
    for (int64_t i = 0; i < share->step->batch; i++) accumulate_sample(share->step, i, share);
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
    for (int owner = 0; owner < owners; owner++) {
        int64_t stretch = (rows + owners - 1) / owners * owner; /* an owner has at most that many rows */
        shares[owner] = (Share){&step, owner, owners, stretch, stretch, stretch};
    }
    run_shares(score, shares, owners);
    if (owners > 1) run_shares(accumulate, shares, owners);
    run_shares(update, shares, owners);
    double loss = 0.0;  /* summed in sample order: the same figure on any number of threads */
    for (int64_t i = 0; i < batch; i++) loss += losses[i];
    return loss;
}
