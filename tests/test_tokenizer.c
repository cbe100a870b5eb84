/*
 * test_tokenizer.c - the BPE tokenizer against reference token ids, its
 * checks on hostile tokenizer sections, its arena use, and the sampler.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "check.h"
#include "pprt.h"
#include "tokenizer.h"

#define TOKENIZER_PATH "models/stories260K/tok512.bin"
#define EVAL_TEXT_PATH "data/tinystories-valid-a.txt"
#define REFERENCE_IDS_PATH "reference/a_tokens_first3.i32"

#define BOS_ID 1
#define EOS_ID 2
#define STORY_COUNT 3

/* ---- Helpers -------------------------------------------------------------- */

/* A tokenizer loaded from the reference file with the memory behind it. */
typedef struct loaded_tokenizer {
    pp_tokenizer tokenizer;
    uint8_t *section;
    size_t section_size;
    void *memory;
} loaded_tokenizer;

static uint8_t *align_to_arena(void *pointer) {
    const uintptr_t address = (uintptr_t)pointer;
    const uintptr_t mask = PP_ARENA_ALIGN - 1;
    return (uint8_t *)((address + mask) & ~mask);
}

static int32_t read_i32_le(const uint8_t *p) {
    const uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                          (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void write_u32_le(uint8_t *p, uint32_t value) {
    p[0] = (uint8_t)value;
    p[1] = (uint8_t)(value >> 8);
    p[2] = (uint8_t)(value >> 16);
    p[3] = (uint8_t)(value >> 24);
}

static void write_f32_le(uint8_t *p, float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    write_u32_le(p, bits);
}

/* Measures the arena for `section`, then loads it into a fresh buffer. */
static pp_status load_section(pp_tokenizer *tokenizer, void **memory,
                              const uint8_t *section, size_t size,
                              int32_t vocab_size) {
    pp_arena arena;
    pp_arena_init(&arena, NULL, 0);
    pp_status status = pp_tokenizer_load(NULL, &arena, section, size,
                                         vocab_size, BOS_ID, EOS_ID);
    *memory = NULL;
    if (status != PP_OK)
        return status;

    const size_t bytes = arena.used;
    *memory = malloc(bytes + PP_ARENA_ALIGN);
    if (!*memory)
        return PP_ERR_ARENA_TOO_SMALL;
    pp_arena_init(&arena, align_to_arena(*memory), bytes);
    return pp_tokenizer_load(tokenizer, &arena, section, size, vocab_size,
                             BOS_ID, EOS_ID);
}

/* Reads the vocabulary size from a trusted llama2.c tokenizer file. */
static int32_t count_tokens(const uint8_t *section, size_t size) {
    size_t offset = 4;
    int32_t count = 0;
    while (offset + 8 <= size) {
        offset += 8 + (size_t)read_i32_le(section + offset + 4);
        count++;
    }
    return count;
}

/* Returns the offset of token `index`'s score in a trusted section. */
static size_t token_record_offset(const uint8_t *section, int32_t index) {
    size_t offset = 4;
    for (int32_t i = 0; i < index; i++)
        offset += 8 + (size_t)read_i32_le(section + offset + 4);
    return offset;
}

/* Loads the reference tokenizer. Returns 0, skipping or failing the current
   test, when it is missing or does not load. */
static int load_reference_tokenizer(loaded_tokenizer *loaded) {
    memset(loaded, 0, sizeof *loaded);
    const char *path = check_shared(TOKENIZER_PATH);
    if (!check_require_file(path))
        return 0;
    loaded->section = check_read_file(path, &loaded->section_size);
    if (!loaded->section)
        return 0;

    const int32_t vocab_size =
        count_tokens(loaded->section, loaded->section_size);
    const pp_status status =
        load_section(&loaded->tokenizer, &loaded->memory, loaded->section,
                     loaded->section_size, vocab_size);
    CHECKF(status == PP_OK, "loading %s returned status %d", path,
           (int)status);
    return status == PP_OK;
}

static void free_loaded_tokenizer(loaded_tokenizer *loaded) {
    free(loaded->section);
    free(loaded->memory);
    memset(loaded, 0, sizeof *loaded);
}

static int is_python_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/*
 * Splits the eval text the way the reference did: stories are separated by
 * "\n\n", each is stripped of surrounding whitespace, inner newlines become
 * spaces, and empty stories are dropped. Stores up to `max_stories`
 * malloc'd strings and returns how many.
 */
static int split_stories(const char *text, size_t size, char **stories,
                         int max_stories) {
    int count = 0;
    size_t start = 0;
    while (start <= size && count < max_stories) {
        size_t end = start;
        while (end < size && !(text[end] == '\n' && end + 1 < size &&
                               text[end + 1] == '\n'))
            end++;
        const size_t next = end < size ? end + 2 : size + 1;

        size_t first = start, last = end;
        while (first < last && is_python_space(text[first]))
            first++;
        while (last > first && is_python_space(text[last - 1]))
            last--;
        if (last > first) {
            char *story = malloc(last - first + 1);
            if (!story)
                break;
            for (size_t i = first; i < last; i++)
                story[i - first] = text[i] == '\n' ? ' ' : text[i];
            story[last - first] = '\0';
            stories[count++] = story;
        }
        start = next;
    }
    return count;
}

/* Reads the first STORY_COUNT stories. Returns 0 when they are missing. */
static int read_reference_stories(char **stories) {
    const char *path = check_shared(EVAL_TEXT_PATH);
    if (!check_require_file(path))
        return 0;
    size_t size;
    char *text = check_read_file(path, &size);
    if (!text)
        return 0;
    const int count = split_stories(text, size, stories, STORY_COUNT);
    free(text);
    CHECKF(count == STORY_COUNT, "found %d stories in %s, expected %d",
           count, path, STORY_COUNT);
    if (count != STORY_COUNT) {
        for (int i = 0; i < count; i++)
            free(stories[i]);
        return 0;
    }
    return 1;
}

static void free_stories(char **stories) {
    for (int i = 0; i < STORY_COUNT; i++)
        free(stories[i]);
}

/* Encodes `text` into a malloc'd array sized by the encode contract. */
static int32_t *encode_text(const pp_tokenizer *tokenizer, const char *text,
                            size_t length, int bos, int32_t *count,
                            pp_status *status) {
    const int32_t capacity = (int32_t)length + 3;
    int32_t *tokens = malloc((size_t)capacity * sizeof *tokens);
    if (!tokens) {
        *status = PP_ERR_CAPACITY;
        return NULL;
    }
    *status = pp_tokenizer_encode(tokenizer, text, length, bos, tokens,
                                  capacity, count);
    return tokens;
}

/*
 * Decodes tokens[1 .. count) after tokens[0] into `out` (NUL-terminated)
 * and returns the decoded length, or SIZE_MAX when a token does not decode
 * or `out` is too small.
 */
static size_t decode_tokens(const pp_tokenizer *tokenizer,
                            const int32_t *tokens, int32_t count, char *out,
                            size_t out_size) {
    size_t used = 0;
    for (int32_t i = 1; i < count; i++) {
        size_t length;
        const char *piece =
            pp_tokenizer_decode(tokenizer, tokens[i - 1], tokens[i], &length);
        if (!piece || used + length >= out_size)
            return SIZE_MAX;
        memcpy(out + used, piece, length);
        used += length;
    }
    out[used] = '\0';
    return used;
}

/* ---- Encoding against the reference ------------------------------------- */

static void test_encode_reference_stories(void) {
    loaded_tokenizer loaded;
    char *stories[STORY_COUNT];
    if (!load_reference_tokenizer(&loaded))
        return;
    if (!read_reference_stories(stories)) {
        free_loaded_tokenizer(&loaded);
        return;
    }

    const char *ids_path = check_shared(REFERENCE_IDS_PATH);
    size_t ids_size = 0;
    uint8_t *ids_bytes = NULL;
    if (check_require_file(ids_path))
        ids_bytes = check_read_file(ids_path, &ids_size);
    if (!ids_bytes) {
        free_stories(stories);
        free_loaded_tokenizer(&loaded);
        return;
    }
    CHECKF(ids_size % 4 == 0, "%s has %zu bytes, not a whole number of "
           "int32 ids", ids_path, ids_size);
    const size_t id_count = ids_size / 4;

    /* Each story in the reference stream starts with BOS. */
    size_t position = 0;
    for (int s = 0; s < STORY_COUNT; s++) {
        CHECKF(position < id_count &&
                   read_i32_le(ids_bytes + 4 * position) == BOS_ID,
               "reference story %d does not start with BOS at id %zu", s,
               position);
        size_t end = position + 1;
        while (end < id_count && read_i32_le(ids_bytes + 4 * end) != BOS_ID)
            end++;

        int32_t count = 0;
        pp_status status;
        int32_t *tokens = encode_text(&loaded.tokenizer, stories[s],
                                      strlen(stories[s]), 1, &count,
                                      &status);
        CHECKF(status == PP_OK, "story %d: encode returned status %d", s,
               (int)status);
        CHECKF((size_t)count == end - position,
               "story %d: %d ids, reference has %zu", s, (int)count,
               end - position);
        for (int32_t i = 0; status == PP_OK && i < count &&
                            position + (size_t)i < end; i++) {
            const int32_t expected =
                read_i32_le(ids_bytes + 4 * (position + (size_t)i));
            CHECKF(tokens[i] == expected,
                   "story %d id %d: got %d, reference %d", s, (int)i,
                   (int)tokens[i], (int)expected);
        }
        free(tokens);
        position = end;
    }
    CHECKF(position == id_count, "reference stream has %zu ids after %d "
           "stories, used %zu", id_count, STORY_COUNT, position);

    free(ids_bytes);
    free_stories(stories);
    free_loaded_tokenizer(&loaded);
}

static void test_decode_round_trips_stories(void) {
    loaded_tokenizer loaded;
    char *stories[STORY_COUNT];
    if (!load_reference_tokenizer(&loaded))
        return;
    if (!read_reference_stories(stories)) {
        free_loaded_tokenizer(&loaded);
        return;
    }

    for (int s = 0; s < STORY_COUNT; s++) {
        const size_t length = strlen(stories[s]);
        int32_t count = 0;
        pp_status status;
        int32_t *tokens = encode_text(&loaded.tokenizer, stories[s], length,
                                      1, &count, &status);
        CHECKF(status == PP_OK, "story %d: encode returned status %d", s,
               (int)status);

        char *decoded = malloc(length + 64);
        const size_t decoded_length =
            status == PP_OK && decoded
                ? decode_tokens(&loaded.tokenizer, tokens, count, decoded,
                                length + 64)
                : SIZE_MAX;
        CHECKF(decoded_length == length,
               "story %d: decoded %zu bytes, expected %zu", s,
               decoded_length, length);
        CHECKF(decoded_length == length &&
                   memcmp(decoded, stories[s], length) == 0,
               "story %d: decoded text differs: \"%s\"", s,
               decoded_length == length ? decoded : "");
        free(decoded);
        free(tokens);
    }

    free_stories(stories);
    free_loaded_tokenizer(&loaded);
}

static void test_decode_special_cases(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const pp_tokenizer *tokenizer = &loaded.tokenizer;

    size_t length = 99;
    CHECK(pp_tokenizer_decode(tokenizer, BOS_ID, -1, &length) == NULL);
    CHECK(pp_tokenizer_decode(tokenizer, BOS_ID, tokenizer->vocab_size,
                              &length) == NULL);

    /* Byte token of 'A' decodes to the single byte. */
    const char *piece = pp_tokenizer_decode(tokenizer, 0, 'A' + 3, &length);
    CHECK(piece != NULL);
    if (piece) {
        CHECK(length == 1);
        CHECK(piece[0] == 'A');
    }

    /* A token with a leading space loses it only after BOS. */
    const uint8_t space_a[2] = {' ', 'a'};
    int32_t id = -1;
    for (int32_t i = 0; i < tokenizer->vocab_size && id < 0; i++) {
        const uint32_t start = tokenizer->offsets[i];
        const uint32_t size = tokenizer->offsets[i + 1] - start - 1;
        if (size == 2 && memcmp(tokenizer->text + start, space_a, 2) == 0)
            id = i;
    }
    CHECKF(id >= 0, "no token \" a\" in the vocabulary");
    if (id >= 0) {
        piece = pp_tokenizer_decode(tokenizer, BOS_ID, id, &length);
        CHECK(piece != NULL);
        if (piece) {
            CHECK(length == 1);
            CHECK(piece[0] == 'a');
        }
        piece = pp_tokenizer_decode(tokenizer, EOS_ID, id, &length);
        CHECK(piece != NULL);
        if (piece) {
            CHECK(length == 2);
            CHECK(memcmp(piece, " a", 2) == 0);
        }
    }

    free_loaded_tokenizer(&loaded);
}

/* ---- Hostile sections ----------------------------------------------------- */

/* Checks that validation and loading both reject `section` with `expected`. */
static void check_rejected(const char *label, const uint8_t *section,
                           size_t size, int32_t vocab_size,
                           pp_status expected) {
    size_t text_bytes = 0;
    const pp_status validated =
        pp_tokenizer_validate(section, size, vocab_size, &text_bytes);
    CHECKF(validated == expected, "%s: validate returned %d, expected %d",
           label, (int)validated, (int)expected);

    /* A section of `size` bytes has at most size / 8 tokens, so any
       tokenizer it could describe fits in 4 * size bytes plus padding. */
    const size_t capacity = 4 * size + 1024;
    void *memory = malloc(capacity + PP_ARENA_ALIGN);
    if (!memory) {
        CHECK(memory != NULL);
        return;
    }
    pp_tokenizer tokenizer;
    pp_arena arena;
    pp_arena_init(&arena, align_to_arena(memory), capacity);
    const pp_status loaded = pp_tokenizer_load(
        &tokenizer, &arena, section, size, vocab_size, BOS_ID, EOS_ID);
    CHECKF(loaded == expected, "%s: load returned %d, expected %d", label,
           (int)loaded, (int)expected);
    free(memory);
}

static void test_hostile_sections_rejected(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const uint8_t *original = loaded.section;
    const size_t size = loaded.section_size;
    const int32_t vocab_size = loaded.tokenizer.vocab_size;
    uint8_t *copy = malloc(size);
    if (!copy) {
        CHECK(copy != NULL);
        free_loaded_tokenizer(&loaded);
        return;
    }
    char label[128];

    /* Cut in the header, inside a score, inside a length, inside a text,
       and one byte short of the end. */
    const size_t first_text = token_record_offset(original, 0) + 8;
    const size_t cuts[] = {0, 1, 3, 4, 5, 4 + 3, 4 + 6, first_text,
                           first_text + 1, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(label, sizeof label, "truncated to %zu bytes", cuts[i]);
        check_rejected(label, original, cuts[i], vocab_size,
                       PP_ERR_TRUNCATED);
    }

    /* The last token's length runs one byte past the end. */
    const size_t last = token_record_offset(original, vocab_size - 1);
    memcpy(copy, original, size);
    write_u32_le(copy + last + 4,
                 (uint32_t)read_i32_le(original + last + 4) + 1);
    check_rejected("last length past the end", copy, size, vocab_size,
                   PP_ERR_TRUNCATED);

    /* A huge length within a huge declared maximum. */
    memcpy(copy, original, size);
    write_u32_le(copy, INT32_MAX);
    write_u32_le(copy + token_record_offset(original, 10) + 4, 1000000);
    check_rejected("length of 1000000", copy, size, vocab_size,
                   PP_ERR_TRUNCATED);

    /* Negative lengths. */
    const uint32_t negative_lengths[] = {0xFFFFFFFFu, 0x80000000u};
    for (size_t i = 0; i < 2; i++) {
        memcpy(copy, original, size);
        write_u32_le(copy + token_record_offset(original, 5) + 4,
                     negative_lengths[i]);
        snprintf(label, sizeof label, "length 0x%08X", negative_lengths[i]);
        check_rejected(label, copy, size, vocab_size, PP_ERR_CORRUPT);
    }

    /* A token longer than the declared maximum, and a negative maximum. */
    memcpy(copy, original, size);
    write_u32_le(copy, (uint32_t)read_i32_le(original) - 1);
    check_rejected("maximum length one short", copy, size, vocab_size,
                   PP_ERR_CORRUPT);
    memcpy(copy, original, size);
    write_u32_le(copy, 0xFFFFFFFFu);
    check_rejected("negative maximum length", copy, size, vocab_size,
                   PP_ERR_CORRUPT);

    /* Non-finite scores. */
    const float bad_scores[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        memcpy(copy, original, size);
        write_f32_le(copy + token_record_offset(original, 7), bad_scores[i]);
        snprintf(label, sizeof label, "score %f", (double)bad_scores[i]);
        check_rejected(label, copy, size, vocab_size, PP_ERR_CORRUPT);
    }

    /* A vocabulary size that does not match the section. */
    check_rejected("vocab_size 0", original, size, 0, PP_ERR_CORRUPT);
    check_rejected("vocab_size -5", original, size, -5, PP_ERR_CORRUPT);
    check_rejected("vocab_size one too large", original, size,
                   vocab_size + 1, PP_ERR_TRUNCATED);
    check_rejected("vocab_size one too small", original, size,
                   vocab_size - 1, PP_ERR_CORRUPT);
    check_rejected("vocab_size INT32_MAX", original, size, INT32_MAX,
                   PP_ERR_TRUNCATED);

    /* Special ids outside the vocabulary. */
    pp_tokenizer tokenizer;
    pp_arena arena;
    pp_arena_init(&arena, NULL, 0);
    CHECK(pp_tokenizer_load(&tokenizer, &arena, original, size, vocab_size,
                            vocab_size, EOS_ID) == PP_ERR_CORRUPT);
    CHECK(pp_tokenizer_load(&tokenizer, &arena, original, size, vocab_size,
                            BOS_ID, -1) == PP_ERR_CORRUPT);

    free(copy);
    free_loaded_tokenizer(&loaded);
}

/* Small linear congruential generator, so the mutations are reproducible. */
static uint32_t next_test_random(uint64_t *state) {
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*state >> 33);
}

static void test_mutated_sections_do_not_crash(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const size_t size = loaded.section_size;
    const int32_t vocab_size = loaded.tokenizer.vocab_size;
    uint8_t *copy = malloc(size);
    const char sample[] = "Once upon a time \xff\xe2\x80 <0x41> caf\xc3\xa9.";
    int32_t tokens[sizeof sample + 3];
    uint64_t random_state = 12345;
    int accepted = 0;

    for (int round = 0; copy && round < 3000; round++) {
        memcpy(copy, loaded.section, size);
        const uint32_t flips = 1 + next_test_random(&random_state) % 4;
        for (uint32_t f = 0; f < flips; f++) {
            const size_t at = next_test_random(&random_state) % size;
            copy[at] = (uint8_t)next_test_random(&random_state);
        }
        size_t cut = size;
        if (round % 4 == 0)
            cut = next_test_random(&random_state) % (size + 1);

        size_t text_bytes = 0;
        const pp_status validated =
            pp_tokenizer_validate(copy, cut, vocab_size, &text_bytes);
        CHECKF(validated == PP_OK || validated == PP_ERR_CORRUPT ||
                   validated == PP_ERR_TRUNCATED,
               "round %d: validate returned %d", round, (int)validated);

        pp_tokenizer tokenizer;
        void *memory = NULL;
        const pp_status status =
            load_section(&tokenizer, &memory, copy, cut, vocab_size);
        CHECKF(status == validated, "round %d: load returned %d, validate "
               "%d", round, (int)status, (int)validated);
        if (status == PP_OK) {
            accepted++;
            int32_t count = 0;
            const pp_status encoded = pp_tokenizer_encode(
                &tokenizer, sample, sizeof sample - 1, 1, tokens,
                (int32_t)(sizeof tokens / sizeof tokens[0]), &count);
            CHECKF(encoded == PP_OK, "round %d: encode returned %d", round,
                   (int)encoded);
            for (int32_t i = 0; encoded == PP_OK && i < count; i++) {
                CHECK(tokens[i] >= 0);
                CHECK(tokens[i] < vocab_size);
                size_t length;
                CHECK(pp_tokenizer_decode(&tokenizer, BOS_ID, tokens[i],
                                          &length) != NULL);
            }
        }
        free(memory);
    }
    /* Flipped score or text bytes leave a valid section, so some rounds
       must reach encoding. */
    CHECKF(accepted > 0, "no mutated section was accepted");
    free(copy);
    free_loaded_tokenizer(&loaded);
}

/* ---- Arena use ------------------------------------------------------------ */

static void test_measured_size_is_exact(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const uint8_t *section = loaded.section;
    const size_t size = loaded.section_size;
    const int32_t vocab_size = loaded.tokenizer.vocab_size;

    /* Measuring writes nothing, not even the tokenizer struct. */
    pp_tokenizer untouched, pattern;
    memset(&untouched, 0x5A, sizeof untouched);
    memset(&pattern, 0x5A, sizeof pattern);
    pp_arena measure;
    pp_arena_init(&measure, NULL, 0);
    CHECK(pp_tokenizer_load(&untouched, &measure, section, size, vocab_size,
                            BOS_ID, EOS_ID) == PP_OK);
    CHECK(memcmp(&untouched, &pattern, sizeof pattern) == 0);
    CHECK(measure.failed == 0);
    const size_t measured = measure.used;
    CHECK(measured > size);

    /* An exact-size arena succeeds and uses all of it, and nothing past
       its end changes. */
    const size_t guard = 64;
    uint8_t *memory = malloc(measured + guard + PP_ARENA_ALIGN);
    if (!memory) {
        CHECK(memory != NULL);
        free_loaded_tokenizer(&loaded);
        return;
    }
    uint8_t *base = align_to_arena(memory);
    memset(base + measured, 0xC3, guard);
    pp_tokenizer tokenizer;
    pp_arena arena;
    pp_arena_init(&arena, base, measured);
    CHECK(pp_tokenizer_load(&tokenizer, &arena, section, size, vocab_size,
                            BOS_ID, EOS_ID) == PP_OK);
    CHECKF(arena.used == measured, "used %zu bytes, measured %zu",
           arena.used, measured);
    int guard_intact = 1;
    for (size_t i = 0; i < guard; i++)
        guard_intact &= base[measured + i] == 0xC3;
    CHECK(guard_intact);

    /* One byte less fails. */
    pp_arena_init(&arena, base, measured - 1);
    CHECK(pp_tokenizer_load(&tokenizer, &arena, section, size, vocab_size,
                            BOS_ID, EOS_ID) == PP_ERR_ARENA_TOO_SMALL);

    free(memory);
    free_loaded_tokenizer(&loaded);
}

/* ---- Encoding edge cases -------------------------------------------------- */

typedef struct invalid_utf8_case {
    const char *text;
    size_t length;
    uint8_t bytes[8];  /* bytes that must appear as byte tokens, in order */
    size_t byte_count;
} invalid_utf8_case;

/* Returns 1 if the byte tokens of `bytes` appear in `tokens` in order. */
static int has_byte_tokens_in_order(const int32_t *tokens, int32_t count,
                                    const uint8_t *bytes, size_t byte_count) {
    size_t next = 0;
    for (int32_t i = 0; i < count && next < byte_count; i++)
        if (tokens[i] == bytes[next] + 3)
            next++;
    return next == byte_count;
}

static void test_invalid_utf8_becomes_bytes(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const invalid_utf8_case cases[] = {
        {"\xff\xfe", 2, {0xFF, 0xFE}, 2},
        {"a\x80" "b", 3, {0x80}, 1},
        {"\x80", 1, {0x80}, 1},
        {"ab\xe2\x80", 4, {0xE2, 0x80}, 2},
        {"\xe2\x80x", 3, {0xE2, 0x80}, 2},
        {"\xc0\xaf", 2, {0xC0, 0xAF}, 2},
        {"\xed\xa0\x80", 3, {0xED, 0xA0, 0x80}, 3},
        {"\xf4\x90\x80\x80", 4, {0xF4, 0x90, 0x80, 0x80}, 4},
        {"\xf8\x88\x80\x80\x80", 5, {0xF8, 0x88, 0x80, 0x80, 0x80}, 5},
        {"x\0y", 3, {0x00}, 1},
    };

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const invalid_utf8_case *test_case = &cases[c];
        int32_t count = 0;
        pp_status status;
        int32_t *tokens = encode_text(&loaded.tokenizer, test_case->text,
                                      test_case->length, 1, &count, &status);
        CHECKF(status == PP_OK, "case %zu: encode returned %d", c,
               (int)status);
        if (status != PP_OK) {
            free(tokens);
            continue;
        }
        CHECKF(has_byte_tokens_in_order(tokens, count, test_case->bytes,
                                        test_case->byte_count),
               "case %zu: invalid bytes are not byte tokens", c);

        char decoded[32];
        const size_t length = decode_tokens(&loaded.tokenizer, tokens, count,
                                            decoded, sizeof decoded);
        CHECKF(length == test_case->length &&
                   memcmp(decoded, test_case->text, length) == 0,
               "case %zu: decoding does not give the input back", c);
        free(tokens);
    }

    free_loaded_tokenizer(&loaded);
}

