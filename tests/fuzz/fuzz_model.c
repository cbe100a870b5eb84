/*
 * fuzz_model.c - libFuzzer target: arbitrary bytes as a pprt model file.
 *
 * Input: one control byte, then the model file.
 *   bit 0  recompute the CRC-32 of every section that the table places
 *          inside the file, then the header CRC, so mutations reach the
 *          structural checks behind the checksums
 *   bit 1  PP_VERIFY_WEIGHTS at init
 *   bit 2  read the file through a read callback (and the tile cache)
 *          instead of from memory
 *   bit 3  run the forward pass with Probe Pruning (ratio 0.5, PP_PROBE)
 *   bit 4  give the tile cache no budget, so every pool has one slot
 *   bit 5  make the read callback fail with PP_ERR_IO on any read that
 *          touches the LAYERS section (the second half of the file when
 *          the table has none), so init succeeds and the forward pass fails
 *
 * The file goes through pp_model_probe, pp_arena_size and, when the arena
 * is at most FUZZ_MODEL_MAX_ARENA_BYTES, pp_init and one pp_forward of two
 * tokens. The target aborts when the calls disagree on the status, or when
 * init rejects a file that the probe and the size query accepted, except:
 *   - with PP_VERIFY_WEIGHTS, init may return PP_ERR_CHECKSUM;
 *   - a read source defers the tokenizer's structural check to init, which
 *     must then return the status a memory probe returns;
 *   - init may return PP_ERR_CORRUPT for a byte-level BPE tokenizer whose
 *     merged tokens are not the concatenation of their parts, which only
 *     loading checks.
 * With a failing read callback only the absence of crashes is checked.
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
#define FUZZ_MODEL_TILE_CACHE_BYTES (1u << 20)

enum {
    FUZZ_MODEL_REPAIR_CRC = 1 << 0,
    FUZZ_MODEL_VERIFY_WEIGHTS = 1 << 1,
    FUZZ_MODEL_READ_SOURCE = 1 << 2,
    FUZZ_MODEL_PROBE_PRUNING = 1 << 3,
    FUZZ_MODEL_NO_CACHE_BUDGET = 1 << 4,
    FUZZ_MODEL_FAILING_READS = 1 << 5,
};

/* The bytes behind a read callback. */
typedef struct fuzz_model_file {
    const uint8_t *data;
    uint64_t size;
    int failing;                     /* reads in [fail_begin, fail_end) fail */
    uint64_t fail_begin, fail_end;
} fuzz_model_file;

/* Reports a broken invariant and aborts, so libFuzzer records the input. */
static void fuzz_model_fail(const char *what, pp_status expected,
                            pp_status actual) {
    fprintf(stderr, "fuzz_model: %s: expected '%s', got '%s'\n", what,
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
    const fuzz_model_file *file = user;
    /* pp_source_read checks the range, so a read past it is a runtime bug. */
    if (offset > file->size || length > file->size - offset)
        fuzz_model_fail("read callback range inside the file", PP_OK,
                        PP_ERR_TRUNCATED);
    if (file->failing && offset < file->fail_end &&
        offset + length > file->fail_begin)
        return PP_ERR_IO;
    memcpy(dst, file->data + offset, length);
    return PP_OK;
}

/* Runs a forward pass of two tokens on a context that init accepted and
 * returns its status. */
static pp_status fuzz_model_forward(pp_context *context, int probe_pruning) {
    const pp_model_info *info = pp_info(context);
    const int32_t tokens[2] = {info->bos_id, info->vocab_size - 1};
    float *logits = malloc(2 * (size_t)info->vocab_size * sizeof *logits);
    if (!logits)
        return PP_OK;

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
    const pp_status status = pp_forward(context, tokens, 1, 2, 0, flags, logits);
    free(logits);
    return status;
}

/* Sets the failing read range to the LAYERS section, if the table has one. */
static void fuzz_model_fail_layers(fuzz_model_file *file) {
    file->fail_begin = file->size / 2;
    file->fail_end = file->size;
    if (file->size < PP_HEADER_BYTES)
        return;
    uint32_t count = pp_get_u32(file->data + PP_H_N_SECTIONS);
    if (count > PP_SECTION_TABLE_MAX)
        count = PP_SECTION_TABLE_MAX;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *entry =
            file->data + PP_H_SECTIONS + i * PP_SECTION_ENTRY_BYTES;
        if (pp_get_u32(entry) != PP_SECTION_LAYERS)
            continue;
        file->fail_begin = pp_get_u64(entry + 8);
        file->fail_end = file->fail_begin + pp_get_u64(entry + 16);
        if (file->fail_end < file->fail_begin)
            file->fail_end = UINT64_MAX;
    }
}

