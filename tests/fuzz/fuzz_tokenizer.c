/*
 * fuzz_tokenizer.c - libFuzzer target: arbitrary bytes as a tokenizer
 * section and a text.
 *
 * Input: uint16 little-endian section size (cut to the bytes available),
 * uint16 little-endian kind and vocab size, the section bytes, then the
 * text. Bit 15 of the second field selects the byte-level BPE section
 * format instead of llama2.c's. Its low 15 bits are the vocab size, where
 * 0 means the number of whole token entries in the section.
 *
 * The section goes through pp_tokenizer_validate_kind and
 * pp_tokenizer_load_kind (measuring, then into an arena of exactly the
 * measured size), which must agree, except that loading a BPE section
 * also rejects merges whose token is not the concatenation of the pair.
 * When it loads, the text is encoded and every id is decoded; for a BPE
 * section the decoded bytes must equal the text. The text is also encoded
 * with the real stories260K tokenizer (tok512.bin, found through
 * PPRT_SHARED, default ../shared, and skipped when missing), where decoding
 * the ids must give back the text byte for byte.
 *
 * Built with -DPP_FUZZ_MAIN it is a libFuzzer target. Without it,
 * tests/test_fuzz_regress.c includes this file and calls fuzz_tokenizer_one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "pprt.h"
#include "tokenizer.h"

#define FUZZ_TOKENIZER_REAL_PATH "models/stories260K/tok512.bin"
#define FUZZ_TOKENIZER_REAL_VOCAB 512
#define FUZZ_TOKENIZER_BPE_FLAG 0x8000

static void fuzz_tokenizer_fail(const char *what, pp_status expected,
                                pp_status actual) {
    fprintf(stderr, "fuzz_tokenizer: %s: expected %s, got %s\n", what,
            pp_status_string(expected), pp_status_string(actual));
    abort();
}

static uint32_t fuzz_tokenizer_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/*
 * Counts the whole token entries of a section, stopping at the first one
 * that does not fit. llama2.c entries (float score, uint32 length, bytes)
 * follow a 4-byte maximum length. BPE entries (uint8 kind, uint32 length,
 * bytes) follow an 8-byte header and end where the merges begin: 12 bytes
 * each, as many as the header's second uint32 gives.
 */
static int32_t fuzz_tokenizer_count(pp_tokenizer_kind kind,
                                    const uint8_t *section, size_t size) {
    size_t offset = 4;
    size_t entry_bytes = 8;
    size_t length_at = 4;
    if (kind == PP_TOKENIZER_BPE) {
        if (size < 8)
            return 0;
        const uint64_t merges = (uint64_t)fuzz_tokenizer_u32(section + 4) * 12;
        size = merges <= size - 8 ? size - (size_t)merges : size;
        offset = 8;
        entry_bytes = 5;
        length_at = 1;
    }

    int32_t count = 0;
    while (size >= offset && size - offset >= entry_bytes && count < INT32_MAX) {
        const uint32_t length = fuzz_tokenizer_u32(section + offset + length_at);
        offset += entry_bytes;
        if (length > size - offset)
            break;
        offset += length;
        count++;
    }
    return count;
}