static void test_text_round_trips(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    /* ASCII punctuation, text that spells a byte token, a code point that
       is not in the vocabulary, and leading and repeated spaces. */
    const char *texts[] = {
        "Hello, world!", "<0x41> is not A", "caf\xc3\xa9 \xe4\xb8\xad",
        "  two  spaces ", "\n", "a",
    };

    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        const size_t length = strlen(texts[t]);
        int32_t count = 0;
        pp_status status;
        int32_t *tokens = encode_text(&loaded.tokenizer, texts[t], length, 1,
                                      &count, &status);
        CHECKF(status == PP_OK, "text %zu: encode returned %d", t,
               (int)status);
        char decoded[64];
        const size_t decoded_length =
            status == PP_OK ? decode_tokens(&loaded.tokenizer, tokens, count,
                                            decoded, sizeof decoded)
                            : SIZE_MAX;
        CHECKF(decoded_length == length &&
                   memcmp(decoded, texts[t], length) == 0,
               "text %zu: \"%s\" does not round-trip", t, texts[t]);
        free(tokens);
    }

    free_loaded_tokenizer(&loaded);
}

static void test_long_text_round_trips(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const char *path = check_shared(EVAL_TEXT_PATH);
    size_t size = 0;
    char *text = NULL;
    if (check_require_file(path))
        text = check_read_file(path, &size);
    if (!text) {
        free_loaded_tokenizer(&loaded);
        return;
    }

    /* 64 KiB with newlines and blank lines: encoding that rescanned the
       whole text after every merge would take minutes here. */
    const size_t length = size < 65536 ? size : 65536;
    int32_t count = 0;
    pp_status status;
    int32_t *tokens =
        encode_text(&loaded.tokenizer, text, length, 1, &count, &status);
    CHECKF(status == PP_OK, "encode returned %d", (int)status);
    CHECKF(count < (int32_t)length, "%d tokens for %zu bytes", (int)count,
           length);

    char *decoded = malloc(length + 1);
    const size_t decoded_length =
        status == PP_OK && decoded
            ? decode_tokens(&loaded.tokenizer, tokens, count, decoded,
                            length + 1)
            : SIZE_MAX;
    CHECKF(decoded_length == length, "decoded %zu bytes, expected %zu",
           decoded_length, length);
    if (decoded_length == length)
        CHECK(memcmp(decoded, text, length) == 0);

    free(decoded);
    free(tokens);
    free(text);
    free_loaded_tokenizer(&loaded);
}

