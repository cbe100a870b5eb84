/*
 * test_streaming.c - weights from a read source through the tile cache: the
 * same logits as from memory, and proof from an instrumented source that
 * decoding never reads a pruned tile.
 */
#include <math.h>

#include "file_source.h"
#include "internal.h"
#include "model_fixture.h"

static fixture_model model;
static int have_model;

/* A read source over the converted bytes that logs every range read. */
typedef struct logged_read {
    uint64_t offset, length;
} logged_read;

typedef struct read_log {
    const uint8_t *bytes;
    logged_read *reads;
    size_t count, capacity;
    int fail_after;  /* fail reads once this many succeeded; -1 never */
} read_log;

static pp_status logged_source_read(void *user, uint64_t offset, void *dst,
                                    size_t length) {
    read_log *log = user;
    if (log->fail_after >= 0 && (int)log->count >= log->fail_after)
        return PP_ERR_IO;
    if (log->count == log->capacity) {
        log->capacity = log->capacity ? 2 * log->capacity : 1024;
        log->reads = realloc(log->reads, log->capacity * sizeof *log->reads);
    }
    log->reads[log->count++] = (logged_read){offset, length};
    memcpy(dst, log->bytes + offset, length);
    return PP_OK;
}

static pp_context *streaming_context(read_log *log, pp_source *source,
                                     uint64_t cache_bytes, void **arena) {
    memset(log, 0, sizeof *log);
    log->bytes = model.bytes;
    log->fail_after = -1;
    source->data = NULL;
    source->size = model.size;
    source->read = logged_source_read;
    source->user = log;

    pp_options o;
    memset(&o, 0, sizeof o);
    o.max_batch = 8;
    o.max_tokens = 128;
    o.tile_cache_bytes = cache_bytes;
    size_t bytes = 0;
    pp_status st = pp_arena_size(source, &o, &bytes);
    CHECKF(st == PP_OK, "pp_arena_size: %s", pp_status_string(st));
    *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    pp_context *ctx = NULL;
    st = pp_init(&ctx, *arena, bytes, source, &o);
    CHECKF(st == PP_OK, "pp_init: %s", pp_status_string(st));
    return ctx;
}

static void calibrate(pp_context *ctx, const int32_t *calib) {
    int32_t inputs[8 * 128];
    for (int b = 0; b < 16; b++) {
        for (int r = 0; r < 8; r++)
            memcpy(inputs + r * 128, calib + (b * 8 + r) * 129, 128 * sizeof(int32_t));
        CHECK(pp_calibrate(ctx, inputs, 8, 128) == PP_OK);
    }
}

static void real_model_converts(void) { have_model = fixture_load(&model, 0); }

/* Memory, a cache holding everything, and a one-slot cache give bitwise
 * the same logits for a probed batch and decode steps. */
static void read_source_matches_memory(void) {
    if (!have_model)
        return;
    size_t n;
    int32_t *calib = fixture_reference("reference/c_calib_tokens.i32", &n);
    int32_t *batch = fixture_reference("reference/c_batch0_tokens.i32", &n);
    if (!calib || !batch)
        return;
    float *expected = malloc(sizeof(float) * 512 * 4);
    float *logits = malloc(sizeof(float) * 512 * 4);
    /* Memory, then caches of one slot per pool, a third of the weights
     * (prefetch runs), everything; 2 threads so prefetch reads overlap. */
    const uint64_t caches[] = {0, 0, 120000, 1u << 30};
    pp_pool *pool = NULL;
    CHECK(pp_pool_create(&pool, 2) == 0);

    for (int run = 0; run < 4; run++) {
        void *arena;
        read_log log;
        pp_source source;
        pp_context *ctx = run == 0
            ? fixture_context(&model, 8, 128, pp_pool_workers(NULL), NULL, &arena)
            : streaming_context(&log, &source, caches[run], &arena);
        ctx->workers = pp_pool_workers(pool);
        ctx->n_threads = 2;
        calibrate(ctx, calib);
        pp_prune_config cfg;
        pp_prune_defaults(pp_info(ctx), &cfg);
        cfg.ratio = 0.4f;
        cfg.whole_tiles = 1;
        CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);

        float *out = run == 0 ? expected : logits;
        CHECK(pp_forward(ctx, batch, 1, 64, 0, PP_PROBE | PP_LAST_LOGITS, out) == PP_OK);
        for (int i = 1; i < 4; i++)
            CHECK(pp_forward(ctx, batch + 63 + i, 1, 1, 63 + i, PP_LAST_LOGITS,
                             out + 512 * i) == PP_OK);
        if (run > 0) {
            CHECKF(memcmp(expected, logits, sizeof(float) * 512 * 4) == 0,
                   "cache of %llu bytes changes the logits",
                   (unsigned long long)caches[run]);
            free(log.reads);
        }
        if (run == 2)
            CHECKF(ctx->cache.prefetched > 0, "no part was prefetched");
        free(arena);
    }
    pp_pool_destroy(pool);
    free(expected);
    free(logits);
    free(calib);
    free(batch);
}

