/*
 * fuzz_llama2c.c - libFuzzer target: arbitrary bytes as a llama2.c
 * checkpoint (legacy float32 or the version-2 int8 export).
 *
 * pp_llama2c_parse must return 0, or -1 with a non-empty message. When it
 * accepts the bytes, the checkpoint is converted with pp_write_model (and a
 * generated tokenizer of the right vocabulary size) into a file under /tmp,
 * which pp_model_probe must then accept. The rejections allowed are the
 * ones the writer reports with a message, and PP_ERR_NON_FINITE when the
 * norms or the channel statistics in the written file are not finite.
 *
 * Built with -DPP_FUZZ_MAIN it is a libFuzzer target. Without it,
 * tests/test_fuzz_regress.c includes this file and calls fuzz_llama2c_one.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "format.h"
#include "pprt.h"

static void fuzz_llama2c_fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_llama2c: %s: %s\n", what, detail);
    abort();
}

/* A llama2.c tokenizer with `vocab` one-byte tokens of score 0. */
static uint8_t *fuzz_llama2c_tokenizer(int32_t vocab, size_t *size) {
    *size = 4 + 9 * (size_t)vocab;
    uint8_t *bytes = malloc(*size);
    if (!bytes)
        return NULL;
    pp_put_u32(bytes, 1);
    for (int32_t i = 0; i < vocab; i++) {
        uint8_t *entry = bytes + 4 + 9 * (size_t)i;
        pp_put_u32(entry, 0);
        pp_put_u32(entry + 4, 1);
        entry[8] = (uint8_t)i;
    }
    return bytes;
}

static int fuzz_llama2c_norms_finite(const pp_weight_provider *p) {
    const size_t per_layer = (size_t)p->n_layers * (size_t)p->dim;
    for (size_t i = 0; i < per_layer; i++)
        if (!isfinite(p->attn_norm[i]) || !isfinite(p->mlp_norm[i]))
            return 0;
    for (size_t i = 0; i < (size_t)p->dim; i++)
        if (!isfinite(p->final_norm[i]))
            return 0;
    return 1;
}

/* Returns 1 if every float32 of the CHANNEL_STATS section is finite. */
static int fuzz_llama2c_stats_finite(const uint8_t *file, size_t size) {
    if (size < PP_HEADER_BYTES)
        return 0;
    const uint32_t count = pp_get_u32(file + PP_H_N_SECTIONS);
    for (uint32_t i = 0; i < count && i < PP_SECTION_TABLE_MAX; i++) {
        const uint8_t *entry = file + PP_H_SECTIONS + i * PP_SECTION_ENTRY_BYTES;
        const uint64_t offset = pp_get_u64(entry + 8);
        const uint64_t bytes = pp_get_u64(entry + 16);
        if (pp_get_u32(entry) != PP_SECTION_CHANNEL_STATS)
            continue;
        if (offset > size || bytes > size - offset)
            return 0;
        for (uint64_t j = 0; j + 4 <= bytes; j += 4) {
            float value;
            memcpy(&value, file + offset + j, sizeof value);
            if (!isfinite(value))
                return 0;
        }
    }
    return 1;
}

/* Reads a whole file into a 64-byte aligned buffer. */
static uint8_t *fuzz_llama2c_read(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *bytes = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        const long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
            bytes = aligned_alloc(64, ((size_t)n + 63) / 64 * 64);
            if (bytes && fread(bytes, 1, (size_t)n, f) != (size_t)n) {
                free(bytes);
                bytes = NULL;
            }
            *size = (size_t)n;
        }
    }
    fclose(f);
    return bytes;
}

/* Converts an accepted checkpoint and probes the result. */
static void fuzz_llama2c_convert(const pp_llama2c *model) {
    const pp_weight_provider *p = &model->provider;
    size_t tokenizer_size;
    uint8_t *tokenizer = fuzz_llama2c_tokenizer(p->vocab_size, &tokenizer_size);
    if (!tokenizer)
        return;

    char path[64];
    snprintf(path, sizeof path, "/tmp/pprt-fuzz-llama2c-%ld.ppm",
             (long)getpid());
    const pp_write_options options = {0};
    char err[256] = "";
    if (pp_write_model(path, p, tokenizer, tokenizer_size, &options, err,
                       sizeof err) != 0) {
        free(tokenizer);
        if (err[0] == '\0')
            fuzz_llama2c_fail("pp_write_model", "returned -1 without a message");
        return;
    }
    free(tokenizer);

    size_t size = 0;
    uint8_t *file = fuzz_llama2c_read(path, &size);
    remove(path);
    if (!file)
        fuzz_llama2c_fail("cannot read back the converted file", path);

    const pp_source source = {.data = file, .size = size};
    pp_model_info info;
    const pp_status status = pp_model_probe(&source, &info);
    /* NOTE: the writer checks weights for NaN and Inf but not the norms,
     * and it stores sum |w|^4 per channel as float32, which overflows to
     * Inf for weights above about 1e9. */
    const int finite =
        fuzz_llama2c_norms_finite(p) && fuzz_llama2c_stats_finite(file, size);
    const pp_status expected = finite ? PP_OK : PP_ERR_NON_FINITE;
    free(file);
    if (status != expected)
        fuzz_llama2c_fail("pp_model_probe of the converted file",
                          pp_status_string(status));
}

static void fuzz_llama2c_one(const uint8_t *data, size_t size, int convert) {
    pp_llama2c model;
    char err[512];
    err[0] = '\0';
    if (pp_llama2c_parse(data, size, &model, err, sizeof err) != 0) {
        if (err[0] == '\0')
            fuzz_llama2c_fail("pp_llama2c_parse", "returned -1 without a message");
        return;
    }
    if (convert)
        fuzz_llama2c_convert(&model);
    pp_llama2c_free(&model);
}

#ifdef PP_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_llama2c_one(data, size, 1);
    return 0;
}
#endif