static void test_vocabulary_code_point_is_one_token(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const pp_tokenizer *tokenizer = &loaded.tokenizer;

    /* Find a multi-byte code point in the vocabulary. */
    int32_t id = -1;
    for (int32_t i = 0; i < tokenizer->vocab_size && id < 0; i++) {
        const uint32_t start = tokenizer->offsets[i];
        const uint32_t size = tokenizer->offsets[i + 1] - start - 1;
        const uint8_t lead = (uint8_t)tokenizer->text[start];
        if (size >= 2 && size <= 4 && lead >= 0xC2 && lead <= 0xF4)
            id = i;
    }
    if (id < 0) {
        fprintf(stderr, "skipped: no multi-byte code point in the "
                        "vocabulary\n");
        check_skip_current = 1;
        free_loaded_tokenizer(&loaded);
        return;
    }

    const char *text = tokenizer->text + tokenizer->offsets[id];
    const size_t length = strlen(text);
    int32_t tokens[8];
    int32_t count = 0;
    CHECK(pp_tokenizer_encode(tokenizer, text, length, 0, tokens, 8,
                              &count) == PP_OK);
    int byte_tokens = 0;
    for (int32_t i = 0; i < count; i++)
        byte_tokens += tokens[i] >= 3 && tokens[i] < 3 + 256;
    CHECKF(byte_tokens == 0, "token %d encodes with %d byte tokens",
           (int)id, byte_tokens);

    free_loaded_tokenizer(&loaded);
}