/* Loads a section into a fresh arena of exactly the measured size. */
static pp_status fuzz_tokenizer_load(pp_tokenizer_kind kind,
                                     pp_tokenizer *tokenizer, void **memory,
                                     const uint8_t *section, size_t size,
                                     int32_t vocab_size, int32_t bos_id,
                                     int32_t eos_id) {
    pp_arena arena;
    *memory = NULL;
    pp_arena_init(&arena, NULL, 0);
    const pp_status measured = pp_tokenizer_load_kind(
        kind, NULL, &arena, section, size, vocab_size, bos_id, eos_id);
    if (measured != PP_OK)
        return measured;

    const size_t bytes = arena.used;
    *memory = aligned_alloc(PP_ARENA_ALIGN,
                            (bytes + PP_ARENA_ALIGN) / PP_ARENA_ALIGN *
                                PP_ARENA_ALIGN);
    if (!*memory)
        return PP_ERR_ARENA_TOO_SMALL;
    pp_arena_init(&arena, *memory, bytes);
    const pp_status loaded = pp_tokenizer_load_kind(
        kind, tokenizer, &arena, section, size, vocab_size, bos_id, eos_id);
    /* Only loading a BPE section compares each merge with its pair. */
    if (kind == PP_TOKENIZER_BPE && loaded == PP_ERR_CORRUPT)
        return loaded;
    if (loaded != PP_OK)
        fuzz_tokenizer_fail("pp_tokenizer_load after a successful measure",
                            PP_OK, loaded);
    if (arena.used != bytes)
        fuzz_tokenizer_fail("arena use equals the measured size", PP_OK,
                            PP_ERR_ARENA_TOO_SMALL);
    return PP_OK;
}

/*
 * Encodes `text` and decodes every id. With `round_trip`, the decoded
 * bytes must equal the text. Returns the encode status.
 */
static pp_status fuzz_tokenizer_encode(const pp_tokenizer *tokenizer,
                                       const char *text, size_t length,
                                       int round_trip) {
    const int32_t capacity = (int32_t)length + 3;
    int32_t *tokens = malloc((size_t)capacity * sizeof *tokens);
    char *decoded = malloc(length + 1);
    if (!tokens || !decoded) {
        free(tokens);
        free(decoded);
        return PP_OK;
    }

    /* One id too few must be reported, with the capacity needed. */
    int32_t n_tokens = 0;
    pp_status status = pp_tokenizer_encode(tokenizer, text, length, 1, tokens,
                                           capacity - 1, &n_tokens);
    if (status != PP_ERR_CAPACITY)
        fuzz_tokenizer_fail("pp_tokenizer_encode below capacity",
                            PP_ERR_CAPACITY, status);
    if (n_tokens != capacity)
        fuzz_tokenizer_fail("capacity reported by pp_tokenizer_encode",
                            PP_ERR_CAPACITY, PP_OK);

    status = pp_tokenizer_encode(tokenizer, text, length, 1, tokens, capacity,
                                 &n_tokens);
    if (status != PP_OK) {
        /* Only a vocabulary without the needed byte token may fail. */
        if (status != PP_ERR_UNSUPPORTED)
            fuzz_tokenizer_fail("pp_tokenizer_encode", PP_OK, status);
        free(tokens);
        free(decoded);
        return status;
    }
    if (n_tokens < 1 || n_tokens > capacity || tokens[0] != tokenizer->bos_id)
        fuzz_tokenizer_fail("token count and BOS of pp_tokenizer_encode",
                            PP_OK, PP_ERR_CORRUPT);

    size_t decoded_length = 0;
    int mismatch = 0;
    for (int32_t i = 1; i < n_tokens; i++) {
        if (tokens[i] < 0 || tokens[i] >= tokenizer->vocab_size)
            fuzz_tokenizer_fail("encoded id inside the vocabulary", PP_OK,
                                PP_ERR_CORRUPT);
        size_t piece_length = 0;
        const char *piece = pp_tokenizer_decode(tokenizer, tokens[i - 1],
                                                tokens[i], &piece_length);
        if (!piece)
            fuzz_tokenizer_fail("pp_tokenizer_decode of an encoded id", PP_OK,
                                PP_ERR_INVALID_ARGUMENT);
        if (round_trip) {
            if (piece_length > length - decoded_length) {
                mismatch = 1;
                break;
            }
            memcpy(decoded + decoded_length, piece, piece_length);
            decoded_length += piece_length;
        }
    }
    if (round_trip && (mismatch || decoded_length != length ||
                       memcmp(decoded, text, length) != 0))
        fuzz_tokenizer_fail("decoded ids equal the text", PP_OK, PP_ERR_CORRUPT);

    /* Out-of-range ids decode to NULL. */
    if (pp_tokenizer_decode(tokenizer, 0, tokenizer->vocab_size, NULL) ||
        pp_tokenizer_decode(tokenizer, 0, -1, NULL))
        fuzz_tokenizer_fail("pp_tokenizer_decode of an id out of range",
                            PP_ERR_INVALID_ARGUMENT, PP_OK);
    free(tokens);
    free(decoded);
    return PP_OK;
}

