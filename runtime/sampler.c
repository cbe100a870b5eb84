/*
 * sampler.c - picks the next token from logits: greedy argmax, temperature
 * sampling, and top-p (nucleus) sampling.
 *
 * The generator is xorshift64* (shifts 12, 25, 27, then a multiply by
 * 0x2545F4914F6CDD1D, keeping the high 32 bits), seeded through the
 * splitmix64 finalizer so that nearby seeds give unrelated sequences. Top-p
 * builds a max-heap of (probability, id) pairs in the caller's scratch and
 * pops only until the popped mass exceeds top_p, so it costs O(n + k log n)
 * for a nucleus of k tokens.
 */
#include <math.h>

#include "pprt.h"

/* One entry of the top-p scratch buffer, 8 bytes. */
typedef struct pp_candidate {
    float probability;
    int32_t id;
} pp_candidate;

static uint64_t mix_seed(uint64_t seed) {
    uint64_t z = seed + 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

void pp_sampler_init(pp_sampler *sampler, float temperature, float top_p,
                     uint64_t seed) {
    sampler->temperature = temperature;
    sampler->top_p = top_p;
    sampler->state = mix_seed(seed);
    /* xorshift never leaves the all-zero state. */
    if (sampler->state == 0)
        sampler->state = 0x9E3779B97F4A7C15u;
}

static uint32_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Du) >> 32);
}

/* Returns a uniform float in [0, 1) with 24 random bits. */
static float random_unit(uint64_t *state) {
    return (float)(next_random(state) >> 8) * (1.0f / 16777216.0f);
}

/* Returns the index of the largest value, the lowest on ties. NaN is skipped,
   and an all-NaN array gives 0. */
static int32_t argmax(const float *values, int32_t n) {
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++) {
        if (isnan(values[i]))
            continue;
        if (best < 0 || values[i] > values[best])
            best = i;
    }
    return best < 0 ? 0 : best;
}

/* Samples an index from probabilities that sum to 1, with `coin` in [0, 1). */
static int32_t sample_all(const float *probabilities, int32_t n, float coin) {
    float cumulative = 0.0f;
    int32_t last_positive = 0;
    for (int32_t i = 0; i < n; i++) {
        if (probabilities[i] <= 0.0f)
            continue;
        cumulative += probabilities[i];
        last_positive = i;
        if (coin < cumulative)
            return i;
    }
    /* Rounding left the total just under `coin`. */
    return last_positive;
}

/* Orders candidates by descending probability, then ascending id. */
static int comes_before(const pp_candidate *a, const pp_candidate *b) {
    return a->probability > b->probability ||
           (a->probability == b->probability && a->id < b->id);
}

static void sift_down(pp_candidate *heap, size_t root, size_t count) {
    for (;;) {
        size_t first = root;
        const size_t left = 2 * root + 1;
        const size_t right = left + 1;
        if (left < count && comes_before(&heap[left], &heap[first]))
            first = left;
        if (right < count && comes_before(&heap[right], &heap[first]))
            first = right;
        if (first == root)
            return;
        const pp_candidate swap = heap[root];
        heap[root] = heap[first];
        heap[first] = swap;
        root = first;
    }
}

/*
 * Samples from the smallest set of most likely tokens whose probabilities
 * sum to more than `top_p`, renormalized.
 */
static int32_t sample_top_p(const float *probabilities, int32_t n,
                            float top_p, float coin,
                            pp_candidate *candidates) {
    const size_t count = (size_t)n;
    for (size_t i = 0; i < count; i++) {
        candidates[i].probability = probabilities[i];
        candidates[i].id = (int32_t)i;
    }
    for (size_t i = count / 2; i-- > 0;)
        sift_down(candidates, i, count);

    /* Each pop moves the next most likely token to the end of the array, so
       the nucleus ends up in candidates[heap_size .. count), most likely
       last. */
    size_t heap_size = count;
    float mass = 0.0f;
    while (heap_size > 0 && !(mass > top_p)) {
        heap_size--;
        const pp_candidate top = candidates[0];
        candidates[0] = candidates[heap_size];
        candidates[heap_size] = top;
        sift_down(candidates, 0, heap_size);
        mass += top.probability;
    }

    const float target = coin * mass;
    float cumulative = 0.0f;
    for (size_t i = count; i-- > heap_size;) {
        cumulative += candidates[i].probability;
        if (target < cumulative)
            return candidates[i].id;
    }
    return candidates[heap_size].id;
}

int32_t pp_sample(pp_sampler *sampler, float *logits, int32_t n,
                  void *scratch) {
    if (!sampler || !logits || n <= 0)
        return -1;
    const float temperature = sampler->temperature;
    if (!(temperature > 0.0f))
        return argmax(logits, n);

    /* Softmax of logits / temperature, scaling after subtracting the
       maximum so a tiny temperature cannot overflow. An infinite maximum
       leaves nothing to sample, so it falls back to the argmax. */
    const int32_t top = argmax(logits, n);
    const float max = logits[top];
    if (!isfinite(max))
        return top;
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        const float scaled = (logits[i] - max) / temperature;
        logits[i] = isnan(scaled) ? 0.0f : expf(scaled);
        sum += logits[i];
    }
    for (int32_t i = 0; i < n; i++)
        logits[i] /= sum;

    const float coin = random_unit(&sampler->state);
    const float top_p = sampler->top_p;
    if (!(top_p > 0.0f && top_p < 1.0f))
        return sample_all(logits, n, coin);
    if (!scratch)
        return -1;
    return sample_top_p(logits, n, top_p, coin, scratch);
}
