/*
 * test_determinism.c - sampled generation on the real model gives the same
 * tokens for the same seed across runs, thread counts and weight sources.
 */
#include "internal.h"
#include "model_fixture.h"

static fixture_model model;
static int have_model;

static pp_status read_from_memory(void *user, uint64_t offset, void *dst,
                                  size_t length) {
    memcpy(dst, (const uint8_t *)user + offset, length);
    return PP_OK;
}

/* Generates n tokens after "Once upon a time" with Probe Pruning at 0.2,
 * re-probing every 8 tokens, sampling at temperature 0.9 and top-p 0.9. */
static int generate(int threads, int read_source, uint64_t seed, int32_t *out,
                    int n) {
    pp_pool *pool = NULL;
    CHECK(pp_pool_create(&pool, threads) == 0);
    pp_source source = model.source;
    if (read_source) {
        source.data = NULL;
        source.read = read_from_memory;
        source.user = model.bytes;
    }
    pp_options o;
    memset(&o, 0, sizeof o);
    o.max_batch = 1;
    o.max_tokens = 16;
    o.tile_cache_bytes = 100000;
    o.workers = pp_pool_workers(pool);
    size_t bytes;
    CHECK(pp_arena_size(&source, &o, &bytes) == PP_OK);
    void *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    pp_context *ctx = NULL;
    CHECK(pp_init(&ctx, arena, bytes, &source, &o) == PP_OK);
    if (!ctx)
        return 0;

    pp_prune_config cfg;
    pp_prune_defaults(pp_info(ctx), &cfg);
    cfg.ratio = 0.2f;
    cfg.whole_tiles = 1;
    CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);

    int32_t tokens[64];
    int32_t n_prompt = 0;
    const char *prompt = "Once upon a time";
    CHECK(pp_tokenize(ctx, prompt, strlen(prompt), 1, tokens, 64, &n_prompt) == PP_OK);
    float logits[512];
    uint8_t scratch[512 * 8];
    pp_sampler sampler;
    pp_sampler_init(&sampler, 0.9f, 0.9f, seed);
    CHECK(pp_forward(ctx, tokens, 1, n_prompt, 0, PP_PROBE | PP_LAST_LOGITS, logits) == PP_OK);
    int len = n_prompt;
    for (int i = 0; i < n; i++) {
        out[i] = pp_sample(&sampler, logits, 512, scratch);
        tokens[len++] = out[i];
        if (i % 8 == 7)  /* re-probe from the last 8 tokens */
            CHECK(pp_forward(ctx, tokens + len - 8, 1, 8, len - 8,
                             PP_PROBE | PP_LAST_LOGITS, logits) == PP_OK);
        else
            CHECK(pp_forward(ctx, tokens + len - 1, 1, 1, len - 1, PP_LAST_LOGITS,
                             logits) == PP_OK);
    }
    free(arena);
    pp_pool_destroy(pool);
    return 1;
}

static void real_model_converts(void) { have_model = fixture_load(&model, 0); }

static void same_seed_same_tokens(void) {
    if (!have_model)
        return;
    enum { N = 40 };
    int32_t first[N], again[N];
    if (!generate(1, 0, 7, first, N))
        return;
    const struct { int threads, read_source; } runs[] = {{1, 0}, {2, 0}, {3, 0},
                                                         {1, 1}, {2, 1}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        generate(runs[i].threads, runs[i].read_source, 7, again, N);
        CHECKF(memcmp(first, again, sizeof first) == 0,
               "tokens differ with %d threads, %s source", runs[i].threads,
               runs[i].read_source ? "read" : "memory");
    }
    generate(1, 0, 8, again, N);
    CHECKF(memcmp(first, again, sizeof first) != 0, "seed 8 gave seed 7's tokens");
}

int main(void) {
    RUN(real_model_converts);
    RUN(same_seed_same_tokens);
    fixture_free(&model);
    return check_summary("test_determinism");
}
