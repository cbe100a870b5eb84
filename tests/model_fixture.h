/*
 * model_fixture.h - the real stories260K model converted once per test
 * program, and contexts built on it.
 */
#ifndef PP_MODEL_FIXTURE_H
#define PP_MODEL_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "convert.h"
#include "pool.h"
#include "pprt.h"

typedef struct fixture_model {
    uint8_t *bytes;  /* the converted file, 64-byte aligned */
    size_t size;
    pp_source source;
} fixture_model;

/* Loads the model file at `path` into `m`, 64-byte aligned, and deletes
 * the file. Returns 0 (with a failed check) if it cannot be read. */
static inline int fixture_take_file(fixture_model *m, const char *path) {
    size_t size;
    uint8_t *file = check_read_file(path, &size);
    remove(path);
    if (!file)
        return 0;
    memset(m, 0, sizeof *m);
    m->bytes = aligned_alloc(64, (size + 63) / 64 * 64);
    memcpy(m->bytes, file, size);
    free(file);
    m->size = size;
    m->source.data = m->bytes;
    m->source.size = size;
    return 1;
}

/* Converts the real model with `tile` channels per MLP tile (0: default).
 * Returns 0 and skips (or fails under CI) the current test when the shared
 * data is missing. */
static inline int fixture_load(fixture_model *m, int tile) {
    const char *bin = check_shared("models/stories260K/stories260K.bin");
    const char *tok = check_shared("models/stories260K/tok512.bin");
    memset(m, 0, sizeof *m);
    if (!check_require_file(bin) || !check_require_file(tok))
        return 0;

    size_t bin_size, tok_size;
    uint8_t *bin_bytes = check_read_file(bin, &bin_size);
    uint8_t *tok_bytes = check_read_file(tok, &tok_size);
    if (!bin_bytes || !tok_bytes)
        return 0;

    char err[256], path[64];
    snprintf(path, sizeof path, "/tmp/pprt-fixture-%d-%d.ppm", (int)getpid(), tile);
    pp_llama2c l2c;
    int ok = pp_llama2c_parse(bin_bytes, bin_size, &l2c, err, sizeof err) == 0;
    CHECKF(ok, "llama2.c parse failed: %s", err);
    if (ok) {
        pp_write_options o = {tile, 0, 0, 0};
        ok = pp_write_model(path, &l2c.provider, tok_bytes, tok_size, &o, err,
                            sizeof err) == 0;
        CHECKF(ok, "writing the model failed: %s", err);
        pp_llama2c_free(&l2c);
    }
    free(bin_bytes);
    free(tok_bytes);
    if (!ok)
        return 0;

    return fixture_take_file(m, path);
}

static inline void fixture_free(fixture_model *m) {
    free(m->bytes);
    memset(m, 0, sizeof *m);
}

/* A context on the model; *arena must be freed by the caller. */
static inline pp_context *fixture_context(const fixture_model *m, int batch,
                                          int tokens, pp_workers workers,
                                          const char *isa, void **arena) {
    pp_options o;
    memset(&o, 0, sizeof o);
    o.max_batch = batch;
    o.max_tokens = tokens;
    o.workers = workers;
    o.isa = isa;
    size_t bytes = 0;
    pp_status st = pp_arena_size(&m->source, &o, &bytes);
    CHECKF(st == PP_OK, "pp_arena_size: %s", pp_status_string(st));
    *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    pp_context *ctx = NULL;
    st = pp_init(&ctx, *arena, bytes, &m->source, &o);
    CHECKF(st == PP_OK, "pp_init: %s", pp_status_string(st));
    return st == PP_OK ? ctx : NULL;
}

/*
 * Writes the model that `p` describes (weights from its block callback)
 * with a filler llama2.c vocabulary of byte tokens and "t<id>" pieces,
 * MLP tiles of `tile` channels and group 32, and loads it into `m`.
 * Returns 0 (with a failed check) if writing or reading fails.
 */
static inline int fixture_synthetic(fixture_model *m, const pp_weight_provider *p,
                                    int tile) {
    const int vocab = p->vocab_size;
    uint8_t *tok = malloc(16 + (size_t)vocab * 16), *at = tok + 4;
    const uint32_t max_len = 8;
    memcpy(tok, &max_len, 4);
    for (int i = 0; i < vocab; i++) {
        char text[16];
        snprintf(text, sizeof text, i >= 3 && i < 259 ? "<0x%02X>" : "t%d",
                 i >= 3 && i < 259 ? i - 3 : i);
        const uint32_t len = (uint32_t)strlen(text);
        const float score = (float)-i;
        memcpy(at, &score, 4);
        memcpy(at + 4, &len, 4);
        memcpy(at + 8, text, len);
        at += 8 + len;
    }
    char err[256], path[64];
    snprintf(path, sizeof path, "/tmp/pprt-synthetic-%d.ppm", (int)getpid());
    pp_write_options wo = {tile, 32, 0, 0};
    const int written =
        pp_write_model(path, p, tok, (size_t)(at - tok), &wo, err, sizeof err) == 0;
    free(tok);
    CHECKF(written, "pp_write_model: %s", err);
    if (!written)
        return 0;
    return fixture_take_file(m, path);
}

/* Reads a headerless little-endian int32 or float32 reference file. */
static inline void *fixture_reference(const char *name, size_t *count) {
    const char *path = check_shared(name);
    if (!check_require_file(path))
        return NULL;
    size_t size;
    void *data = check_read_file(path, &size);
    *count = size / 4;
    return data;
}

#endif /* PP_MODEL_FIXTURE_H */