static void test_empty_text_and_capacity(void) {
    loaded_tokenizer loaded;
    if (!load_reference_tokenizer(&loaded))
        return;
    const pp_tokenizer *tokenizer = &loaded.tokenizer;
    int32_t tokens[16];
    int32_t count = -1;

    CHECK(pp_tokenizer_encode(tokenizer, "", 0, 1, tokens, 16, &count) ==
          PP_OK);
    CHECK(count == 1);
    CHECK(tokens[0] == BOS_ID);

    count = -1;
    CHECK(pp_tokenizer_encode(tokenizer, NULL, 0, 0, tokens, 16, &count) ==
          PP_OK);
    CHECK(count == 0);

    /* The working buffer needs length + 3 ids, whatever the result. */
    count = -1;
    CHECK(pp_tokenizer_encode(tokenizer, "hello", 5, 1, tokens, 7, &count) ==
          PP_ERR_CAPACITY);
    CHECK(count == 8);
    CHECK(pp_tokenizer_encode(tokenizer, "hello", 5, 1, tokens, 8, &count) ==
          PP_OK);
    CHECK(count >= 2);
    CHECK(count <= 7);
    CHECK(pp_tokenizer_encode(tokenizer, "hello", 5, 1, tokens, -1, &count) ==
          PP_ERR_CAPACITY);

    free_loaded_tokenizer(&loaded);
}

