/*
 * tokenizer.h - llama2.c-compatible BPE tokenizer over the tokenizer section
 * of a model file.
 *
 * The section contains llama2.c's tokenizer.bin bytes unchanged: an int32 max
 * token length, then per token a float32 score, an int32 byte length and the
 * bytes (no NUL), all little-endian. pp_tokenizer_load validates it and
 * copies what it needs into the arena, so the section bytes need not stay
 * mapped.
 */
#ifndef PP_TOKENIZER_H
#define PP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "pprt.h"

/* The tokenizer section formats (format.h). */
typedef enum pp_tokenizer_kind {
    PP_TOKENIZER_LLAMA2C = 0,  /* llama2.c tokenizer.bin, scored merges */
    PP_TOKENIZER_BPE = 1,      /* byte-level BPE with ranked merges */
} pp_tokenizer_kind;

/* One merge of a byte-level BPE tokenizer, in a table sorted by (left,
 * right) and then by rank. */
typedef struct pp_bpe_merge {
    int32_t left, right, merged;
    uint32_t rank;  /* position in the section: lower applies first */
} pp_bpe_merge;

typedef struct pp_tokenizer {
    pp_tokenizer_kind kind;
    int32_t vocab_size;
    uint32_t max_token_length;
    int32_t bos_id, eos_id;
    const float *scores;      /* [vocab_size] merge scores */
    const uint32_t *offsets;  /* [vocab_size + 1] token i is the
                                 offsets[i+1] - offsets[i] - 1 bytes at
                                 text + offsets[i], then a NUL */
    const char *text;         /* all token strings, each followed by a NUL */
    const int32_t *sorted;    /* [vocab_size] ids in unsigned byte order of
                                 their text, equal texts by id, for binary
                                 search */
    const uint8_t *pair_bits; /* [256 * 256 / 8] bit 256 * x + y is set when
                                 some token contains byte x followed by byte
                                 y; encoding never merges across other pairs */
    uint8_t byte_chars[256];  /* text of the <0xNN> byte tokens when decoding */

    /* Byte-level BPE only (tokenizer_bpe.c), which also fills offsets and
     * text as above. */
    uint32_t pre_tokenizer;   /* enum pp_bpe_pre_tokenizer */
    int32_t byte_tokens[256]; /* the text token of each single byte, -1 if
                                 the vocabulary has none */
    uint32_t merge_count;
    const pp_bpe_merge *merges;  /* [merge_count] */
} pp_tokenizer;

/*
 * Checks the section (every length against the section size, no negative
 * length or one above max_token_length, finite scores, exactly vocab_size
 * tokens and no bytes after them) and returns in *text_bytes, which may be
 * NULL, the sum of the token lengths. Returns PP_ERR_TRUNCATED when the
 * section ends early and PP_ERR_CORRUPT for any other bad value, including
 * vocab_size <= 0.
 */
pp_status pp_tokenizer_validate(const uint8_t *section, size_t size,
                                int32_t vocab_size, size_t *text_bytes);

/*
 * Validates the section and builds the tokenizer in `arena`. A measuring
 * arena makes the same allocations, writes nothing (`tokenizer` may be
 * NULL) and returns PP_OK. Needs no other memory. Returns the validation
 * errors, PP_ERR_CORRUPT for a BOS or EOS id outside the vocabulary, and
 * PP_ERR_ARENA_TOO_SMALL when the arena is full.
 */
pp_status pp_tokenizer_load(pp_tokenizer *tokenizer, pp_arena *arena,
                            const uint8_t *section, size_t size,
                            int32_t vocab_size, int32_t bos_id,
                            int32_t eos_id);

/*
 * Encodes `length` bytes of UTF-8 text with the llama2.c run.c rules. A
 * dummy leading space comes first when the text is not empty. Code points
 * found in the vocabulary become their token and others become byte tokens
 * <0xNN> (id byte + 3). Then the adjacent pair whose merged text has the
 * highest score is merged, the first such pair on ties, until no pair is in
 * the vocabulary. Unlike run.c, bytes that are not valid UTF-8 always become
 * byte tokens, and byte tokens and BOS never merge. BOS comes first when
 * `bos`.
 *
 * `tokens` is the working buffer and must hold at least length + 3 ids.
 * Returns PP_ERR_CAPACITY otherwise, with *n_tokens = length + 3, and
 * PP_ERR_UNSUPPORTED when a byte token is needed but the vocabulary has
 * fewer than byte + 4 tokens. Returns PP_ERR_INVALID_ARGUMENT for a NULL
 * pointer or a length above INT32_MAX - 3.
 */
pp_status pp_tokenizer_encode(const pp_tokenizer *tokenizer, const char *text,
                              size_t length, int bos, int32_t *tokens,
                              int32_t capacity, int32_t *n_tokens);

/*
 * Returns the bytes of `token` as printed after `previous`: the leading
 * space of a token that follows BOS is dropped, and a token whose text is
 * exactly <0xNN> is the single byte NN. Sets *length (when not NULL) to the
 * byte count. The bytes live in the tokenizer, and a single byte has no NUL
 * after it.
 * Returns NULL for an id out of range.
 */
const char *pp_tokenizer_decode(const pp_tokenizer *tokenizer,
                                int32_t previous, int32_t token,
                                size_t *length);

/*
 * Validation and loading for a section of either kind. The llama2.c kind
 * calls the functions above. The byte-level BPE kind (tokenizer_bpe.c)
 * checks the section format of format.h. pp_tokenizer_encode and
 * pp_tokenizer_decode dispatch on tokenizer->kind. BPE encoding splits
 * the text with the section's pre-tokenizer and merges each piece by rank.
 * It needs at most one id per byte plus BOS, so the capacity rule of
 * pp_tokenizer_encode (length + 3) also holds. BPE decoding returns the
 * token's bytes unchanged, after BOS too.
 */
pp_status pp_tokenizer_validate_kind(pp_tokenizer_kind kind,
                                     const uint8_t *section, size_t size,
                                     int32_t vocab_size, size_t *text_bytes);
pp_status pp_tokenizer_load_kind(pp_tokenizer_kind kind,
                                 pp_tokenizer *tokenizer, pp_arena *arena,
                                 const uint8_t *section, size_t size,
                                 int32_t vocab_size, int32_t bos_id,
                                 int32_t eos_id);

/* The byte-level BPE implementation behind the dispatch. pp_bpe_load also
 * returns PP_ERR_CORRUPT for a merge whose result is not the concatenation
 * of its halves, a check that needs the loaded text. */
pp_status pp_bpe_validate(const uint8_t *section, size_t size,
                          int32_t vocab_size, size_t *text_bytes);
pp_status pp_bpe_load(pp_tokenizer *tokenizer, pp_arena *arena,
                      const uint8_t *section, size_t size, int32_t vocab_size,
                      int32_t bos_id, int32_t eos_id);
pp_status pp_bpe_encode(const pp_tokenizer *tokenizer, const char *text,
                        size_t length, int bos, int32_t *tokens,
                        int32_t capacity, int32_t *n_tokens);
const char *pp_bpe_decode(const pp_tokenizer *tokenizer, int32_t token,
                          size_t *length);

/*
 * Returns the end (a byte offset in (start, length]) of the pre-tokenizer
 * piece that starts at byte `start` of `text`. Bytes that are not valid
 * UTF-8 count as one code point each that is neither a letter, a number
 * nor white space. Exposed for tests.
 */
size_t pp_bpe_piece_end(uint32_t pre_tokenizer, const uint8_t *text,
                        size_t length, size_t start);

#endif /* PP_TOKENIZER_H */