/* The real tokenizer, loaded on first use; NULL when the file is missing. */
static const pp_tokenizer *fuzz_tokenizer_real(void) {
    static pp_tokenizer tokenizer;
    static int state; /* 0 not tried, 1 loaded, -1 missing */
    static void *memory;
    if (state != 0)
        return state > 0 ? &tokenizer : NULL;
    state = -1;

    const char *root = getenv("PPRT_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : "../shared",
             FUZZ_TOKENIZER_REAL_PATH);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static uint8_t section[1 << 16];
    const size_t size = fread(section, 1, sizeof section, f);
    fclose(f);
    const pp_status status =
        fuzz_tokenizer_load(PP_TOKENIZER_LLAMA2C, &tokenizer, &memory, section,
                            size, FUZZ_TOKENIZER_REAL_VOCAB, 1, 2);
    if (status != PP_OK)
        fuzz_tokenizer_fail("loading tok512.bin", PP_OK, status);
    state = 1;
    return &tokenizer;
}

static void fuzz_tokenizer_one(const uint8_t *data, size_t size) {
    if (size < 4)
        return;
    size_t section_size = (size_t)data[0] | (size_t)data[1] << 8;
    const int32_t vocab_field = (int32_t)data[2] | (int32_t)data[3] << 8;
    data += 4;
    size -= 4;
    if (section_size > size)
        section_size = size;
    const char *text = (const char *)data + section_size;
    const size_t text_length = size - section_size;

    /* A private copy, so reads past the section end are caught by ASan. */
    uint8_t *section = malloc(section_size ? section_size : 1);
    if (!section)
        return;
    memcpy(section, data, section_size);

    const pp_tokenizer_kind kind = (vocab_field & FUZZ_TOKENIZER_BPE_FLAG)
                                       ? PP_TOKENIZER_BPE
                                       : PP_TOKENIZER_LLAMA2C;
    const int32_t vocab_bits = vocab_field & ~FUZZ_TOKENIZER_BPE_FLAG;
    const int32_t vocab = vocab_bits != 0
                              ? vocab_bits
                              : fuzz_tokenizer_count(kind, section, section_size);
    const int32_t bos_id = vocab > 1 ? 1 : 0;
    const int32_t eos_id = vocab > 2 ? 2 : 0;

    size_t text_bytes = 0;
    const pp_status validated = pp_tokenizer_validate_kind(
        kind, section, section_size, vocab, &text_bytes);
    pp_tokenizer tokenizer;
    void *memory = NULL;
    const pp_status loaded =
        fuzz_tokenizer_load(kind, &tokenizer, &memory, section, section_size,
                            vocab, bos_id, eos_id);
    if (loaded != validated &&
        !(kind == PP_TOKENIZER_BPE && validated == PP_OK &&
          loaded == PP_ERR_CORRUPT))
        fuzz_tokenizer_fail("pp_tokenizer_load agrees with validate",
                            validated, loaded);
    /* Byte-level BPE decodes every token to its bytes, so the ids of a
     * text must decode to that text. */
    if (loaded == PP_OK)
        fuzz_tokenizer_encode(&tokenizer, text, text_length,
                              kind == PP_TOKENIZER_BPE);
    free(memory);
    free(section);

    const pp_tokenizer *real = fuzz_tokenizer_real();
    if (real) {
        const pp_status status =
            fuzz_tokenizer_encode(real, text, text_length, 1);
        if (status != PP_OK)
            fuzz_tokenizer_fail("encoding with tok512.bin", PP_OK, status);
    }
}

#ifdef PP_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_tokenizer_one(data, size);
    return 0;
}
#endif