/* File range of one part (see pp_tile_part). */
static void part_range(const pp_context *c, int layer, pp_part part, int index,
                       uint64_t *begin, uint64_t *bytes) {
    const pp_dims *d = &c->dims;
    const uint64_t qkv = pp_matrix_bytes(d->head_dim, d->dim, d->group);
    const uint64_t heads = d->n_heads, kv = d->n_kv_heads;
    const uint64_t tiles = pp_mlp_tile_count(d);
    uint64_t entry = (uint64_t)index;  /* directory: q, kv, o, gate/up, down */
    switch (part) {
    case PP_PART_Q: *bytes = qkv; break;
    case PP_PART_KV: entry += heads; *bytes = 2 * qkv; break;
    case PP_PART_O:
        entry += heads + kv;
        *bytes = pp_matrix_bytes(d->dim, d->head_dim, d->group);
        break;
    case PP_PART_GATE_UP:
        entry += 2 * heads + kv;
        *bytes = pp_matrix_bytes(2 * d->tile, d->dim, d->group);
        break;
    case PP_PART_DOWN:
        entry += 2 * heads + kv + tiles;
        *bytes = pp_matrix_bytes(d->dim, d->tile, d->group);
        break;
    }
    *begin = c->weights.part_offset[(size_t)layer * (2 * heads + kv + 2 * tiles) + entry];
}

static int overlaps(const read_log *log, size_t first, uint64_t begin, uint64_t bytes) {
    for (size_t i = first; i < log->count; i++)
        if (log->reads[i].offset < begin + bytes &&
            begin < log->reads[i].offset + log->reads[i].length)
            return 1;
    return 0;
}

/*
 * With a one-slot-per-kind cache every part a decode step needs is read
 * again, so the reads of a step show exactly what decoding touches: no
 * pruned part, and in bytes the kept parts, every k/v part, the classifier
 * and one embedding row.
 */