/* ---- Synthetic vocabularies ---------------------------------------------- */

typedef struct synthetic_token {
    const char *text;
    float score;
} synthetic_token;

/* Number of ids before the extra tokens: <unk>, BOS, EOS and, with byte
   tokens, <0x00> .. <0xFF>. */
static int32_t synthetic_first_extra(int with_bytes) {
    return with_bytes ? 3 + 256 : 3;
}

/* Returns the text of id `i` in a synthetic vocabulary; byte tokens are
   written into `buffer`. */
static const char *synthetic_text(int32_t i, const synthetic_token *extras,
                                  int with_bytes, char buffer[7]) {
    static const char *const specials[3] = {"<unk>", "<s>", "</s>"};
    const int32_t first_extra = synthetic_first_extra(with_bytes);
    if (i < 3)
        return specials[i];
    if (i < first_extra) {
        snprintf(buffer, 7, "<0x%02X>", (unsigned)(i - 3));
        return buffer;
    }
    return extras[i - first_extra].text;
}

/*
 * Writes a llama2.c tokenizer section with <unk>, BOS, EOS, optionally the
 * 256 byte tokens (score 0), then `extras`. Returns a malloc'd buffer or
 * NULL.
 */
static uint8_t *build_section(const synthetic_token *extras, int32_t count,
                              int with_bytes, size_t *size,
                              int32_t *vocab_size) {
    const int32_t first_extra = synthetic_first_extra(with_bytes);
    *vocab_size = first_extra + count;
    char buffer[7];
    size_t total = 4;
    uint32_t max_length = 0;
    for (int32_t i = 0; i < *vocab_size; i++) {
        const size_t length =
            strlen(synthetic_text(i, extras, with_bytes, buffer));
        total += 8 + length;
        if (length > max_length)
            max_length = (uint32_t)length;
    }

    uint8_t *section = malloc(total);
    if (!section)
        return NULL;
    write_u32_le(section, max_length);
    size_t offset = 4;
    for (int32_t i = 0; i < *vocab_size; i++) {
        const char *text = synthetic_text(i, extras, with_bytes, buffer);
        const float score =
            i < first_extra ? 0.0f : extras[i - first_extra].score;
        const size_t length = strlen(text);
        write_f32_le(section + offset, score);
        write_u32_le(section + offset + 4, (uint32_t)length);
        memcpy(section + offset + 8, text, length);
        offset += 8 + length;
    }
    *size = offset;
    return section;
}

