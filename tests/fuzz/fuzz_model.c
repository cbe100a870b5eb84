/*
 * fuzz_model.c - libFuzzer target: arbitrary bytes as a pprt model file.
 *
 * Input: one control byte, then the model file.
 *   bit 0  recompute the CRC-32 of every section that the table places
 *          inside the file, then the header CRC, so mutations reach the
 *          structural checks behind the checksums
 *   bit 1  PP_VERIFY_WEIGHTS at init
 *   bit 2  probe and size through a read callback instead of memory
 *   bit 3  run the forward pass with Probe Pruning (ratio 0.5, PP_PROBE)
 *
 * The file goes through pp_model_probe, pp_arena_size and, when the arena
 * is at most MAX_ARENA_BYTES, pp_init and one pp_forward of two tokens.
 * The target aborts when the three calls disagree on the status, or when
 * init rejects a file that the probe accepted for any reason other than the
 * weight checksum.
 *
 * Built with -DPP_FUZZ_MAIN it is a libFuzzer target. Without it,
 * tests/test_fuzz_regress.c includes this file and calls fuzz_model_one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "pprt.h"

#define FUZZ_MODEL_MAX_ARENA_BYTES (64u << 20)

enum {
    FUZZ_MODEL_REPAIR_CRC = 1 << 0,
    FUZZ_MODEL_VERIFY_WEIGHTS = 1 << 1,
    FUZZ_MODEL_READ_SOURCE = 1 << 2,
    FUZZ_MODEL_PROBE_PRUNING = 1 << 3,
};

/* Reports a broken invariant and aborts, so libFuzzer records the input. */
static void fuzz_model_fail(const char *what, pp_status expected,
                            pp_status actual) {
    fprintf(stderr, "fuzz_model: %s: expected %s, got %s\n", what,
            pp_status_string(expected), pp_status_string(actual));
    abort();
}

/* Rewrites every in-file section CRC and then the header CRC. */
static void fuzz_model_repair_crc(uint8_t *file, size_t size) {
    if (size < PP_HEADER_BYTES)
        return;
    uint32_t count = pp_get_u32(file + PP_H_N_SECTIONS);
    if (count > PP_SECTION_TABLE_MAX)
        count = PP_SECTION_TABLE_MAX;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *entry = file + PP_H_SECTIONS + i * PP_SECTION_ENTRY_BYTES;
        const uint64_t offset = pp_get_u64(entry + 8);
        const uint64_t bytes = pp_get_u64(entry + 16);
        if (offset <= size && bytes <= size - offset)
            pp_put_u32(entry + 4, pp_crc32(0, file + offset, (size_t)bytes));
    }
    pp_put_u32(file + PP_H_CRC, pp_crc32(0, file, PP_H_CRC));
}

static pp_status fuzz_model_read(void *user, uint64_t offset, void *dst,
                                 size_t length) {
    /* pp_source_read has checked the range against the source size. */
    memcpy(dst, (const uint8_t *)user + offset, length);
    return PP_OK;
}

/* Runs a forward pass of two tokens on a context that init accepted. */
static void fuzz_model_forward(pp_context *context, int probe_pruning) {
    const pp_model_info *info = pp_info(context);
    const int32_t tokens[2] = {info->bos_id, info->vocab_size - 1};
    float *logits = malloc(2 * (size_t)info->vocab_size * sizeof *logits);
    if (!logits)
        return;

    uint32_t flags = 0;
    if (probe_pruning) {
        pp_prune_config config;
        pp_prune_defaults(info, &config);
        config.method = PP_METHOD_PP;
        config.ratio = 0.5f;
        const pp_status status = pp_set_pruning(context, &config);
        if (status != PP_OK)
            fuzz_model_fail("pp_set_pruning on a valid context", PP_OK, status);
        flags = PP_PROBE;
    }

    /* NaN or Inf from extreme weights is a valid outcome; a crash is not. */
    const pp_status status = pp_forward(context, tokens, 1, 2, 0, flags, logits);
    if (status != PP_OK && status != PP_ERR_NON_FINITE)
        fuzz_model_fail("pp_forward of two valid tokens", PP_OK, status);
    free(logits);
}

static void fuzz_model_one(const uint8_t *data, size_t size) {
    if (size < 1)
        return;
    const uint8_t control = data[0];
    const size_t file_size = size - 1;

    /* The runtime reads float scales straight from the file, so the file
     * starts at a 64-byte boundary as a loaded or mapped file would. */
    uint8_t *file = aligned_alloc(64, (file_size + 63) / 64 * 64 + 64);
    if (!file)
        return;
    memcpy(file, data + 1, file_size);
    if (control & FUZZ_MODEL_REPAIR_CRC)
        fuzz_model_repair_crc(file, file_size);

    pp_source source = {.data = file, .size = file_size};
    if (control & FUZZ_MODEL_READ_SOURCE)
        source = (pp_source){.size = file_size, .read = fuzz_model_read,
                             .user = file};

    pp_model_info info;
    const pp_status probed = pp_model_probe(&source, &info);

    /* Small limits keep the KV cache and history small for any model. */
    const pp_options options = {
        .max_batch = 1,
        .max_tokens = 2,
        .max_context = 4,
        .history_len = 4,
        .flags = (control & FUZZ_MODEL_VERIFY_WEIGHTS) ? PP_VERIFY_WEIGHTS : 0,
    };
    size_t arena_bytes = 0;
    const pp_status sized = pp_arena_size(&source, &options, &arena_bytes);
    if (probed != PP_OK) {
        if (sized != probed)
            fuzz_model_fail("pp_arena_size on a rejected file", probed, sized);
        free(file);
        return;
    }
    if (source.read) {
        /* Sizing needs the tokenizer section in memory. */
        if (sized != PP_ERR_UNSUPPORTED)
            fuzz_model_fail("pp_arena_size with a read source",
                            PP_ERR_UNSUPPORTED, sized);
        free(file);
        return;
    }
    /* The tokenizer can still reject the BOS or EOS id or its text size. */
    if (sized != PP_OK) {
        if (sized != PP_ERR_CORRUPT && sized != PP_ERR_UNSUPPORTED)
            fuzz_model_fail("pp_arena_size on a probed file", PP_OK, sized);
        free(file);
        return;
    }
    if (arena_bytes > FUZZ_MODEL_MAX_ARENA_BYTES) {
        free(file);
        return;
    }

    void *arena = aligned_alloc(64, (arena_bytes + 63) / 64 * 64);
    pp_context *context = NULL;
    if (arena) {
        const pp_status initialized =
            pp_init(&context, arena, arena_bytes, &source, &options);
        const int verify = (control & FUZZ_MODEL_VERIFY_WEIGHTS) != 0;
        if (initialized == PP_OK) {
            if (pp_arena_used(context) != arena_bytes)
                fuzz_model_fail("pp_arena_used equals pp_arena_size", PP_OK,
                                PP_ERR_ARENA_TOO_SMALL);
            fuzz_model_forward(context, (control & FUZZ_MODEL_PROBE_PRUNING) != 0);
        } else if (!(verify && initialized == PP_ERR_CHECKSUM)) {
            fuzz_model_fail("pp_init on a probed file", PP_OK, initialized);
        }
    }
    free(arena);
    free(file);
}

#ifdef PP_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_model_one(data, size);
    return 0;
}
#endif
