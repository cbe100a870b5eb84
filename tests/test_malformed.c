/*
 * test_malformed.c - model files and llama2.c checkpoints with one defect
 * each. For a model file, pp_model_probe, pp_arena_size and pp_init must
 * all return the exact pp_status that names the defect. For a checkpoint,
 * pp_llama2c_parse must return -1 with a message. No case may crash.
 *
 * The base model is the real stories260K checkpoint converted once with
 * pp_llama2c_parse and pp_write_model. Its sections are, in file order,
 * TOKENIZER, NORMS, TILE_DIRECTORY, EMBEDDING, LAYERS and CHANNEL_STATS;
 * the classifier is tied to the embedding.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "convert.h"
#include "format.h"
#include "pprt.h"

#define CHECKPOINT_PATH "models/stories260K/stories260K.bin"
#define TOKENIZER_PATH "models/stories260K/tok512.bin"

/* Room after a copy of the model, so a case can append a section. */
#define MUTANT_SPARE_BYTES (64u << 10)

/* ---- The base model ------------------------------------------------------ */

typedef struct model_bytes {
    uint8_t *data;  /* 64-byte aligned, MUTANT_SPARE_BYTES of room after size */
    size_t size;
} model_bytes;

static model_bytes base;
static int base_state;  /* 0 not tried, 1 loaded, -1 failed */

static uint8_t *aligned_copy(const uint8_t *data, size_t size, size_t spare) {
    uint8_t *copy = aligned_alloc(64, (size + spare + 63) / 64 * 64);
    if (copy) {
        memset(copy, 0, (size + spare + 63) / 64 * 64);
        memcpy(copy, data, size);
    }
    return copy;
}

/* Converts the real checkpoint into a file under /tmp and reads it back. */
static int convert_real_model(void) {
    size_t checkpoint_size, tokenizer_size;
    uint8_t *checkpoint =
        check_read_file(check_shared(CHECKPOINT_PATH), &checkpoint_size);
    uint8_t *tokenizer =
        check_read_file(check_shared(TOKENIZER_PATH), &tokenizer_size);
    char err[256] = "";
    char path[] = "/tmp/pprt-malformed-XXXXXX";
    int ok = 0;

    const int fd = checkpoint && tokenizer ? mkstemp(path) : -1;
    if (fd >= 0) {
        close(fd);
        pp_llama2c model;
        if (pp_llama2c_parse(checkpoint, checkpoint_size, &model, err,
                             sizeof err) == 0) {
            const pp_write_options options = {0};
            ok = pp_write_model(path, &model.provider, tokenizer,
                                tokenizer_size, &options, err, sizeof err) == 0;
            pp_llama2c_free(&model);
        }
        CHECKF(ok, "converting stories260K failed: %s", err);
        if (ok) {
            size_t size;
            uint8_t *file = check_read_file(path, &size);
            if (file) {
                base.data = aligned_copy(file, size, MUTANT_SPARE_BYTES);
                base.size = size;
                free(file);
            }
            ok = base.data != NULL;
        }
        remove(path);
    }
    free(checkpoint);
    free(tokenizer);
    return ok;
}

/* Returns the converted real model, or NULL (and skips the test) when the
 * shared data is missing. */
static const model_bytes *base_model(void) {
    if (!check_require_file(check_shared(CHECKPOINT_PATH)) ||
        !check_require_file(check_shared(TOKENIZER_PATH)))
        return NULL;
    if (base_state == 0)
        base_state = convert_real_model() ? 1 : -1;
    if (base_state < 0) {
        CHECKF(0, "the base model is not available");
        return NULL;
    }
    return &base;
}

/* Returns a private copy of the base model to mutate. Free it with
 * mutant_free. */
static model_bytes mutant_new(const model_bytes *model) {
    model_bytes m = {aligned_copy(model->data, model->size, MUTANT_SPARE_BYTES),
                     model->size};
    if (!m.data)
        m.size = 0;
    return m;
}

static void mutant_free(model_bytes *m) {
    free(m->data);
    m->data = NULL;
}

/* ---- Header and section table access ------------------------------------- */

static uint8_t *section_entry(const model_bytes *m, int index) {
    return m->data + PP_H_SECTIONS + (size_t)index * PP_SECTION_ENTRY_BYTES;
}

static uint32_t section_count(const model_bytes *m) {
    return pp_get_u32(m->data + PP_H_N_SECTIONS);
}

/* Table index of section `id`, or -1. */
static int section_index(const model_bytes *m, uint32_t id) {
    for (uint32_t i = 0; i < section_count(m) && i < PP_SECTION_TABLE_MAX; i++)
        if (pp_get_u32(section_entry(m, (int)i)) == id)
            return (int)i;
    return -1;
}

static uint64_t section_offset(const model_bytes *m, uint32_t id) {
    return pp_get_u64(section_entry(m, section_index(m, id)) + 8);
}

static uint64_t section_size(const model_bytes *m, uint32_t id) {
    return pp_get_u64(section_entry(m, section_index(m, id)) + 16);
}

static void set_section_offset(model_bytes *m, uint32_t id, uint64_t offset) {
    pp_put_u64(section_entry(m, section_index(m, id)) + 8, offset);
}

static void set_section_size(model_bytes *m, uint32_t id, uint64_t size) {
    pp_put_u64(section_entry(m, section_index(m, id)) + 16, size);
}

static void fix_header_crc(model_bytes *m) {
    pp_put_u32(m->data + PP_H_CRC, pp_crc32(0, m->data, PP_H_CRC));
}

/* Recomputes the CRC-32 of section `id` in the table, then the header CRC. */
static void fix_section_crc(model_bytes *m, uint32_t id) {
    const uint64_t offset = section_offset(m, id);
    const uint64_t size = section_size(m, id);
    pp_put_u32(section_entry(m, section_index(m, id)) + 4,
               pp_crc32(0, m->data + offset, (size_t)size));
    fix_header_crc(m);
}

/* Removes table entry `index`, moving the later entries up. */
static void remove_section(model_bytes *m, int index) {
    const uint32_t count = section_count(m);
    for (uint32_t i = (uint32_t)index; i + 1 < count; i++)
        memcpy(section_entry(m, (int)i), section_entry(m, (int)i + 1),
               PP_SECTION_ENTRY_BYTES);
    memset(section_entry(m, (int)count - 1), 0, PP_SECTION_ENTRY_BYTES);
    pp_put_u32(m->data + PP_H_N_SECTIONS, count - 1);
}

static uint32_t f32_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

/* ---- Running a case ------------------------------------------------------ */

static const pp_options test_options = {.max_batch = 1,
                                        .max_tokens = 4,
                                        .max_context = 16,
                                        .history_len = 0,
                                        .tile_cache_bytes = 64u << 10};

static pp_status read_from_memory(void *user, uint64_t offset, void *dst,
                                  size_t length) {
    memcpy(dst, (const uint8_t *)user + offset, length);
    return PP_OK;
}

/*
 * Runs pp_init with an arena of the size pp_arena_size reported, or with a
 * 64-byte arena when sizing failed (validation comes before any use of the
 * arena, so init must return the same error).
 */
static pp_status init_status(const pp_source *source, uint32_t flags,
                             pp_status sized, size_t arena_bytes) {
    pp_options options = test_options;
    options.flags = flags;
    const size_t bytes = sized == PP_OK ? arena_bytes : 64;
    void *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!arena)
        return PP_ERR_ARENA_TOO_SMALL;
    pp_context *context = NULL;
    const pp_status status = pp_init(&context, arena, bytes, source, &options);
    free(arena);
    return status;
}

/*
 * Checks one mutated file: pp_model_probe, pp_arena_size and pp_init on a
 * memory source return `expected`. Through a read callback the probe and
 * the size query return `read_expected`, which differs only where the
 * probe defers the tokenizer's structural check to init, and init returns
 * `expected`.
 */