/* Returns 1 if pp_init's status is one the header comment allows, for a
 * file that the memory probe returned `probed_memory` for. */
static int fuzz_model_init_allowed(pp_status initialized, pp_status probed_memory,
                                   int verify, int bpe_tokenizer) {
    if (verify && initialized == PP_ERR_CHECKSUM)
        return 1;
    if (probed_memory != PP_OK)
        return initialized == probed_memory;
    return initialized == PP_OK ||
           (bpe_tokenizer && initialized == PP_ERR_CORRUPT);
}

static void fuzz_model_one(const uint8_t *data, size_t size) {
    if (size < 1)
        return;
    const uint8_t control = data[0];
    const size_t file_size = size - 1;
    const int use_reader = (control & FUZZ_MODEL_READ_SOURCE) != 0;
    const int failing = use_reader && (control & FUZZ_MODEL_FAILING_READS);
    const int verify = (control & FUZZ_MODEL_VERIFY_WEIGHTS) != 0;

    /* The runtime reads weights straight from the file, so the file starts
     * at a 64-byte boundary as a loaded or mapped file would. */
    uint8_t *file = aligned_alloc(64, (file_size + 63) / 64 * 64 + 64);
    if (!file)
        return;
    memcpy(file, data + 1, file_size);
    if (control & FUZZ_MODEL_REPAIR_CRC)
        fuzz_model_repair_crc(file, file_size);
    const int bpe_tokenizer =
        file_size >= PP_HEADER_BYTES &&
        (pp_get_u32(file + PP_H_FLAGS) & PP_FLAG_TOKENIZER_BPE) != 0;

    fuzz_model_file backing = {file, file_size, failing, 0, 0};
    if (failing)
        fuzz_model_fail_layers(&backing);
    const pp_source memory = {.data = file, .size = file_size};
    const pp_source reader = {.size = file_size, .read = fuzz_model_read,
                              .user = &backing};
    const pp_source *source = use_reader ? &reader : &memory;

    pp_model_info info;
    const pp_status probed_memory = pp_model_probe(&memory, &info);
    const pp_status probed = pp_model_probe(source, &info);
    /* A read source may accept a file whose tokenizer a memory probe
     * rejects. Any other difference is a bug. */
    if (!failing && probed != probed_memory && probed != PP_OK)
        fuzz_model_fail("pp_model_probe with a read source", probed_memory,
                        probed);

    /* Small limits keep the KV cache and history small for any model. */
    const pp_options options = {
        .max_batch = 1,
        .max_tokens = 2,
        .max_context = 4,
        .history_len = 4,
        .flags = verify ? PP_VERIFY_WEIGHTS : 0,
        .tile_cache_bytes = (control & FUZZ_MODEL_NO_CACHE_BUDGET)
                                ? 0
                                : FUZZ_MODEL_TILE_CACHE_BYTES,
    };
    size_t arena_bytes = 0;
    const pp_status sized = pp_arena_size(source, &options, &arena_bytes);
    if (probed != PP_OK) {
        if (!failing && sized != probed)
            fuzz_model_fail("pp_arena_size on a rejected file", probed, sized);
        free(file);
        return;
    }
    /* Sizing loads the tokenizer, which can still reject it, or measures
     * it from the section size alone for a read source. */
    if (sized != PP_OK) {
        if (!failing && sized != probed_memory && sized != PP_ERR_CORRUPT &&
            sized != PP_ERR_UNSUPPORTED)
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
            pp_init(&context, arena, arena_bytes, source, &options);
        if (!failing && !fuzz_model_init_allowed(initialized, probed_memory,
                                                 verify, bpe_tokenizer))
            fuzz_model_fail("pp_init on a probed file", probed_memory,
                            initialized);
        if (initialized == PP_OK) {
            if (pp_arena_used(context) != arena_bytes)
                fuzz_model_fail("pp_arena_used equals pp_arena_size", PP_OK,
                                PP_ERR_ARENA_TOO_SMALL);
            /* NaN or Inf from extreme weights is a valid outcome. */
            const pp_status forward = fuzz_model_forward(
                context, (control & FUZZ_MODEL_PROBE_PRUNING) != 0);
            if (forward != PP_OK && forward != PP_ERR_NON_FINITE &&
                !(failing && forward == PP_ERR_IO))
                fuzz_model_fail("pp_forward of two valid tokens", PP_OK,
                                forward);
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