static void decode_never_reads_pruned_tiles(void) {
    if (!have_model)
        return;
    size_t n;
    int32_t *calib = fixture_reference("reference/c_calib_tokens.i32", &n);
    int32_t *batch = fixture_reference("reference/c_batch0_tokens.i32", &n);
    if (!calib || !batch)
        return;
    void *arena;
    read_log log;
    pp_source source;
    pp_context *ctx = streaming_context(&log, &source, 0, &arena);
    calibrate(ctx, calib);
    pp_prune_config cfg;
    pp_prune_defaults(pp_info(ctx), &cfg);
    cfg.ratio = 0.4f;
    cfg.whole_tiles = 1;
    CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);

    float logits[512];
    CHECK(pp_forward(ctx, batch, 1, 64, 0, PP_PROBE | PP_LAST_LOGITS, logits) == PP_OK);

    const pp_dims *d = &ctx->dims;
    for (int step = 0; step < 4; step++) {
        const size_t first = log.count;
        pp_stats_reset(ctx);
        CHECK(pp_forward(ctx, batch + 64 + step, 1, 1, 64 + step, PP_LAST_LOGITS,
                         logits) == PP_OK);

        /* The classifier, and the 8-row block of the embedding row. */
        uint64_t expected = pp_q8_matrix_bytes(d->vocab_size, d->dim, d->group) +
                            pp_q8_block_bytes(d->dim, d->group);
        int pruned_read = 0;
        for (int l = 0; l < (int)d->n_layers; l++) {
            uint8_t heads[8], chans[172];
            pp_kept_get(ctx, l, heads, chans);
            for (int h = 0; h < (int)d->n_heads; h++) {
                const pp_part head_parts[2] = {PP_PART_Q, PP_PART_O};
                for (int k = 0; k < 2; k++) {
                    const pp_part part = head_parts[k];
                    uint64_t begin, bytes;
                    part_range(ctx, l, part, h, &begin, &bytes);
                    if (heads[h])
                        expected += bytes;
                    else
                        pruned_read += overlaps(&log, first, begin, bytes);
                }
            }
            for (int h = 0; h < (int)d->n_kv_heads; h++) {
                uint64_t begin, bytes;
                part_range(ctx, l, PP_PART_KV, h, &begin, &bytes);
                expected += bytes;
            }
            for (int t = 0; t < (int)pp_mlp_tile_count(d); t++) {
                for (pp_part part = PP_PART_GATE_UP; part <= PP_PART_DOWN; part++) {
                    uint64_t begin, bytes;
                    part_range(ctx, l, part, t, &begin, &bytes);
                    if (chans[t * d->tile])
                        expected += bytes;
                    else
                        pruned_read += overlaps(&log, first, begin, bytes);
                }
            }
        }
        pp_stats stats;
        pp_stats_get(ctx, &stats);
        CHECKF(pruned_read == 0, "step %d read %d pruned parts", step, pruned_read);
        CHECKF(stats.backing_bytes_read == expected,
               "step %d read %llu bytes from the source, expected %llu", step,
               (unsigned long long)stats.backing_bytes_read,
               (unsigned long long)expected);
        CHECK(stats.cache_hits == 0);
        CHECKF((double)stats.weight_bytes_read < 0.75 * (double)stats.weight_bytes_dense,
               "step %d requested %llu of %llu dense bytes", step,
               (unsigned long long)stats.weight_bytes_read,
               (unsigned long long)stats.weight_bytes_dense);
    }

    /* A cache large enough for everything reads nothing more once warm. */
    free(log.reads);
    free(arena);
    ctx = streaming_context(&log, &source, 1u << 30, &arena);
    CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);
    CHECK(pp_forward(ctx, batch, 1, 64, 0, PP_PROBE | PP_LAST_LOGITS, logits) == PP_OK);
    CHECK(pp_forward(ctx, batch + 64, 1, 1, 64, PP_LAST_LOGITS, logits) == PP_OK);
    pp_stats_reset(ctx);
    CHECK(pp_forward(ctx, batch + 65, 1, 1, 65, PP_LAST_LOGITS, logits) == PP_OK);
    pp_stats stats;
    pp_stats_get(ctx, &stats);
    CHECKF(stats.backing_bytes_read ==
               pp_q8_block_bytes(ctx->dims.dim, ctx->dims.group),
           "a warm full cache still read %llu bytes",
           (unsigned long long)stats.backing_bytes_read);
    CHECK(stats.cache_misses == 0 && stats.cache_hits > 0);

    free(log.reads);
    free(arena);
    free(calib);
    free(batch);
}

/* A source that fails mid-run: the call returns PP_ERR_IO, and once the
 * source works again the context runs and matches a clean run. */
static void failing_read_is_reported(void) {
    if (!have_model)
        return;
    void *arena;
    read_log log;
    pp_source source;
    pp_context *ctx = streaming_context(&log, &source, 0, &arena);
    int32_t tokens[4] = {1, 403, 407, 261};
    float logits[512], clean[512];
    CHECK(pp_forward(ctx, tokens, 1, 4, 0, PP_LAST_LOGITS, clean) == PP_OK);

    log.fail_after = (int)log.count + 10;
    CHECK(pp_forward(ctx, tokens, 1, 4, 0, PP_LAST_LOGITS, logits) == PP_ERR_IO);
    log.fail_after = -1;
    CHECK(pp_forward(ctx, tokens, 1, 4, 0, PP_LAST_LOGITS, logits) == PP_OK);
    CHECK(memcmp(clean, logits, sizeof logits) == 0);
    free(log.reads);
    free(arena);
}

