/*
 * tokenizer.h - llama2.c-compatible BPE tokenizer over the tokenizer section
 * of a model file.
 *
 * The section holds llama2.c's tokenizer.bin bytes unchanged: uint32 max
 * token length, then per token a float32 score, an int32 byte length and the
 * bytes (no NUL). pp_tokenizer_load validates it and copies what it needs
 * into the arena, so the section bytes need not stay mapped.
 */
#ifndef PP_TOKENIZER_H
#define PP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "pprt.h"

typedef struct pp_tokenizer {
    int32_t vocab_size;
    uint32_t max_token_length;
    int32_t bos_id, eos_id;
    const float *scores;      /* [vocab_size] merge scores */
    const uint32_t *offsets;  /* [vocab_size + 1] token i is text[offsets[i] ..
                                 offsets[i+1]), NUL-terminated after that */
    const char *text;         /* all token strings, each followed by a NUL */
    const int32_t *sorted;    /* [vocab_size] ids in byte order of their text,
                                 for binary search */
    uint8_t byte_chars[256];  /* text of the <0xNN> byte tokens when decoding */
} pp_tokenizer;

/*
 * Checks the section (every length against the section size, no token
 * longer than max_token_length, finite scores) and returns in *text_bytes
 * the sum of the token lengths. Returns PP_ERR_CORRUPT or PP_ERR_TRUNCATED
 * for a bad section.
 */
pp_status pp_tokenizer_validate(const uint8_t *section, size_t size,
                                int32_t vocab_size, size_t *text_bytes);

/*
 * Builds the tokenizer in `arena` from a section that passed validation.
 * With a measuring arena it only reserves the space. Needs no other memory.
 */
pp_status pp_tokenizer_load(pp_tokenizer *tokenizer, pp_arena *arena,
                            const uint8_t *section, size_t size,
                            int32_t vocab_size, int32_t bos_id,
                            int32_t eos_id);

/*
 * Encodes `length` bytes of UTF-8 text (llama2.c run.c rules: a dummy
 * leading space when the text is not empty, code points found in the
 * vocabulary, others as byte tokens <0xNN> (id byte + 3), then repeated
 * merging of the adjacent pair whose merged text has the highest score, the
 * first such pair on ties). Bytes that are not valid UTF-8 are encoded as
 * byte tokens. BOS first when `bos`. `tokens` is the working buffer and
 * must hold at least length + 3 ids; returns PP_ERR_CAPACITY otherwise,
 * with *n_tokens = length + 3.
 */
pp_status pp_tokenizer_encode(const pp_tokenizer *tokenizer, const char *text,
                              size_t length, int bos, int32_t *tokens,
                              int32_t capacity, int32_t *n_tokens);

/*
 * Returns the bytes of `token` as printed after `previous`: the leading
 * space of a token that follows BOS is dropped, and a <0xNN> token is the
 * single byte NN. Returns NULL for an id out of range.
 */
const char *pp_tokenizer_decode(const pp_tokenizer *tokenizer,
                                int32_t previous, int32_t token,
                                size_t *length);

#endif /* PP_TOKENIZER_H */