static void check_file_sources(const char *name, const uint8_t *data,
                               size_t size, pp_status expected,
                               pp_status read_expected) {
    const pp_source memory = {.data = data, .size = size};
    const pp_source reader = {.size = size, .read = read_from_memory,
                              .user = (void *)(uintptr_t)data};
    pp_model_info info;

    const pp_status probed = pp_model_probe(&memory, &info);
    CHECKF(probed == expected, "%s: pp_model_probe returned '%s', expected '%s'",
           name, pp_status_string(probed), pp_status_string(expected));

    size_t arena_bytes = 0;
    const pp_status sized = pp_arena_size(&memory, &test_options, &arena_bytes);
    CHECKF(sized == expected, "%s: pp_arena_size returned '%s', expected '%s'",
           name, pp_status_string(sized), pp_status_string(expected));

    const pp_status initialized = init_status(&memory, 0, sized, arena_bytes);
    CHECKF(initialized == expected, "%s: pp_init returned '%s', expected '%s'",
           name, pp_status_string(initialized), pp_status_string(expected));

    const pp_status read = pp_model_probe(&reader, &info);
    CHECKF(read == read_expected,
           "%s: pp_model_probe with a read source returned '%s', expected '%s'",
           name, pp_status_string(read), pp_status_string(read_expected));

    size_t read_bytes = 0;
    const pp_status read_sized =
        pp_arena_size(&reader, &test_options, &read_bytes);
    if (read_expected != PP_OK || expected == PP_OK) {
        CHECKF(read_sized == read_expected,
               "%s: pp_arena_size with a read source returned '%s', expected "
               "'%s'",
               name, pp_status_string(read_sized),
               pp_status_string(read_expected));
    } else if (read_sized != PP_OK) {
        /* Sizing from the section size alone may see the defect first. */
        CHECKF(read_sized == PP_ERR_CORRUPT,
               "%s: pp_arena_size with a read source returned '%s', expected "
               "'%s' or '%s'",
               name, pp_status_string(read_sized), pp_status_string(PP_OK),
               pp_status_string(PP_ERR_CORRUPT));
    }
    if (read_sized == PP_OK) {
        const pp_status read_initialized =
            init_status(&reader, 0, read_sized, read_bytes);
        CHECKF(read_initialized == expected,
               "%s: pp_init with a read source returned '%s', expected '%s'",
               name, pp_status_string(read_initialized),
               pp_status_string(expected));
    }
}

static void check_file(const char *name, const model_bytes *m,
                       pp_status expected) {
    check_file_sources(name, m->data, m->size, expected, expected);
}

/* Sets a 32-bit header field, recomputes the header CRC and checks. */
static void check_header_field(const model_bytes *model, const char *name,
                               uint32_t offset, uint32_t value,
                               pp_status expected) {
    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    pp_put_u32(m.data + offset, value);
    fix_header_crc(&m);
    check_file(name, &m, expected);
    mutant_free(&m);
}

/* ---- Valid files ----------------------------------------------------------- */

static void test_converted_model_accepted(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    check_file("unmodified stories260K", model, PP_OK);

    pp_model_info info;
    const pp_source source = {.data = model->data, .size = model->size};
    CHECK(pp_model_probe(&source, &info) == PP_OK);
    CHECK(info.dim == 64);
    CHECK(info.vocab_size == 512);
    CHECK(info.shared_classifier == 1);
    CHECK(section_count(model) == 6);
    CHECK(section_index(model, PP_SECTION_CLASSIFIER) < 0);
}

/* Appending a classifier section and clearing the tied flag gives a valid
 * untied model, which shows that the mutation helpers keep files valid. */
static void test_appended_classifier_accepted(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    model_bytes m = mutant_new(model);
    const uint64_t bytes = section_size(&m, PP_SECTION_EMBEDDING);
    const uint64_t offset = pp_align_up(m.size, 64);
    if (!m.data || offset + bytes > m.size + MUTANT_SPARE_BYTES) {
        CHECKF(0, "no room to append a classifier of %llu bytes",
               (unsigned long long)bytes);
        mutant_free(&m);
        return;
    }
    memcpy(m.data + offset, m.data + section_offset(&m, PP_SECTION_EMBEDDING),
           (size_t)bytes);
    m.size = (size_t)(offset + bytes);

    uint8_t *entry = section_entry(&m, (int)section_count(&m));
    pp_put_u32(entry, PP_SECTION_CLASSIFIER);
    pp_put_u64(entry + 8, offset);
    pp_put_u64(entry + 16, bytes);
    pp_put_u32(m.data + PP_H_N_SECTIONS, section_count(&m) + 1);
    fix_section_crc(&m, PP_SECTION_CLASSIFIER);
    check_file("classifier in a tied model", &m, PP_ERR_CORRUPT);

    pp_put_u32(m.data + PP_H_FLAGS, 0);
    fix_header_crc(&m);
    check_file("appended classifier, untied", &m, PP_OK);

    remove_section(&m, section_index(&m, PP_SECTION_CLASSIFIER));
    fix_header_crc(&m);
    check_file("untied model without a classifier", &m, PP_ERR_CORRUPT);
    mutant_free(&m);
}

/* ---- Truncation ------------------------------------------------------------ */

static void test_truncated_header(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    static const size_t bad_magic_sizes[] = {0, 1, 4, 7};
    static const size_t truncated_sizes[] = {8, 12, 80, 128, 252, 255};
    char name[64];

    for (size_t i = 0; i < sizeof bad_magic_sizes / sizeof *bad_magic_sizes; i++) {
        snprintf(name, sizeof name, "file of %zu bytes", bad_magic_sizes[i]);
        check_file_sources(name, model->data, bad_magic_sizes[i],
                           PP_ERR_BAD_MAGIC, PP_ERR_BAD_MAGIC);
    }
    for (size_t i = 0; i < sizeof truncated_sizes / sizeof *truncated_sizes; i++) {
        snprintf(name, sizeof name, "file of %zu bytes", truncated_sizes[i]);
        check_file_sources(name, model->data, truncated_sizes[i],
                           PP_ERR_TRUNCATED, PP_ERR_TRUNCATED);
    }
    check_file_sources("header only", model->data, PP_HEADER_BYTES,
                       PP_ERR_TRUNCATED, PP_ERR_TRUNCATED);
    check_file_sources("one byte short", model->data, model->size - 1,
                       PP_ERR_TRUNCATED, PP_ERR_TRUNCATED);
}

/* Cuts the file at the start, one byte in, and one byte before the end of
 * every section. Some section then ends past the end of the file. */
static void test_truncated_at_section_boundaries(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    uint64_t end_of_sections = 0;
    for (uint32_t i = 0; i < section_count(model); i++) {
        const uint8_t *entry = section_entry(model, (int)i);
        const uint64_t end = pp_get_u64(entry + 8) + pp_get_u64(entry + 16);
        if (end > end_of_sections)
            end_of_sections = end;
    }
    CHECK(end_of_sections == model->size);

    for (uint32_t i = 0; i < section_count(model); i++) {
        const uint8_t *entry = section_entry(model, (int)i);
        const uint32_t id = pp_get_u32(entry);
        const uint64_t offset = pp_get_u64(entry + 8);
        const uint64_t cuts[3] = {offset, offset + 1,
                                  offset + pp_get_u64(entry + 16) - 1};
        for (int c = 0; c < 3; c++) {
            char name[96];
            snprintf(name, sizeof name, "cut at byte %llu (section %u)",
                     (unsigned long long)cuts[c], id);
            check_file_sources(name, model->data, (size_t)cuts[c],
                               PP_ERR_TRUNCATED, PP_ERR_TRUNCATED);
        }
    }
}

/* ---- Header ---------------------------------------------------------------- */

/* Flips one bit in every header byte without fixing the CRC. The magic,
 * version and header size are checked before the CRC. */
static void test_header_byte_flips(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    for (size_t i = 0; i < PP_HEADER_BYTES; i++) {
        model_bytes m = mutant_new(model);
        if (!m.data)
            return;
        m.data[i] ^= 0x10;
        pp_status expected = PP_ERR_CHECKSUM;
        if (i < PP_H_VERSION)
            expected = PP_ERR_BAD_MAGIC;
        else if (i < PP_H_HEADER_BYTES)
            expected = PP_ERR_VERSION;
        else if (i < PP_H_DIM)
            expected = PP_ERR_CORRUPT;
        char name[64];
        snprintf(name, sizeof name, "header byte %zu flipped", i);
        check_file(name, &m, expected);
        mutant_free(&m);
    }
}