/* A source whose reads fail once each (as an interrupted bus transfer
 * would) and then succeed: the tile cache retries, so the call succeeds
 * with the clean logits. */
typedef struct flaky {
    const uint8_t *bytes;
    int calls;
} flaky;

static pp_status flaky_read(void *user, uint64_t offset, void *dst, size_t length) {
    flaky *f = user;
    if (f->calls++ % 2 == 0)
        return PP_ERR_IO;
    memcpy(dst, f->bytes + offset, length);
    return PP_OK;
}

static void transient_read_errors_retried(void) {
    if (!have_model)
        return;
    void *arena;
    read_log log;
    pp_source source;
    pp_context *ctx = streaming_context(&log, &source, 0, &arena);
    int32_t tokens[4] = {1, 403, 407, 261};
    float clean[512], logits[512];
    CHECK(pp_forward(ctx, tokens, 1, 4, 0, PP_LAST_LOGITS, clean) == PP_OK);

    /* Same context, now through the flaky source. */
    flaky f = {model.bytes, 1};
    source.read = flaky_read;
    source.user = &f;
    pp_cache_reset(ctx);
    CHECK(pp_forward(ctx, tokens, 1, 4, 0, PP_LAST_LOGITS, logits) == PP_OK);
    CHECK(memcmp(clean, logits, sizeof logits) == 0);
    CHECK(f.calls > 10);
    free(log.reads);
    free(arena);
}

/* The port's pread source: a read past the end of the file is an error,
 * not a short buffer used as if it were whole. */
static void port_read_past_end_fails(void) {
    if (!have_model)
        return;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/pprt-port-%d.bin", (int)getpid());
    FILE *f = fopen(path, "wb");
    fwrite(model.bytes, 1, 1000, f);
    fclose(f);
    pp_file_source file;
    CHECK(pp_file_open_read(&file, path, 0.0, err, sizeof err) == 0);
    uint8_t buffer[100];
    CHECK(file.source.read(file.source.user, 900, buffer, 100) == PP_OK);
    CHECK(memcmp(buffer, model.bytes + 900, 100) == 0);
    CHECK(file.source.read(file.source.user, 950, buffer, 100) == PP_ERR_IO);
    pp_file_close(&file);
    remove(path);
}

/* Bytes of the slots of pool p, and of all its items. */
static uint64_t pool_slot_bytes(const pp_context *ctx, int p) {
    return (uint64_t)ctx->cache.pool[p].n_slots * ctx->cache.pool[p].slot_bytes;
}

static uint64_t pool_all_bytes(const pp_context *ctx, int p) {
    return (uint64_t)ctx->cache.pool[p].n_items * ctx->cache.pool[p].slot_bytes;
}

/* The k/v rows and the classifier are read for every token, so they get
 * every slot they need when they fit in the budget, and the pruned kinds
 * share the rest. A smaller budget is split in proportion to the model's
 * bytes of each kind. */