/* Encodes `text` without BOS and compares with `expected`. */
static void check_encoding(const pp_tokenizer *tokenizer, const char *text,
                           const int32_t *expected, int32_t expected_count) {
    int32_t tokens[64];
    int32_t count = 0;
    const pp_status status = pp_tokenizer_encode(
        tokenizer, text, strlen(text), 0, tokens, 64, &count);
    CHECKF(status == PP_OK, "\"%s\": encode returned %d", text, (int)status);
    CHECKF(count == expected_count, "\"%s\": %d ids, expected %d", text,
           (int)count, (int)expected_count);
    for (int32_t i = 0; status == PP_OK && i < count && i < expected_count;
         i++)
        CHECKF(tokens[i] == expected[i], "\"%s\" id %d: got %d, expected %d",
               text, (int)i, (int)tokens[i], (int)expected[i]);
}

static void test_merge_order_synthetic(void) {
    /* No " " token, so the leading space is the byte token <0x20>. */
    const synthetic_token extras[] = {
        {"a", -1.0f},  {"b", -1.0f},  {"c", -1.0f},
        {"ab", -5.0f}, {"ba", -5.0f}, {"bc", -2.0f},
        {"q", -1.0f},  {"q", -1.0f},  {"\xc3\xa9", -1.0f},
        {"x", -1.0f},  {"\xc3\xa9x", -3.0f},
    };
    const int32_t a = synthetic_first_extra(1), c = a + 2;
    const int32_t ab = a + 3, bc = a + 5, q = a + 6, e_acute_x = a + 10;
    const int32_t space = ' ' + 3;
    size_t size;
    int32_t vocab_size;
    uint8_t *section = build_section(
        extras, (int32_t)(sizeof extras / sizeof extras[0]), 1, &size,
        &vocab_size);
    pp_tokenizer tokenizer;
    void *memory = NULL;
    const pp_status status =
        section ? load_section(&tokenizer, &memory, section, size, vocab_size)
                : PP_ERR_INVALID_ARGUMENT;
    CHECKF(status == PP_OK, "loading the synthetic section returned %d",
           (int)status);

    if (status == PP_OK) {
        /* "ab" and "ba" score the same: the first pair merges. */
        const int32_t tie[] = {space, ab, a};
        check_encoding(&tokenizer, "aba", tie, 3);

        /* "bc" outscores "ab". */
        const int32_t best[] = {space, a, bc};
        check_encoding(&tokenizer, "abc", best, 3);

        /* Two tokens with the text "q": lookup finds the lower id. */
        const int32_t duplicate[] = {space, q};
        check_encoding(&tokenizer, "q", duplicate, 2);

        const int32_t plain[] = {space, c};
        check_encoding(&tokenizer, "c", plain, 2);

        /* A merge after a multi-byte code point uses its last byte. */
        const int32_t multibyte[] = {space, e_acute_x};
        check_encoding(&tokenizer, "\xc3\xa9x", multibyte, 2);
    }

    free(memory);
    free(section);
}