typedef struct field_case {
    const char *name;
    uint32_t offset;
    uint32_t value;
    pp_status expected;
} field_case;

/* Header fields set to bad values with the header CRC recomputed, so the
 * field checks themselves must reject them. The base model has dim 64,
 * hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, tile 4, group 32
 * and alignment 64. */
static void test_header_fields_rejected(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    const field_case cases[] = {
        {"magic PPRTMODM", PP_H_MAGIC + 4, 0x4D444F4Du, PP_ERR_BAD_MAGIC},
        {"version 0", PP_H_VERSION, 0, PP_ERR_VERSION},
        {"version 1 (row-major weights)", PP_H_VERSION, 1, PP_ERR_VERSION},
        {"version 2 (gate and up apart)", PP_H_VERSION, 2, PP_ERR_VERSION},
        {"version 3 (tile parts side by side)", PP_H_VERSION, 3, PP_ERR_VERSION},
        {"version 5", PP_H_VERSION, 5, PP_ERR_VERSION},
        {"header size 512", PP_H_HEADER_BYTES, 512, PP_ERR_CORRUPT},
        {"dim 0", PP_H_DIM, 0, PP_ERR_CORRUPT},
        {"dim 2^31", PP_H_DIM, 1u << 31, PP_ERR_CORRUPT},
        {"dim 2^17", PP_H_DIM, 1u << 17, PP_ERR_CORRUPT},
        {"dim 0xFFFFFFFF", PP_H_DIM, 0xFFFFFFFFu, PP_ERR_CORRUPT},
        {"dim 32, sections sized for 64", PP_H_DIM, 32, PP_ERR_CORRUPT},
        {"hidden 0", PP_H_HIDDEN_DIM, 0, PP_ERR_CORRUPT},
        {"hidden 2^31", PP_H_HIDDEN_DIM, 1u << 31, PP_ERR_CORRUPT},
        {"hidden 171, sections sized for 172", PP_H_HIDDEN_DIM, 171,
         PP_ERR_CORRUPT},
        {"layers 0", PP_H_N_LAYERS, 0, PP_ERR_CORRUPT},
        {"layers 2^31", PP_H_N_LAYERS, 1u << 31, PP_ERR_CORRUPT},
        {"layers 4, sections sized for 5", PP_H_N_LAYERS, 4, PP_ERR_CORRUPT},
        {"heads 0", PP_H_N_HEADS, 0, PP_ERR_CORRUPT},
        {"heads 3 do not divide dim 64", PP_H_N_HEADS, 3, PP_ERR_CORRUPT},
        {"heads 64 give odd head_dim 1", PP_H_N_HEADS, 64, PP_ERR_CORRUPT},
        {"heads 128 above dim", PP_H_N_HEADS, 128, PP_ERR_CORRUPT},
        {"heads 2^31", PP_H_N_HEADS, 1u << 31, PP_ERR_CORRUPT},
        {"heads 16, sections sized for 8", PP_H_N_HEADS, 16, PP_ERR_CORRUPT},
        {"kv heads 0", PP_H_N_KV_HEADS, 0, PP_ERR_CORRUPT},
        {"kv heads 3 do not divide 8 heads", PP_H_N_KV_HEADS, 3,
         PP_ERR_CORRUPT},
        {"kv heads 16 above heads", PP_H_N_KV_HEADS, 16, PP_ERR_CORRUPT},
        {"kv heads 2, sections sized for 4", PP_H_N_KV_HEADS, 2,
         PP_ERR_CORRUPT},
        {"vocab 0", PP_H_VOCAB_SIZE, 0, PP_ERR_CORRUPT},
        {"vocab 2^30", PP_H_VOCAB_SIZE, 1u << 30, PP_ERR_CORRUPT},
        {"vocab 0xFFFFFFFF", PP_H_VOCAB_SIZE, 0xFFFFFFFFu, PP_ERR_CORRUPT},
        /* 504 rows are one 8-row block fewer than 512; 511 would round up
         * to the same section size. */
        {"vocab 504, sections sized for 512", PP_H_VOCAB_SIZE, 504,
         PP_ERR_CORRUPT},
        {"max_seq_len 0", PP_H_MAX_SEQ_LEN, 0, PP_ERR_CORRUPT},
        {"max_seq_len 2^21", PP_H_MAX_SEQ_LEN, 1u << 21, PP_ERR_CORRUPT},
        {"tile 0", PP_H_TILE, 0, PP_ERR_CORRUPT},
        {"tile 173 above hidden", PP_H_TILE, 173, PP_ERR_CORRUPT},
        {"tile 2^31", PP_H_TILE, 1u << 31, PP_ERR_CORRUPT},
        {"tile 8, directory sized for 4", PP_H_TILE, 8, PP_ERR_CORRUPT},
        {"group 0", PP_H_GROUP, 0, PP_ERR_CORRUPT},
        {"group 2^17", PP_H_GROUP, 1u << 17, PP_ERR_CORRUPT},
        {"group 16, matrices sized for 32", PP_H_GROUP, 16, PP_ERR_CORRUPT},
        {"alignment 0", PP_H_ALIGNMENT, 0, PP_ERR_CORRUPT},
        {"alignment 32 below 64", PP_H_ALIGNMENT, 32, PP_ERR_CORRUPT},
        {"alignment 96 not a power of two", PP_H_ALIGNMENT, 96,
         PP_ERR_CORRUPT},
        {"alignment 2^17", PP_H_ALIGNMENT, 1u << 17, PP_ERR_CORRUPT},
        {"alignment 2^31", PP_H_ALIGNMENT, 1u << 31, PP_ERR_CORRUPT},
        {"alignment 4096, sections at 64", PP_H_ALIGNMENT, 4096,
         PP_ERR_CORRUPT},
        {"unknown flag bit 3", PP_H_FLAGS, PP_FLAG_SHARED_CLASSIFIER | 8u,
         PP_ERR_CORRUPT},
        {"unknown flag bit 31", PP_H_FLAGS, PP_FLAG_SHARED_CLASSIFIER | 1u << 31,
         PP_ERR_CORRUPT},
        {"tied flag cleared, no classifier", PP_H_FLAGS, 0, PP_ERR_CORRUPT},
        {"rope theta NaN", PP_H_ROPE_THETA, 0x7FC00000u, PP_ERR_CORRUPT},
        {"rope theta +Inf", PP_H_ROPE_THETA, 0x7F800000u, PP_ERR_CORRUPT},
        {"rope theta 0", PP_H_ROPE_THETA, 0, PP_ERR_CORRUPT},
        {"rope theta -1", PP_H_ROPE_THETA, f32_bits(-1.0f), PP_ERR_CORRUPT},
        {"norm eps NaN", PP_H_NORM_EPS, 0xFFC00000u, PP_ERR_CORRUPT},
        {"norm eps 0", PP_H_NORM_EPS, 0, PP_ERR_CORRUPT},
        {"norm eps 1", PP_H_NORM_EPS, f32_bits(1.0f), PP_ERR_CORRUPT},
        {"norm eps -1e-5", PP_H_NORM_EPS, f32_bits(-1e-5f), PP_ERR_CORRUPT},
        {"bos 512 equals vocab", PP_H_BOS_ID, 512, PP_ERR_CORRUPT},
        {"bos 0xFFFFFFFF", PP_H_BOS_ID, 0xFFFFFFFFu, PP_ERR_CORRUPT},
        {"eos 512 equals vocab", PP_H_EOS_ID, 512, PP_ERR_CORRUPT},
        {"8 sections, table holds 7", PP_H_N_SECTIONS, 8, PP_ERR_CORRUPT},
        {"0xFFFFFFFF sections", PP_H_N_SECTIONS, 0xFFFFFFFFu, PP_ERR_CORRUPT},
        {"0 sections", PP_H_N_SECTIONS, 0, PP_ERR_CORRUPT},
        {"5 sections, CHANNEL_STATS dropped", PP_H_N_SECTIONS, 5,
         PP_ERR_CORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_header_field(model, cases[i].name, cases[i].offset,
                           cases[i].value, cases[i].expected);
}

/* Valid header changes that the file still supports, as a control. */
static void test_header_fields_accepted(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    check_header_field(model, "bos 0", PP_H_BOS_ID, 0, PP_OK);
    check_header_field(model, "eos 511", PP_H_EOS_ID, 511, PP_OK);
    check_header_field(model, "max_seq_len 1", PP_H_MAX_SEQ_LEN, 1, PP_OK);
    check_header_field(model, "rope theta 500000", PP_H_ROPE_THETA,
                       f32_bits(500000.0f), PP_OK);
    check_header_field(model, "synthetic flag", PP_H_FLAGS,
                       PP_FLAG_SHARED_CLASSIFIER | PP_FLAG_SYNTHETIC, PP_OK);
}

/* ---- Section table --------------------------------------------------------- */

static const uint32_t section_ids[] = {
    PP_SECTION_TOKENIZER, PP_SECTION_NORMS, PP_SECTION_TILE_DIRECTORY,
    PP_SECTION_EMBEDDING, PP_SECTION_LAYERS, PP_SECTION_CHANNEL_STATS};
#define SECTION_ID_COUNT (sizeof section_ids / sizeof section_ids[0])

/* Each section moved past the end, grown past the end, or with an offset
 * or size that overflows offset + size. */
static void test_sections_past_end(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    for (size_t i = 0; i < SECTION_ID_COUNT; i++) {
        const uint32_t id = section_ids[i];
        char name[96];
        model_bytes m = mutant_new(model);
        if (!m.data)
            return;

        set_section_offset(&m, id, pp_align_up(m.size + 1, 64));
        fix_header_crc(&m);
        snprintf(name, sizeof name, "section %u starts past the end", id);
        check_file(name, &m, PP_ERR_TRUNCATED);

        memcpy(m.data, model->data, PP_HEADER_BYTES);
        set_section_size(&m, id, section_size(&m, id) + m.size);
        fix_header_crc(&m);
        snprintf(name, sizeof name, "section %u ends past the end", id);
        check_file(name, &m, PP_ERR_TRUNCATED);

        memcpy(m.data, model->data, PP_HEADER_BYTES);
        set_section_offset(&m, id, UINT64_MAX - 63);
        fix_header_crc(&m);
        snprintf(name, sizeof name, "section %u at offset 2^64 - 64", id);
        check_file(name, &m, PP_ERR_TRUNCATED);

        memcpy(m.data, model->data, PP_HEADER_BYTES);
        set_section_size(&m, id, UINT64_MAX);
        fix_header_crc(&m);
        snprintf(name, sizeof name, "section %u of size 2^64 - 1", id);
        check_file(name, &m, PP_ERR_TRUNCATED);
        mutant_free(&m);
    }
}

/* Each section misaligned, inside the header, or at offset 0. */
static void test_sections_misplaced(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    static const char *const kinds[] = {"misaligned by 1", "misaligned by 32",
                                        "at offset 0", "inside the header"};
    for (size_t i = 0; i < SECTION_ID_COUNT; i++) {
        const uint32_t id = section_ids[i];
        const uint64_t offset = section_offset(model, id);
        const uint64_t offsets[4] = {offset + 1, offset + 32, 0, 64};
        for (int k = 0; k < 4; k++) {
            model_bytes m = mutant_new(model);
            if (!m.data)
                return;
            set_section_offset(&m, id, offsets[k]);
            fix_header_crc(&m);
            char name[96];
            snprintf(name, sizeof name, "section %u %s", id, kinds[k]);
            check_file(name, &m, PP_ERR_CORRUPT);
            mutant_free(&m);
        }
    }
}

/* Sets section `id` to start at `offset`, fixes the header CRC and checks. */
static void check_moved_section(const model_bytes *model, const char *name,
                                uint32_t id, uint64_t offset,
                                pp_status expected) {
    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    set_section_offset(&m, id, offset);
    fix_header_crc(&m);
    check_file(name, &m, expected);
    mutant_free(&m);
}

static void test_sections_overlapping(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    check_moved_section(model, "NORMS at the TOKENIZER offset",
                        PP_SECTION_NORMS,
                        section_offset(model, PP_SECTION_TOKENIZER),
                        PP_ERR_CORRUPT);
    check_moved_section(model, "LAYERS 64 bytes into EMBEDDING",
                        PP_SECTION_LAYERS,
                        section_offset(model, PP_SECTION_LAYERS) - 64,
                        PP_ERR_CORRUPT);
    check_moved_section(model, "TILE_DIRECTORY at the EMBEDDING offset",
                        PP_SECTION_TILE_DIRECTORY,
                        section_offset(model, PP_SECTION_EMBEDDING),
                        PP_ERR_CORRUPT);
    check_moved_section(model, "TOKENIZER inside LAYERS", PP_SECTION_TOKENIZER,
                        section_offset(model, PP_SECTION_LAYERS) + 64,
                        PP_ERR_CORRUPT);

    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    set_section_size(&m, PP_SECTION_EMBEDDING,
                     section_size(&m, PP_SECTION_EMBEDDING) + 64);
    fix_header_crc(&m);
    check_file("EMBEDDING grown into LAYERS", &m, PP_ERR_CORRUPT);
    mutant_free(&m);
}

/* Sets the id of table entry `index`, fixes the header CRC and checks. */
static void check_section_id(const model_bytes *model, const char *name,
                             int index, uint32_t id, pp_status expected) {
    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    pp_put_u32(section_entry(&m, index), id);
    fix_header_crc(&m);
    check_file(name, &m, expected);
    mutant_free(&m);
}

static void test_section_ids(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    const int norms = section_index(model, PP_SECTION_NORMS);
    check_section_id(model, "duplicate TOKENIZER id", norms,
                     PP_SECTION_TOKENIZER, PP_ERR_CORRUPT);
    check_section_id(model, "duplicate LAYERS id", norms, PP_SECTION_LAYERS,
                     PP_ERR_CORRUPT);
    check_section_id(model, "section id 0", norms, 0, PP_ERR_CORRUPT);
    check_section_id(model, "section id 8", norms, PP_SECTION_COUNT_MAX,
                     PP_ERR_CORRUPT);
    check_section_id(model, "section id 0xFFFFFFFF", norms, 0xFFFFFFFFu,
                     PP_ERR_CORRUPT);
    check_section_id(model, "NORMS relabeled CLASSIFIER in a tied model", norms,
                     PP_SECTION_CLASSIFIER, PP_ERR_CORRUPT);
}

/* Every required section removed from the table in turn. */
static void test_required_sections_missing(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    for (size_t i = 0; i < SECTION_ID_COUNT; i++) {
        model_bytes m = mutant_new(model);
        if (!m.data)
            return;
        remove_section(&m, section_index(&m, section_ids[i]));
        fix_header_crc(&m);
        char name[64];
        snprintf(name, sizeof name, "section %u missing", section_ids[i]);
        check_file(name, &m, PP_ERR_CORRUPT);
        mutant_free(&m);
    }
}

static void test_section_sizes_wrong(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    static const int64_t deltas[] = {-64, -4, 4};
    for (size_t i = 0; i < SECTION_ID_COUNT; i++) {
        const uint32_t id = section_ids[i];
        /* The tokenizer size comes from its own contents. */
        if (id == PP_SECTION_TOKENIZER)
            continue;
        for (size_t d = 0; d < sizeof deltas / sizeof *deltas; d++) {
            model_bytes m = mutant_new(model);
            if (!m.data)
                return;
            set_section_size(&m, id,
                             (uint64_t)((int64_t)section_size(&m, id) + deltas[d]));
            fix_header_crc(&m);
            char name[64];
            snprintf(name, sizeof name, "section %u size %+lld", id,
                     (long long)deltas[d]);
            /* Growing the last section runs past the end of the file. */
            const int last = section_offset(&m, id) + section_size(model, id) ==
                             model->size;
            check_file(name, &m,
                       last && deltas[d] > 0 ? PP_ERR_TRUNCATED : PP_ERR_CORRUPT);
            mutant_free(&m);
        }
    }
}

/* ---- Tile directory -------------------------------------------------------- */

static uint64_t directory_entry(const model_bytes *m, uint64_t index) {
    return pp_get_u64(m->data + section_offset(m, PP_SECTION_TILE_DIRECTORY) +
                      8 * index);
}

static void set_directory_entry(model_bytes *m, uint64_t index, uint64_t value) {
    pp_put_u64(m->data + section_offset(m, PP_SECTION_TILE_DIRECTORY) + 8 * index,
               value);
}

/* Sets directory entry `index`, recomputes the directory CRC and checks. */
static void check_directory_entry(const model_bytes *model, const char *name,
                                  uint64_t index, uint64_t value,
                                  pp_status expected) {
    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    set_directory_entry(&m, index, value);
    fix_section_crc(&m, PP_SECTION_TILE_DIRECTORY);
    check_file(name, &m, expected);
    mutant_free(&m);
}

static void test_tile_directory_rejected(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    const uint64_t count = section_size(model, PP_SECTION_TILE_DIRECTORY) / 8;
    const uint64_t per_layer = count / 5;
    const uint64_t layers_begin = section_offset(model, PP_SECTION_LAYERS);
    const uint64_t layers_end =
        layers_begin + section_size(model, PP_SECTION_LAYERS);
    const uint64_t first = directory_entry(model, 0);
    const uint64_t second = directory_entry(model, 1);
    const uint64_t last = directory_entry(model, count - 1);
    CHECK(first == layers_begin);

    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    set_directory_entry(&m, 0, second);
    set_directory_entry(&m, 1, first);
    fix_section_crc(&m, PP_SECTION_TILE_DIRECTORY);
    check_file("tiles 0 and 1 swapped", &m, PP_ERR_CORRUPT);
    mutant_free(&m);

    check_directory_entry(model, "tile 1 at tile 0", 1, first, PP_ERR_CORRUPT);
    check_directory_entry(model, "tile 1 inside tile 0", 1, first + 64,
                          PP_ERR_CORRUPT);
    check_directory_entry(model, "tile 0 misaligned", 0, first + 1,
                          PP_ERR_CORRUPT);
    check_directory_entry(model, "tile 0 before LAYERS", 0, layers_begin - 64,
                          PP_ERR_CORRUPT);
    check_directory_entry(model, "tile 0 at offset 0", 0, 0, PP_ERR_CORRUPT);
    check_directory_entry(model, "first tile of layer 1 inside layer 0",
                          per_layer, directory_entry(model, per_layer - 1),
                          PP_ERR_CORRUPT);
    check_directory_entry(model, "last tile at the end of LAYERS", count - 1,
                          layers_end, PP_ERR_CORRUPT);
    check_directory_entry(model, "last tile running past LAYERS", count - 1,
                          layers_end - 64, PP_ERR_CORRUPT);
    check_directory_entry(model, "last tile past the file", count - 1,
                          pp_align_up(model->size, 64) + 64, PP_ERR_CORRUPT);
    check_directory_entry(model, "last tile at 2^64 - 64", count - 1,
                          UINT64_MAX - 63, PP_ERR_CORRUPT);
    check_directory_entry(model, "last tile unchanged", count - 1, last, PP_OK);

    m = mutant_new(model);
    if (!m.data)
        return;
    m.data[section_offset(&m, PP_SECTION_TILE_DIRECTORY) + 9] ^= 0x40;
    check_file("directory byte flipped, CRC kept", &m, PP_ERR_CHECKSUM);
    mutant_free(&m);
}

/* A read source whose directory changes after validation: the whole
 * directory in one read (the runtime's copy) comes back with its first
 * entry past the end of the file. */
typedef struct changing_source {
    const model_bytes *model;
    uint64_t directory, directory_bytes;
} changing_source;

static pp_status read_changing(void *user, uint64_t offset, void *dst,
                               size_t length) {
    const changing_source *s = user;
    memcpy(dst, s->model->data + offset, length);
    if (offset == s->directory && length == s->directory_bytes)
        pp_put_u64(dst, pp_align_up(s->model->size, 64) + 4096);
    return PP_OK;
}

static void test_directory_checked_as_used(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    changing_source changing = {model, section_offset(model, PP_SECTION_TILE_DIRECTORY),
                                section_size(model, PP_SECTION_TILE_DIRECTORY)};
    const pp_source source = {.size = model->size, .read = read_changing,
                              .user = &changing};
    size_t arena_bytes = 0;
    CHECK(pp_arena_size(&source, &test_options, &arena_bytes) == PP_OK);
    const pp_status initialized = init_status(&source, 0, PP_OK, arena_bytes);
    CHECKF(initialized == PP_ERR_CORRUPT,
           "directory changed after validation: pp_init returned '%s'",
           pp_status_string(initialized));
}

/* ---- Tokenizer section ----------------------------------------------------- */

/* Offset of the entry of token `id` in the tokenizer section. */
static uint64_t token_entry(const model_bytes *m, int32_t id) {
    const uint8_t *section = m->data + section_offset(m, PP_SECTION_TOKENIZER);
    uint64_t at = 4;
    for (int32_t i = 0; i < id; i++)
        at += 8 + pp_get_u32(section + at + 4);
    return section_offset(m, PP_SECTION_TOKENIZER) + at;
}

/*
 * Checks a tokenizer mutation with the section CRC recomputed. A read
 * source defers the structural check of the section to pp_init (the probe
 * needs the section in one piece), so its probe returns `read_expected`.
 */
static void check_tokenizer_case(const char *name, model_bytes *m,
                                 pp_status expected, pp_status read_expected) {
    fix_section_crc(m, PP_SECTION_TOKENIZER);
    check_file_sources(name, m->data, m->size, expected, read_expected);
}

static void test_tokenizer_section_rejected(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    const uint64_t begin = section_offset(model, PP_SECTION_TOKENIZER);
    const uint64_t size = section_size(model, PP_SECTION_TOKENIZER);
    const uint32_t max_length = pp_get_u32(model->data + begin);
    const uint64_t last = token_entry(model, 511);
    const uint32_t last_length = pp_get_u32(model->data + last + 4);
    CHECK(token_entry(model, 512) == begin + size);

    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    pp_put_u32(m.data + token_entry(&m, 300) + 4, max_length + 1);
    check_tokenizer_case("token longer than max_token_length", &m,
                         PP_ERR_CORRUPT, PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    pp_put_u32(m.data + begin, 0x7FFFFFFFu);
    pp_put_u32(m.data + last + 4, last_length + 1);
    check_tokenizer_case("last token runs past the section", &m,
                         PP_ERR_TRUNCATED, PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    pp_put_u32(m.data + begin, 0x7FFFFFFFu);
    pp_put_u32(m.data + token_entry(&m, 3) + 4, 0x7FFFFFF0u);
    check_tokenizer_case("token length 2^31 - 16", &m, PP_ERR_TRUNCATED, PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    pp_put_u32(m.data + token_entry(&m, 3) + 4, 0xFFFFFFFFu);
    check_tokenizer_case("negative token length", &m, PP_ERR_CORRUPT, PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    pp_put_u32(m.data + begin, 0x80000000u);
    check_tokenizer_case("negative max_token_length", &m, PP_ERR_CORRUPT,
                         PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    pp_put_u32(m.data + token_entry(&m, 7), 0x7FC00000u);
    check_tokenizer_case("NaN score", &m, PP_ERR_CORRUPT, PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    set_section_size(&m, PP_SECTION_TOKENIZER, size - 1);
    check_tokenizer_case("section one byte short", &m, PP_ERR_TRUNCATED, PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    set_section_size(&m, PP_SECTION_TOKENIZER, 2);
    check_tokenizer_case("section of 2 bytes", &m, PP_ERR_TRUNCATED, PP_OK);
    mutant_free(&m);

    /* NORMS starts at the next 64-byte boundary, so a section that runs up
     * to it takes in the zero padding after the last token, bytes that no
     * token claims. */
    m = mutant_new(model);
    set_section_size(&m, PP_SECTION_TOKENIZER,
                     section_offset(&m, PP_SECTION_NORMS) - begin);
    check_tokenizer_case("section up to NORMS", &m,
                         section_offset(&m, PP_SECTION_NORMS) == begin + size
                             ? PP_OK
                             : PP_ERR_CORRUPT,
                         PP_OK);
    mutant_free(&m);

    m = mutant_new(model);
    m.data[last + 8] ^= 0x01;
    check_file("tokenizer byte flipped, CRC kept", &m, PP_ERR_CHECKSUM);
    mutant_free(&m);

    /* Read as a BPE section, the llama2.c max_token_length is the
     * pre-tokenizer number, which is past the known ones. */
    CHECK(max_length >= PP_BPE_PRE_COUNT);
    m = mutant_new(model);
    pp_put_u32(m.data + PP_H_FLAGS,
               PP_FLAG_SHARED_CLASSIFIER | PP_FLAG_TOKENIZER_BPE);
    fix_header_crc(&m);
    check_file_sources("BPE flag on a llama2.c tokenizer", m.data, m.size,
                       PP_ERR_UNSUPPORTED, PP_OK);
    mutant_free(&m);
}

/* ---- Byte-level BPE tokenizer section -------------------------------------- */

/* The BPE seed of the model fuzzer: a synthetic model whose tokenizer is
 * 3 special tokens, the 256 byte tokens and 13 merges (make_seeds.c). The
 * file follows one control byte. */
#define BPE_MODEL_PATH "tests/fuzz/corpus/fuzz_model/tiny_bpe"
#define BPE_VOCAB 272
#define BPE_MERGES 13

/* Loads the BPE model, or returns a model with no data and skips the test
 * when the working directory is not the repository root. */
static model_bytes bpe_model(void) {
    model_bytes m = {NULL, 0};
    if (!check_require_file(BPE_MODEL_PATH))
        return m;
    size_t size;
    uint8_t *seed = check_read_file(BPE_MODEL_PATH, &size);
    if (seed && size > 1) {
        m.data = aligned_copy(seed + 1, size - 1, MUTANT_SPARE_BYTES);
        m.size = m.data ? size - 1 : 0;
    }
    free(seed);
    return m;
}

/* Offset of the entry of token `id` in the BPE section. */
static uint64_t bpe_token_entry(const model_bytes *m, int32_t id) {
    const uint8_t *section = m->data + section_offset(m, PP_SECTION_TOKENIZER);
    uint64_t at = 8;
    for (int32_t i = 0; i < id; i++)
        at += 5 + pp_get_u32(section + at + 1);
    return section_offset(m, PP_SECTION_TOKENIZER) + at;
}

/* Offset of merge `index` (left, right, merged ids) in the BPE section. */
static uint64_t bpe_merge_entry(const model_bytes *m, uint32_t index) {
    return bpe_token_entry(m, BPE_VOCAB) + 12u * index;
}

static void test_bpe_tokenizer_section(void) {
    model_bytes model = bpe_model();
    if (!model.data)
        return;
    const uint64_t begin = section_offset(&model, PP_SECTION_TOKENIZER);
    const uint64_t size = section_size(&model, PP_SECTION_TOKENIZER);
    CHECK((pp_get_u32(model.data + PP_H_FLAGS) & PP_FLAG_TOKENIZER_BPE) != 0);
    CHECK(pp_get_u32(model.data + PP_H_VOCAB_SIZE) == BPE_VOCAB);
    CHECK(pp_get_u32(model.data + begin + 4) == BPE_MERGES);
    CHECK(bpe_merge_entry(&model, BPE_MERGES) == begin + size);
    check_file("unmodified BPE model", &model, PP_OK);

    model_bytes m = mutant_new(&model);
    pp_put_u32(m.data + begin, PP_BPE_PRE_COUNT);
    check_tokenizer_case("unknown pre-tokenizer", &m, PP_ERR_UNSUPPORTED, PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    m.data[bpe_token_entry(&m, 100)] = 2;
    check_tokenizer_case("BPE token kind 2", &m, PP_ERR_CORRUPT, PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    pp_put_u32(m.data + bpe_token_entry(&m, 200) + 1, 0x7FFFFFFFu);
    check_tokenizer_case("BPE token runs past the section", &m,
                         PP_ERR_TRUNCATED, PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    pp_put_u32(m.data + begin + 4, BPE_MERGES + 1);
    check_tokenizer_case("BPE merge count one too many", &m, PP_ERR_TRUNCATED,
                         PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    pp_put_u32(m.data + begin + 4, BPE_MERGES - 1);
    check_tokenizer_case("BPE bytes after the last merge", &m, PP_ERR_CORRUPT,
                         PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    pp_put_u32(m.data + begin + 4, 0xFFFFFFFFu);
    check_tokenizer_case("BPE merge count 2^32 - 1", &m, PP_ERR_TRUNCATED,
                         PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    pp_put_u32(m.data + bpe_merge_entry(&m, 0), BPE_VOCAB);
    check_tokenizer_case("BPE merge left id equals vocab", &m, PP_ERR_CORRUPT,
                         PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    pp_put_u32(m.data + bpe_merge_entry(&m, 5) + 8, 0xFFFFFFFFu);
    check_tokenizer_case("BPE merged id -1", &m, PP_ERR_CORRUPT, PP_OK);
    mutant_free(&m);

    m = mutant_new(&model);
    set_section_size(&m, PP_SECTION_TOKENIZER, 7);
    check_tokenizer_case("BPE section of 7 bytes", &m, PP_ERR_TRUNCATED, PP_OK);
    mutant_free(&m);

    /* A merge whose token is not the pair's concatenation passes the probe,
     * because the probe checks the section without an index of the tokens.
     * Only loading the tokenizer at init compares the bytes. */
    m = mutant_new(&model);
    const uint64_t merge = bpe_merge_entry(&m, 0);
    pp_put_u32(m.data + merge + 8, pp_get_u32(m.data + merge + 8) + 1);
    fix_section_crc(&m, PP_SECTION_TOKENIZER);
    const pp_source source = {.data = m.data, .size = m.size};
    pp_model_info info;
    CHECK(pp_model_probe(&source, &info) == PP_OK);
    size_t arena_bytes = 0;
    const pp_status sized = pp_arena_size(&source, &test_options, &arena_bytes);
    CHECK(sized == PP_OK);
    const pp_status initialized = init_status(&source, 0, sized, arena_bytes);
    CHECKF(initialized == PP_ERR_CORRUPT,
           "BPE merge of the wrong token: pp_init returned '%s', expected '%s'",
           pp_status_string(initialized), pp_status_string(PP_ERR_CORRUPT));
    mutant_free(&m);
    mutant_free(&model);
}

/* ---- Non-finite values and weight checksums -------------------------------- */

/* Writes float bits at byte `at` of section `id` and recomputes its CRC. */
static void check_float_case(const model_bytes *model, const char *name,
                             uint32_t id, uint64_t at, uint32_t bits) {
    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    pp_put_u32(m.data + section_offset(&m, id) + at, bits);
    fix_section_crc(&m, id);
    check_file(name, &m, PP_ERR_NON_FINITE);
    mutant_free(&m);
}

static void test_non_finite_sections_rejected(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    const uint64_t norms = section_size(model, PP_SECTION_NORMS);
    const uint64_t stats = section_size(model, PP_SECTION_CHANNEL_STATS);
    check_float_case(model, "NaN in the first attention norm",
                     PP_SECTION_NORMS, 0, 0x7FC00000u);
    check_float_case(model, "+Inf in the final norm", PP_SECTION_NORMS,
                     norms - 4, 0x7F800000u);
    check_float_case(model, "-Inf in an MLP norm", PP_SECTION_NORMS,
                     norms / 2, 0xFF800000u);
    check_float_case(model, "NaN in the channel statistics",
                     PP_SECTION_CHANNEL_STATS, 4 * 17, 0x7FC00001u);
    check_float_case(model, "Inf at the end of the channel statistics",
                     PP_SECTION_CHANNEL_STATS, stats - 4, 0x7F800000u);
}

/*
 * Flips one byte of a weight section: the probe and a plain init accept
 * the file (weights are not read at init), and init with PP_VERIFY_WEIGHTS
 * returns PP_ERR_CHECKSUM.
 */
static void check_weight_flip(const model_bytes *model, const char *name,
                              uint64_t at) {
    model_bytes m = mutant_new(model);
    if (!m.data)
        return;
    m.data[at] ^= 0x01;
    check_file(name, &m, PP_OK);

    const pp_source source = {.data = m.data, .size = m.size};
    size_t arena_bytes = 0;
    const pp_status sized = pp_arena_size(&source, &test_options, &arena_bytes);
    CHECKF(sized == PP_OK, "%s: pp_arena_size returned '%s'", name,
           pp_status_string(sized));
    const pp_status verified =
        init_status(&source, PP_VERIFY_WEIGHTS, sized, arena_bytes);
    CHECKF(verified == PP_ERR_CHECKSUM,
           "%s: pp_init with PP_VERIFY_WEIGHTS returned '%s', expected '%s'",
           name, pp_status_string(verified),
           pp_status_string(PP_ERR_CHECKSUM));
    mutant_free(&m);
}

static void test_weight_flips_need_verify(void) {
    const model_bytes *model = base_model();
    if (!model)
        return;
    const uint64_t embedding = section_offset(model, PP_SECTION_EMBEDDING);
    const uint64_t layers = section_offset(model, PP_SECTION_LAYERS);
    const uint64_t layers_size = section_size(model, PP_SECTION_LAYERS);
    check_weight_flip(model, "embedding byte flipped", embedding + 100);
    check_weight_flip(model, "first tile byte flipped", layers);
    check_weight_flip(model, "last LAYERS byte flipped", layers + layers_size - 1);

    const pp_source source = {.data = model->data, .size = model->size};
    size_t arena_bytes = 0;
    const pp_status sized = pp_arena_size(&source, &test_options, &arena_bytes);
    CHECK(sized == PP_OK);
    CHECK(init_status(&source, PP_VERIFY_WEIGHTS, sized, arena_bytes) == PP_OK);
}

/* ---- llama2.c checkpoints -------------------------------------------------- */

/* A legacy float32 checkpoint: the 7-int32 header, then every tensor, norm
 * and RoPE table in llama2.c run.c order, filled with small values. */
typedef struct checkpoint {
    uint8_t *data;
    size_t size;
} checkpoint;

static checkpoint make_legacy(const int32_t config[7]) {
    const size_t dim = (size_t)config[0], hidden = (size_t)config[1];
    const size_t layers = (size_t)config[2];
    const size_t head_dim = dim / (size_t)config[3];
    const size_t kv_dim = head_dim * (size_t)config[4];
    const size_t vocab = (size_t)(config[5] < 0 ? -config[5] : config[5]);
    const size_t floats =
        vocab * dim + layers * dim + layers * (2 * dim * dim + 2 * kv_dim * dim) +
        layers * dim + 3 * layers * hidden * dim + dim +
        (size_t)config[6] * head_dim + (config[5] < 0 ? vocab * dim : 0);
    checkpoint c = {malloc(28 + 4 * floats), 28 + 4 * floats};
    if (!c.data)
        return c;
    for (int i = 0; i < 7; i++)
        pp_put_u32(c.data + 4 * i, (uint32_t)config[i]);
    for (size_t i = 0; i < floats; i++) {
        const float value = 0.01f * (float)((int)(i % 13) - 6) + 0.5f;
        memcpy(c.data + 28 + 4 * i, &value, 4);
    }
    return c;
}

/* A version-2 header (magic, version, config, shared flag, group) padded
 * to 256 bytes, followed by `payload` bytes of zeros. */
static checkpoint make_version2(uint32_t version, const int32_t config[7],
                                uint8_t shared, int32_t group, size_t payload) {
    checkpoint c = {calloc(1, 256 + payload), 256 + payload};
    if (!c.data)
        return c;
    pp_put_u32(c.data, 0x616b3432u);
    pp_put_u32(c.data + 4, version);
    for (int i = 0; i < 7; i++)
        pp_put_u32(c.data + 8 + 4 * i, (uint32_t)config[i]);
    c.data[36] = shared;
    pp_put_u32(c.data + 37, (uint32_t)group);
    return c;
}

/* Bytes of a version-2 export of `config` with group size `group`. */
static size_t version2_payload(const int32_t config[7], size_t group) {
    const size_t dim = (size_t)config[0], hidden = (size_t)config[1];
    const size_t layers = (size_t)config[2];
    const size_t kv_dim = dim / (size_t)config[3] * (size_t)config[4];
    const size_t vocab = (size_t)config[5];
    const size_t values = vocab * dim +
                          layers * (2 * dim * dim + 2 * kv_dim * dim +
                                    3 * hidden * dim);
    return 4 * (2 * layers + 1) * dim + values + 4 * (values / group);
}

static const int32_t tiny_config[7] = {8, 12, 1, 2, 1, 8, 4};

/* Parses the bytes and checks for -1 with a message. */
static void check_parse_rejected(const char *name, const uint8_t *data,
                                 size_t size) {
    pp_llama2c model;
    char err[512] = "";
    const int rc = pp_llama2c_parse(data, size, &model, err, sizeof err);
    CHECKF(rc == -1, "%s: pp_llama2c_parse returned %d, expected -1", name, rc);
    CHECKF(err[0] != '\0', "%s: pp_llama2c_parse left the message empty", name);
    if (rc == 0)
        pp_llama2c_free(&model);
}

static void check_parse_accepted(const char *name, const uint8_t *data,
                                 size_t size) {
    pp_llama2c model;
    char err[512] = "";
    const int rc = pp_llama2c_parse(data, size, &model, err, sizeof err);
    CHECKF(rc == 0, "%s: pp_llama2c_parse returned %d: %s", name, rc, err);
    if (rc == 0)
        pp_llama2c_free(&model);
}

/* A legacy header of `config` over the tiny checkpoint's bytes. */
static void check_legacy_header(const char *name, const int32_t config[7]) {
    checkpoint c = make_legacy(tiny_config);
    if (!c.data)
        return;
    for (int i = 0; i < 7; i++)
        pp_put_u32(c.data + 4 * i, (uint32_t)config[i]);
    check_parse_rejected(name, c.data, c.size);
    free(c.data);
}

static void test_llama2c_valid_accepted(void) {
    checkpoint c = make_legacy(tiny_config);
    if (c.data)
        check_parse_accepted("tiny legacy checkpoint", c.data, c.size);
    free(c.data);

    const int32_t untied[7] = {8, 12, 1, 2, 1, -8, 4};
    c = make_legacy(untied);
    if (c.data)
        check_parse_accepted("tiny legacy checkpoint, untied", c.data, c.size);
    free(c.data);

    c = make_version2(2, tiny_config, 1, 4, version2_payload(tiny_config, 4));
    if (c.data)
        check_parse_accepted("tiny version-2 export", c.data, c.size);
    free(c.data);

    const char *path = check_shared(CHECKPOINT_PATH);
    if (!check_require_file(path))
        return;
    size_t size;
    uint8_t *data = check_read_file(path, &size);
    if (data)
        check_parse_accepted("stories260K", data, size);
    free(data);
}

static void test_llama2c_truncated_rejected(void) {
    checkpoint c = make_legacy(tiny_config);
    if (!c.data)
        return;
    check_parse_rejected("empty checkpoint", c.data, 0);
    check_parse_rejected("checkpoint of 27 bytes", c.data, 27);
    check_parse_rejected("header only", c.data, 28);
    check_parse_rejected("one byte short", c.data, c.size - 1);
    check_parse_rejected("half the checkpoint", c.data, c.size / 2);

    uint8_t *longer = malloc(c.size + 1);
    if (longer) {
        memcpy(longer, c.data, c.size);
        longer[c.size] = 0;
        check_parse_rejected("one byte too long", longer, c.size + 1);
    }
    free(longer);

    /* A negative vocab size means an untied classifier, which these bytes
     * lack. */
    pp_put_u32(c.data + 20, (uint32_t)-8);
    check_parse_rejected("untied classifier missing", c.data, c.size);
    free(c.data);
}

static void test_llama2c_bad_dims_rejected(void) {
    static const struct {
        const char *name;
        int32_t config[7];
    } cases[] = {
        {"dim 0", {0, 12, 1, 2, 1, 8, 4}},
        {"dim -8", {-8, 12, 1, 2, 1, 8, 4}},
        {"dim 2^20", {1 << 20, 12, 1, 2, 1, 8, 4}},
        {"hidden 0", {8, 0, 1, 2, 1, 8, 4}},
        {"hidden -1", {8, -1, 1, 2, 1, 8, 4}},
        {"layers 0", {8, 12, 0, 2, 1, 8, 4}},
        {"layers 1025", {8, 12, 1025, 2, 1, 8, 4}},
        {"heads 0", {8, 12, 1, 0, 1, 8, 4}},
        {"heads -2", {8, 12, 1, -2, 1, 8, 4}},
        {"heads 3 do not divide dim 8", {8, 12, 1, 3, 1, 8, 4}},
        {"heads 8 give odd head_dim 1", {8, 12, 1, 8, 1, 8, 4}},
        {"kv heads 0", {8, 12, 1, 2, 0, 8, 4}},
        {"kv heads 3 do not divide 2 heads", {8, 12, 1, 2, 3, 8, 4}},
        {"kv heads -1", {8, 12, 1, 2, -1, 8, 4}},
        {"vocab 0", {8, 12, 1, 2, 1, 0, 4}},
        {"vocab 2^23", {8, 12, 1, 2, 1, 1 << 23, 4}},
        {"seq_len 0", {8, 12, 1, 2, 1, 8, 0}},
        {"seq_len -1", {8, 12, 1, 2, 1, 8, -1}},
        {"seq_len 2^21", {8, 12, 1, 2, 1, 8, 1 << 21}},
        {"all INT32_MAX",
         {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX,
          INT32_MAX}},
        {"largest accepted dims, tiny file",
         {1 << 16, 1 << 18, 1024, 32, 32, 1 << 22, 1 << 20}},
        {"largest accepted dims, untied, tiny file",
         {1 << 16, 1 << 18, 1024, 32, 32, -(1 << 22), 1 << 20}},
        {"config of another size", {16, 12, 1, 2, 1, 8, 4}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_legacy_header(cases[i].name, cases[i].config);
}

static void test_llama2c_version2_rejected(void) {
    const size_t payload = version2_payload(tiny_config, 4);
    static const struct {
        const char *name;
        uint32_t version;
        int32_t group;
        size_t payload_delta;
    } cases[] = {
        {"version 1", 1, 4, 0},
        {"version 3", 3, 4, 0},
        {"version 0xFFFFFFFF", 0xFFFFFFFFu, 4, 0},
        {"group 0", 2, 0, 0},
        {"group -4", 2, -4, 0},
        {"group 3 does not divide the tensors", 2, 3, 0},
        {"group 2^21", 2, 1 << 21, 0},
        {"one byte too long", 2, 4, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        checkpoint c = make_version2(cases[i].version, tiny_config, 1,
                                     cases[i].group,
                                     payload + cases[i].payload_delta);
        if (!c.data)
            return;
        check_parse_rejected(cases[i].name, c.data, c.size);
        free(c.data);
    }

    checkpoint c = make_version2(2, tiny_config, 1, 4, payload);
    if (!c.data)
        return;
    check_parse_rejected("version 2, header cut to 100 bytes", c.data, 100);
    check_parse_rejected("version 2, header only", c.data, 256);
    check_parse_rejected("version 2, one byte short", c.data, c.size - 1);
    c.data[36] = 0;
    check_parse_rejected("version 2, untied classifier missing", c.data, c.size);
    free(c.data);
}

/* A legacy header whose vocab size is INT32_MIN, which has no positive
 * counterpart. Run last, because UBSan aborts the program here for as long
 * as pp_llama2c_parse negates that value. */
static void test_llama2c_vocab_int32_min_rejected(void) {
    const int32_t config[7] = {8, 12, 1, 2, 1, INT32_MIN, 4};
    check_legacy_header("vocab INT32_MIN", config);
}

/*
 * Converts a tiny legacy checkpoint with one value changed. pp_write_model
 * must either reject it with a message or write a file that
 * pp_model_probe accepts.
 */
static void check_conversion_loads(const char *name, const int32_t config[7],
                                   size_t float_index, float value) {
    checkpoint c = make_legacy(config);
    if (!c.data)
        return;
    memcpy(c.data + 28 + 4 * float_index, &value, 4);

    pp_llama2c model;
    char err[512] = "";
    if (pp_llama2c_parse(c.data, c.size, &model, err, sizeof err) != 0) {
        CHECKF(0, "%s: pp_llama2c_parse failed: %s", name, err);
        free(c.data);
        return;
    }

    const int32_t vocab = model.provider.vocab_size;
    const size_t tokenizer_size = 4 + 9 * (size_t)vocab;
    uint8_t *tokenizer = calloc(1, tokenizer_size);
    char path[] = "/tmp/pprt-malformed-XXXXXX";
    const int fd = tokenizer ? mkstemp(path) : -1;
    if (fd >= 0) {
        close(fd);
        pp_put_u32(tokenizer, 1);
        for (int32_t i = 0; i < vocab; i++) {
            pp_put_u32(tokenizer + 4 + 9 * (size_t)i + 4, 1);
            tokenizer[4 + 9 * (size_t)i + 8] = (uint8_t)('a' + i);
        }
        const pp_write_options options = {0};
        if (pp_write_model(path, &model.provider, tokenizer, tokenizer_size,
                           &options, err, sizeof err) != 0) {
            CHECKF(err[0] != '\0', "%s: pp_write_model failed without a message",
                   name);
        } else {
            size_t size;
            uint8_t *file = check_read_file(path, &size);
            uint8_t *aligned = file ? aligned_copy(file, size, 0) : NULL;
            if (aligned) {
                const pp_source source = {.data = aligned, .size = size};
                pp_model_info info;
                const pp_status status = pp_model_probe(&source, &info);
                CHECKF(status == PP_OK,
                       "%s: pp_write_model succeeded but pp_model_probe of "
                       "its file returned '%s'",
                       name, pp_status_string(status));
            }
            free(aligned);
            free(file);
        }
        remove(path);
    }
    free(tokenizer);
    pp_llama2c_free(&model);
    free(c.data);
}

/* The converter must not write a file that the runtime rejects. */
static void test_converter_output_loads(void) {
    const size_t embedding = 8 * 8;  /* floats before the attention norms */
    const size_t wo = embedding + 8 + 64 + 2 * 32; /* first wo value */
    check_conversion_loads("unchanged tiny checkpoint", tiny_config, 0, 0.5f);
    check_conversion_loads("output projection weight 1e20", tiny_config, wo,
                           1e20f);
    check_conversion_loads("NaN attention norm", tiny_config, embedding, NAN);

    const int32_t vocab2[7] = {8, 12, 1, 2, 1, 2, 4};
    check_conversion_loads("vocab 2, below BOS and EOS ids", vocab2, 0, 0.5f);
}

int main(void) {
    RUN(test_converted_model_accepted);
    RUN(test_appended_classifier_accepted);
    RUN(test_truncated_header);
    RUN(test_truncated_at_section_boundaries);
    RUN(test_header_byte_flips);
    RUN(test_header_fields_rejected);
    RUN(test_header_fields_accepted);
    RUN(test_sections_past_end);
    RUN(test_sections_misplaced);
    RUN(test_sections_overlapping);
    RUN(test_section_ids);
    RUN(test_required_sections_missing);
    RUN(test_section_sizes_wrong);
    RUN(test_tile_directory_rejected);
    RUN(test_directory_checked_as_used);
    RUN(test_tokenizer_section_rejected);
    RUN(test_bpe_tokenizer_section);
    RUN(test_non_finite_sections_rejected);
    RUN(test_weight_flips_need_verify);
    RUN(test_llama2c_valid_accepted);
    RUN(test_llama2c_truncated_rejected);
    RUN(test_llama2c_bad_dims_rejected);
    RUN(test_llama2c_version2_rejected);
    RUN(test_converter_output_loads);
    RUN(test_llama2c_vocab_int32_min_rejected);
    free(base.data);
    return check_summary("test_malformed");
}