static void cache_pools_favor_unpruned_parts(void) {
    if (!have_model)
        return;
    read_log log;
    pp_source source;
    void *arena;
    const int always[] = {PP_POOL_KV, PP_POOL_CLASSIFIER};

    pp_context *ctx = streaming_context(&log, &source, 0, &arena);
    uint64_t always_bytes = 0, total = 0;
    for (int p = 0; p < PP_POOL_COUNT; p++)
        total += pool_all_bytes(ctx, p);
    for (int i = 0; i < 2; i++)
        always_bytes += pool_all_bytes(ctx, always[i]);
    free(log.reads);
    free(arena);

    /* Room for them and half the rest: they are cached whole. */
    const uint64_t budget = always_bytes + (total - always_bytes) / 2;
    ctx = streaming_context(&log, &source, budget, &arena);
    for (int i = 0; i < 2; i++)
        CHECKF(ctx->cache.pool[always[i]].n_slots == ctx->cache.pool[always[i]].n_items,
               "pool %d has %d of %d slots", always[i],
               ctx->cache.pool[always[i]].n_slots, ctx->cache.pool[always[i]].n_items);
    uint64_t used = 0;
    for (int p = 0; p < PP_POOL_COUNT; p++)
        used += pool_slot_bytes(ctx, p);
    CHECK(used <= budget);
    CHECKF((double)pool_slot_bytes(ctx, PP_POOL_GATE_UP) >
               0.9 * (double)(budget - always_bytes) *
                   (double)pool_all_bytes(ctx, PP_POOL_GATE_UP) /
                   (double)(total - always_bytes),
           "gate/up got %llu bytes of slots",
           (unsigned long long)pool_slot_bytes(ctx, PP_POOL_GATE_UP));
    free(log.reads);
    free(arena);

    /* Less than their size: every pool gets its proportional share. */
    ctx = streaming_context(&log, &source, always_bytes - 1, &arena);
    CHECK(ctx->cache.pool[PP_POOL_CLASSIFIER].n_slots <
          ctx->cache.pool[PP_POOL_CLASSIFIER].n_items);
    free(log.reads);
    free(arena);
}

/* Bytes read from the source by dense decode step 8 after a 16-token
 * prompt, through a cache of cache_bytes, on one thread. */
static uint64_t decode_backing_bytes(const int32_t *tokens, uint64_t cache_bytes,
                                     uint64_t *hits) {
    read_log log;
    pp_source source;
    void *arena;
    float *logits = malloc(sizeof(float) * 512);
    pp_context *ctx = streaming_context(&log, &source, cache_bytes, &arena);
    CHECK(pp_forward(ctx, tokens, 1, 16, 0, PP_LAST_LOGITS, logits) == PP_OK);
    for (int step = 0; step < 8; step++) {
        if (step == 7)
            pp_stats_reset(ctx);
        CHECK(pp_forward(ctx, tokens + 16 + step, 1, 1, 16 + step,
                         PP_LAST_LOGITS, logits) == PP_OK);
    }
    pp_stats stats;
    pp_stats_get(ctx, &stats);
    *hits = stats.cache_hits;
    free(log.reads);
    free(arena);
    free(logits);
    return stats.backing_bytes_read;
}

/* A cache smaller than what one token reads keeps part of it resident:
 * decoding reads less from the source the larger the cache, and never
 * more than with the smallest cache. */
static void small_caches_keep_parts(void) {
    if (!have_model)
        return;
    size_t n;
    int32_t *tokens = fixture_reference("reference/c_batch0_tokens.i32", &n);
    if (!tokens)
        return;
    uint64_t hits[3];
    const uint64_t caches[3] = {0, 60000, 120000};
    uint64_t bytes[3];
    for (int i = 0; i < 3; i++)
        bytes[i] = decode_backing_bytes(tokens, caches[i], &hits[i]);
    CHECKF(bytes[1] < bytes[0] && bytes[2] < bytes[1],
           "bytes read per token with caches of 0, 60000 and 120000 bytes: "
           "%llu, %llu, %llu",
           (unsigned long long)bytes[0], (unsigned long long)bytes[1],
           (unsigned long long)bytes[2]);
    CHECKF(hits[1] > 0 && hits[2] > hits[1], "cache hits %llu, %llu",
           (unsigned long long)hits[1], (unsigned long long)hits[2]);
    free(tokens);
}

int main(void) {
    RUN(real_model_converts);
    RUN(read_source_matches_memory);
    RUN(decode_never_reads_pruned_tiles);
    RUN(cache_pools_favor_unpruned_parts);
    RUN(small_caches_keep_parts);
    RUN(failing_read_is_reported);
    RUN(transient_read_errors_retried);
    RUN(port_read_past_end_fails);
    fixture_free(&model);
    return check_summary("test_streaming");
}