static void test_byte_tokens_never_merge(void) {
    /* Merges that would spell the byte token "<0x41>" from literal text. */
    const synthetic_token extras[] = {
        {"<", -1.0f},     {"0", -1.0f},    {"x", -1.0f},
        {"4", -1.0f},     {"1", -1.0f},    {">", -1.0f},
        {"<0", -2.0f},    {"<0x", -3.0f},  {"<0x4", -4.0f},
        {"<0x41", -5.0f}, {"\xc0\xaf", -1.0f}, {"\xe0\x80\xaf", -1.0f},
        {"\xc3\xa9", -1.0f},
    };
    const int32_t first = synthetic_first_extra(1);
    const int32_t prefix = first + 9, close = first + 5, e_acute = first + 12;
    const int32_t space = ' ' + 3;
    size_t size;
    int32_t vocab_size;
    uint8_t *section = build_section(
        extras, (int32_t)(sizeof extras / sizeof extras[0]), 1, &size,
        &vocab_size);
    pp_tokenizer tokenizer;
    void *memory = NULL;
    const pp_status status =
        section ? load_section(&tokenizer, &memory, section, size, vocab_size)
                : PP_ERR_INVALID_ARGUMENT;
    CHECKF(status == PP_OK, "loading the synthetic section returned %d",
           (int)status);

    if (status == PP_OK) {
        const int32_t literal[] = {space, prefix, close};
        check_encoding(&tokenizer, "<0x41>", literal, 3);

        /* Invalid UTF-8 stays bytes even when the vocabulary has it. */
        const int32_t overlong[] = {space, 0xC0 + 3, 0xAF + 3};
        check_encoding(&tokenizer, "\xc0\xaf", overlong, 3);
        const int32_t overlong3[] = {space, 0xE0 + 3, 0x80 + 3, 0xAF + 3};
        check_encoding(&tokenizer, "\xe0\x80\xaf", overlong3, 4);

        const int32_t valid[] = {space, e_acute};
        check_encoding(&tokenizer, "\xc3\xa9", valid, 2);
    }

    free(memory);
    free(section);
}

static void test_missing_byte_tokens_unsupported(void) {
    const synthetic_token extras[] = {{" ", -1.0f}, {"a", -1.0f}};
    size_t size;
    int32_t vocab_size;
    uint8_t *section = build_section(extras, 2, 0, &size, &vocab_size);
    pp_tokenizer tokenizer;
    void *memory = NULL;
    const pp_status status =
        section ? load_section(&tokenizer, &memory, section, size, vocab_size)
                : PP_ERR_INVALID_ARGUMENT;
    CHECKF(status == PP_OK, "loading the synthetic section returned %d",
           (int)status);

    if (status == PP_OK) {
        int32_t tokens[8];
        int32_t count = -1;
        CHECK(pp_tokenizer_encode(&tokenizer, "a", 1, 1, tokens, 8,
                                  &count) == PP_OK);
        CHECK(count == 3);
        CHECK(pp_tokenizer_encode(&tokenizer, "b", 1, 1, tokens, 8,
                                  &count) == PP_ERR_UNSUPPORTED);
        CHECK(pp_tokenizer_encode(&tokenizer, "", 0, 1, tokens, 8,
                                  &count) == PP_OK);
        CHECK(count == 1);
    }

    free(memory);
    free(section);
}

/* ---- Sampler -------------------------------------------------------------- */

static const float sampler_logits[4] = {1.0f, 2.0f, 0.5f, -1.0f};

static int32_t sample_copy(pp_sampler *sampler, const float *logits,
                           int32_t n, void *scratch) {
    float copy[16];
    memcpy(copy, logits, (size_t)n * sizeof *copy);
    return pp_sample(sampler, copy, n, scratch);
}

static void test_sampler_seed_repeats(void) {
    uint8_t scratch[4 * 8];
    pp_sampler first, second, other;
    pp_sampler_init(&first, 1.0f, 0.95f, 42);
    pp_sampler_init(&second, 1.0f, 0.95f, 42);
    pp_sampler_init(&other, 1.0f, 0.95f, 43);

    int same = 1, differs_from_other = 0;
    for (int i = 0; i < 200; i++) {
        const int32_t a = sample_copy(&first, sampler_logits, 4, scratch);
        const int32_t b = sample_copy(&second, sampler_logits, 4, scratch);
        const int32_t c = sample_copy(&other, sampler_logits, 4, scratch);
        same &= a == b;
        differs_from_other |= a != c;
    }
    CHECK(same);
    CHECK(differs_from_other);
}

static void test_sampler_greedy(void) {
    pp_sampler sampler;
    pp_sampler_init(&sampler, 0.0f, 1.0f, 1);
    float logits[5] = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f};
    CHECK(pp_sample(&sampler, logits, 5, NULL) == 1);
    CHECK(logits[1] == 3.0f);

    float single[1] = {-7.0f};
    CHECK(pp_sample(&sampler, single, 1, NULL) == 0);

    float with_nan[3] = {NAN, -2.0f, -1.0f};
    CHECK(pp_sample(&sampler, with_nan, 3, NULL) == 2);

    CHECK(pp_sample(&sampler, logits, 0, NULL) == -1);
}

static void test_sampler_small_top_p(void) {
    uint8_t scratch[4 * 8];
    pp_sampler sampler;
    pp_sampler_init(&sampler, 1.0f, 0.01f, 7);
    int always_top = 1;
    for (int i = 0; i < 500; i++)
        always_top &= sample_copy(&sampler, sampler_logits, 4, scratch) == 1;
    CHECK(always_top);
}

static void test_sampler_top_p_excludes_tail(void) {
    /* Probabilities 0.5, 0.3, 0.15, 0.05: the nucleus for 0.7 is the first
       two tokens, which it draws in the ratio 5:3. */
    const float probabilities[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    float logits[4];
    for (int i = 0; i < 4; i++)
        logits[i] = logf(probabilities[i]);

    uint8_t scratch[4 * 8];
    pp_sampler sampler;
    pp_sampler_init(&sampler, 1.0f, 0.7f, 99);
    int counts[4] = {0, 0, 0, 0};
    const int draws = 20000;
    for (int i = 0; i < draws; i++) {
        const int32_t id = sample_copy(&sampler, logits, 4, scratch);
        CHECK(id >= 0);
        CHECK(id < 4);
        if (id >= 0 && id < 4)
            counts[id]++;
    }
    CHECK(counts[2] == 0);
    CHECK(counts[3] == 0);
    const double first_share = (double)counts[0] / draws;
    CHECKF(fabs(first_share - 0.625) < 0.02, "token 0 drawn %.4f of the "
           "time, expected 0.625", first_share);
}

static void test_sampler_matches_softmax(void) {
    const float temperature = 0.8f;
    double expected[4], sum = 0.0;
    for (int i = 0; i < 4; i++) {
        expected[i] = exp((double)sampler_logits[i] / temperature);
        sum += expected[i];
    }

    pp_sampler sampler;
    pp_sampler_init(&sampler, temperature, 1.0f, 2024);
    int counts[4] = {0, 0, 0, 0};
    const int draws = 20000;
    float probabilities[4];
    for (int i = 0; i < draws; i++) {
        memcpy(probabilities, sampler_logits, sizeof probabilities);
        const int32_t id = pp_sample(&sampler, probabilities, 4, NULL);
        CHECK(id >= 0);
        CHECK(id < 4);
        if (id >= 0 && id < 4)
            counts[id]++;
    }

    /* The logits were replaced by the probabilities of the last draw. */
    for (int i = 0; i < 4; i++)
        CHECKF(fabs(probabilities[i] - expected[i] / sum) < 1e-5,
               "probability %d is %f, expected %f", i,
               (double)probabilities[i], expected[i] / sum);

    /* A standard deviation is at most 0.0036 at 20000 draws, so 0.02 is a
       loose bound. */
    for (int i = 0; i < 4; i++) {
        const double share = (double)counts[i] / draws;
        CHECKF(fabs(share - expected[i] / sum) < 0.02,
               "token %d drawn %.4f of the time, expected %.4f", i, share,
               expected[i] / sum);
    }
}

int main(void) {
    RUN(test_encode_reference_stories);
    RUN(test_decode_round_trips_stories);
    RUN(test_decode_special_cases);
    RUN(test_hostile_sections_rejected);
    RUN(test_mutated_sections_do_not_crash);
    RUN(test_measured_size_is_exact);
    RUN(test_invalid_utf8_becomes_bytes);
    RUN(test_text_round_trips);
    RUN(test_long_text_round_trips);
    RUN(test_vocabulary_code_point_is_one_token);
    RUN(test_empty_text_and_capacity);
    RUN(test_merge_order_synthetic);
    RUN(test_byte_tokens_never_merge);
    RUN(test_missing_byte_tokens_unsupported);
    RUN(test_sampler_seed_repeats);
    RUN(test_sampler_greedy);
    RUN(test_sampler_small_top_p);
    RUN(test_sampler_top_p_excludes_tail);
    RUN(test_sampler_matches_softmax);
    return check_summary("test_tokenizer");
}
