/*
 * tokenizer.c - llama2.c-compatible BPE encoding and decoding.
 *
 * Encoding follows llama2.c run.c: a leading space token, one token per
 * UTF-8 code point found in the vocabulary, byte tokens (id = byte + 3) for
 * the rest, then repeated merging of the adjacent pair whose concatenated
 * text is the vocabulary entry with the highest score. Three differences
 * keep encoding safe on any input. Bytes that are not valid UTF-8 always
 * become byte tokens. Byte tokens never take part in a merge, because run.c
 * merges their "<0xNN>" text, so literal text such as "<0x41>" could turn
 * into the byte 'A'. BOS never merges with the text after it. So the ids
 * differ from run.c only for invalid UTF-8, for merges that pass through a
 * "<0xNN>" text, and for a vocabulary that has BOS's text joined to a
 * piece of text as a token.
 *
 * Lookups use a binary search over the ids sorted by their bytes. A pair is
 * compared in two parts, so merging needs no buffer for the concatenation.
 *
 * Merging rescans every adjacent pair after each merge, which takes
 * O(n^2 log V) time for n tokens (run.c merges the whole text that way). To
 * keep long texts fast, encoding first cuts the tokens into segments that
 * no merge can cross. A cut goes between two tokens whose boundary bytes x
 * and y are adjacent in no vocabulary entry, because any token that spans
 * that boundary would contain x followed by y. Merges in one segment never
 * change the pairs of another, so merging each segment alone gives the same
 * result as merging the whole text. With a sentencepiece vocabulary the
 * segments are about one word long.
 *
 * NOTE: a segment stays quadratic, so a long run of bytes that vocabulary
 * entries chain together (e.g. thousands of letters without a space) is
 * still slow.
 */
#include <math.h>
#include <stdalign.h>
#include <string.h>

#include "tokenizer.h"

/* A merge needs a score above this, the starting best score in run.c. */
#define PP_MIN_MERGE_SCORE (-1e10f)

/* Byte tokens start at this id: 0 is <unk>, 1 BOS, 2 EOS. */
#define PP_BYTE_TOKEN_BASE 3

/* Bytes of the byte-pair bitmap: one bit for each (x, y). */
#define PP_PAIR_BITS_BYTES (256 * 256 / 8)

/* ---- Section parsing ---------------------------------------------------- */

static uint32_t read_u32_le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static float read_f32_le(const uint8_t *p) {
    const uint32_t bits = read_u32_le(p);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

pp_status pp_tokenizer_validate(const uint8_t *section, size_t size,
                                int32_t vocab_size, size_t *text_bytes) {
    if (!section && size != 0)
        return PP_ERR_INVALID_ARGUMENT;
    if (vocab_size <= 0)
        return PP_ERR_CORRUPT;
    if (size < 4)
        return PP_ERR_TRUNCATED;

    /* llama2.c writes the maximum as a C int, so treat values past
       INT32_MAX as negative. */
    const uint32_t max_length = read_u32_le(section);
    if (max_length > INT32_MAX)
        return PP_ERR_CORRUPT;

    /* Each token needs at least a score and a length: 8 bytes. */
    if ((size - 4) / 8 < (size_t)vocab_size)
        return PP_ERR_TRUNCATED;

    size_t offset = 4;
    size_t total = 0;
    for (int32_t i = 0; i < vocab_size; i++) {
        if (size - offset < 8)
            return PP_ERR_TRUNCATED;
        const float score = read_f32_le(section + offset);
        const uint32_t length = read_u32_le(section + offset + 4);
        offset += 8;

        if (!isfinite(score))
            return PP_ERR_CORRUPT;
        /* A negative int32 length reads as a value past INT32_MAX. */
        if (length > INT32_MAX || length > max_length)
            return PP_ERR_CORRUPT;
        if ((size_t)length > size - offset)
            return PP_ERR_TRUNCATED;
        offset += (size_t)length;
        total += (size_t)length;
    }

    /* Extra bytes mean vocab_size does not match the section. */
    if (offset != size)
        return PP_ERR_CORRUPT;

    if (text_bytes)
        *text_bytes = total;
    return PP_OK;
}

/* ---- Token text and lookup ---------------------------------------------- */

static const uint8_t *token_bytes(const pp_tokenizer *tokenizer, int32_t id,
                                  size_t *length) {
    const uint32_t start = tokenizer->offsets[id];
    *length = tokenizer->offsets[id + 1] - start - 1;
    return (const uint8_t *)tokenizer->text + start;
}

/*
 * Compares the concatenation of `a` and `b` with `t` in unsigned byte order
 * (a proper prefix sorts first). Returns <0, 0 or >0.
 */
static int compare_concatenation(const uint8_t *a, size_t a_length,
                                 const uint8_t *b, size_t b_length,
                                 const uint8_t *t, size_t t_length) {
    size_t n = a_length < t_length ? a_length : t_length;
    int order = memcmp(a, t, n);
    if (order != 0)
        return order;
    if (a_length > t_length)
        return 1;

    /* `a` is a prefix of `t`: compare `b` with the rest of `t`. */
    t += a_length;
    t_length -= a_length;
    n = b_length < t_length ? b_length : t_length;
    order = memcmp(b, t, n);
    if (order != 0)
        return order;
    return (b_length > t_length) - (b_length < t_length);
}

/*
 * Returns the id whose text is `a` followed by `b`, or -1. Among tokens with
 * equal text, the lowest id wins because `sorted` breaks ties by id and this
 * search finds the first match.
 */
static int32_t lookup_concatenation(const pp_tokenizer *tokenizer,
                                    const uint8_t *a, size_t a_length,
                                    const uint8_t *b, size_t b_length) {
    size_t low = 0;
    size_t high = (size_t)tokenizer->vocab_size;
    while (low < high) {
        const size_t middle = low + (high - low) / 2;
        size_t t_length;
        const uint8_t *t =
            token_bytes(tokenizer, tokenizer->sorted[middle], &t_length);
        if (compare_concatenation(a, a_length, b, b_length, t, t_length) > 0)
            low = middle + 1;
        else
            high = middle;
    }

    if (low == (size_t)tokenizer->vocab_size)
        return -1;
    const int32_t id = tokenizer->sorted[low];
    size_t t_length;
    const uint8_t *t = token_bytes(tokenizer, id, &t_length);
    if (compare_concatenation(a, a_length, b, b_length, t, t_length) != 0)
        return -1;
    return id;
}

static int32_t lookup(const pp_tokenizer *tokenizer, const uint8_t *text,
                      size_t length) {
    return lookup_concatenation(tokenizer, text, length, text, 0);
}

static int hex_digit_value(uint8_t c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Returns the byte NN if the text is exactly "<0xNN>", or -1. */
static int byte_token_value(const uint8_t *text, size_t length) {
    if (length != 6 || memcmp(text, "<0x", 3) != 0 || text[5] != '>')
        return -1;
    const int high = hex_digit_value(text[3]);
    const int low = hex_digit_value(text[4]);
    if (high < 0 || low < 0)
        return -1;
    return high * 16 + low;
}

/* ---- Loading -------------------------------------------------------------- */

/* Orders ids by their bytes, then by id, so equal texts keep a fixed order. */
static int token_less(const pp_tokenizer *tokenizer, int32_t a, int32_t b) {
    size_t a_length, b_length;
    const uint8_t *a_text = token_bytes(tokenizer, a, &a_length);
    const uint8_t *b_text = token_bytes(tokenizer, b, &b_length);
    const int order = compare_concatenation(a_text, a_length, a_text, 0,
                                            b_text, b_length);
    return order < 0 || (order == 0 && a < b);
}

static void sift_down(const pp_tokenizer *tokenizer, int32_t *ids,
                      size_t root, size_t count) {
    for (;;) {
        size_t largest = root;
        const size_t left = 2 * root + 1;
        const size_t right = left + 1;
        if (left < count && token_less(tokenizer, ids[largest], ids[left]))
            largest = left;
        if (right < count && token_less(tokenizer, ids[largest], ids[right]))
            largest = right;
        if (largest == root)
            return;
        const int32_t swap = ids[root];
        ids[root] = ids[largest];
        ids[largest] = swap;
        root = largest;
    }
}

/* Heap sort, because the runtime may not use qsort and needs no scratch. */
static void sort_ids(const pp_tokenizer *tokenizer, int32_t *ids,
                     size_t count) {
    for (size_t i = count / 2; i-- > 0;)
        sift_down(tokenizer, ids, i, count);
    for (size_t end = count; end-- > 1;) {
        const int32_t swap = ids[0];
        ids[0] = ids[end];
        ids[end] = swap;
        sift_down(tokenizer, ids, 0, end);
    }
}

pp_status pp_tokenizer_load(pp_tokenizer *tokenizer, pp_arena *arena,
                            const uint8_t *section, size_t size,
                            int32_t vocab_size, int32_t bos_id,
                            int32_t eos_id) {
    if (!arena || (arena->base && !tokenizer))
        return PP_ERR_INVALID_ARGUMENT;

    size_t text_bytes = 0;
    if (!arena->base && !section) {
        /* Measuring without the bytes (a read source): a valid section has
         * exactly size - 4 - 8 * vocab_size bytes of token text. */
        if (vocab_size <= 0 || size < 4 + 8 * (size_t)vocab_size)
            return PP_ERR_CORRUPT;
        text_bytes = size - 4 - 8 * (size_t)vocab_size;
    } else {
        const pp_status status =
            pp_tokenizer_validate(section, size, vocab_size, &text_bytes);
        if (status != PP_OK)
            return status;
    }
    if (bos_id < 0 || bos_id >= vocab_size || eos_id < 0 ||
        eos_id >= vocab_size)
        return PP_ERR_CORRUPT;

    /* Offsets are uint32, so the text and its NULs must fit in 4 GiB. */
    const size_t vocab = (size_t)vocab_size;
    if (text_bytes > UINT32_MAX - vocab)
        return PP_ERR_UNSUPPORTED;
    const size_t text_size = text_bytes + vocab;

    /* The same five allocations run when measuring, which returns here. */
    float *scores = pp_arena_alloc(arena, vocab, sizeof *scores,
                                   alignof(float));
    uint32_t *offsets = pp_arena_alloc(arena, vocab + 1, sizeof *offsets,
                                       alignof(uint32_t));
    char *text = pp_arena_alloc(arena, text_size, 1, 1);
    int32_t *sorted = pp_arena_alloc(arena, vocab, sizeof *sorted,
                                     alignof(int32_t));
    uint8_t *pair_bits = pp_arena_alloc(arena, PP_PAIR_BITS_BYTES, 1, 1);
    if (arena->failed)
        return PP_ERR_ARENA_TOO_SMALL;
    if (!arena->base)
        return PP_OK;

    size_t offset = 4;
    uint32_t text_offset = 0;
    for (size_t i = 0; i < vocab; i++) {
        const size_t length = read_u32_le(section + offset + 4);
        scores[i] = read_f32_le(section + offset);
        offset += 8;

        offsets[i] = text_offset;
        memcpy(text + text_offset, section + offset, length);
        text[text_offset + length] = '\0';
        text_offset += (uint32_t)(length + 1);
        offset += length;
    }
    offsets[vocab] = text_offset;

    /* Debug builds fill fresh arena memory with 0xA5, so clear the bitmap. */
    memset(pair_bits, 0, PP_PAIR_BITS_BYTES);
    for (size_t i = 0; i < vocab; i++) {
        const uint8_t *bytes = (const uint8_t *)text + offsets[i];
        const size_t length = offsets[i + 1] - offsets[i] - 1;
        for (size_t j = 0; j + 1 < length; j++) {
            const size_t bit = (size_t)bytes[j] * 256 + bytes[j + 1];
            pair_bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
        }
    }

    tokenizer->kind = PP_TOKENIZER_LLAMA2C;
    tokenizer->vocab_size = vocab_size;
    tokenizer->max_token_length = read_u32_le(section);
    tokenizer->bos_id = bos_id;
    tokenizer->eos_id = eos_id;
    tokenizer->scores = scores;
    tokenizer->offsets = offsets;
    tokenizer->text = text;
    for (int32_t i = 0; i < vocab_size; i++)
        sorted[i] = i;
    sort_ids(tokenizer, sorted, vocab);
    tokenizer->sorted = sorted;
    tokenizer->pair_bits = pair_bits;
    for (int i = 0; i < 256; i++)
        tokenizer->byte_chars[i] = (uint8_t)i;
    return PP_OK;
}

/* ---- Encoding ------------------------------------------------------------- */

/*
 * Returns the length of the valid UTF-8 sequence at `p` (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0 if the bytes
 * there are not one.
 */
static size_t utf8_sequence_length(const uint8_t *p, size_t available) {
    const uint8_t lead = p[0];
    size_t length;
    uint8_t second_min = 0x80, second_max = 0xBF;
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0)
            second_min = 0xA0;
        else if (lead == 0xED)
            second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0)
            second_min = 0x90;
        else if (lead == 0xF4)
            second_max = 0x8F;
    } else {
        return 0;
    }

    if (available < length)
        return 0;
    if (p[1] < second_min || p[1] > second_max)
        return 0;
    for (size_t i = 2; i < length; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return length;
}

/* Appends the byte token of `byte`. Fails if the vocabulary has none. */
static pp_status push_byte_token(const pp_tokenizer *tokenizer, uint8_t byte,
                                 int32_t *tokens, int32_t *count) {
    const int32_t id = PP_BYTE_TOKEN_BASE + byte;
    if (id >= tokenizer->vocab_size)
        return PP_ERR_UNSUPPORTED;
    tokens[(*count)++] = id;
    return PP_OK;
}

/*
 * Merges tokens[0 .. *count) in place. Each round replaces the adjacent pair
 * with the highest-scoring merged token, the leftmost on ties.
 */
static void merge_pairs(const pp_tokenizer *tokenizer, int32_t *tokens,
                        int32_t *count) {
    for (;;) {
        float best_score = PP_MIN_MERGE_SCORE;
        int32_t best_id = -1;
        int32_t best_index = -1;

        for (int32_t i = 0; i + 1 < *count; i++) {
            size_t a_length, b_length;
            const uint8_t *a = token_bytes(tokenizer, tokens[i], &a_length);
            const uint8_t *b = token_bytes(tokenizer, tokens[i + 1], &b_length);
            if (a_length + b_length > tokenizer->max_token_length)
                continue;
            if (byte_token_value(a, a_length) >= 0 ||
                byte_token_value(b, b_length) >= 0)
                continue;

            const int32_t id =
                lookup_concatenation(tokenizer, a, a_length, b, b_length);
            if (id < 0 || !(tokenizer->scores[id] > best_score))
                continue;
            size_t merged_length;
            const uint8_t *merged = token_bytes(tokenizer, id, &merged_length);
            if (byte_token_value(merged, merged_length) >= 0)
                continue;
            best_score = tokenizer->scores[id];
            best_id = id;
            best_index = i;
        }
        if (best_index < 0)
            return;

        tokens[best_index] = best_id;
        memmove(tokens + best_index + 1, tokens + best_index + 2,
                (size_t)(*count - best_index - 2) * sizeof *tokens);
        (*count)--;
    }
}

/* Returns 1 if no merge can join `left` and `right` or tokens built on them. */
static int is_merge_boundary(const pp_tokenizer *tokenizer, int32_t left,
                             int32_t right) {
    size_t left_length, right_length;
    const uint8_t *left_text = token_bytes(tokenizer, left, &left_length);
    const uint8_t *right_text = token_bytes(tokenizer, right, &right_length);
    if (left_length == 0 || right_length == 0)
        return 0;
    if (byte_token_value(left_text, left_length) >= 0 ||
        byte_token_value(right_text, right_length) >= 0)
        return 1;
    const size_t bit =
        (size_t)left_text[left_length - 1] * 256 + right_text[0];
    return !(tokenizer->pair_bits[bit / 8] & (1u << (bit % 8)));
}

/*
 * Merges tokens[first .. *count) one segment at a time and packs the
 * results together. A segment is moved down before it is merged, so it
 * never overwrites a segment that is still to be read.
 */
static void merge_segments(const pp_tokenizer *tokenizer, int32_t *tokens,
                           int32_t first, int32_t *count) {
    int32_t write = first;
    int32_t start = first;
    while (start < *count) {
        int32_t end = start + 1;
        while (end < *count &&
               !is_merge_boundary(tokenizer, tokens[end - 1], tokens[end]))
            end++;

        int32_t length = end - start;
        memmove(tokens + write, tokens + start,
                (size_t)length * sizeof *tokens);
        merge_pairs(tokenizer, tokens + write, &length);
        write += length;
        start = end;
    }
    *count = write;
}

pp_status pp_tokenizer_encode(const pp_tokenizer *tokenizer, const char *text,
                              size_t length, int bos, int32_t *tokens,
                              int32_t capacity, int32_t *n_tokens) {
    if (tokenizer && tokenizer->kind == PP_TOKENIZER_BPE)
        return pp_bpe_encode(tokenizer, text, length, bos, tokens, capacity,
                             n_tokens);
    if (!n_tokens)
        return PP_ERR_INVALID_ARGUMENT;
    *n_tokens = 0;
    if (!tokenizer || (!text && length != 0) || !tokens ||
        length > (size_t)INT32_MAX - 3)
        return PP_ERR_INVALID_ARGUMENT;
    if (capacity < 0 || (size_t)capacity < length + 3) {
        *n_tokens = (int32_t)(length + 3);
        return PP_ERR_CAPACITY;
    }

    int32_t count = 0;
    if (bos)
        tokens[count++] = tokenizer->bos_id;
    const int32_t first = count;

    const uint8_t *bytes = (const uint8_t *)text;
    if (length > 0) {
        const uint8_t space = ' ';
        const int32_t space_id = lookup(tokenizer, &space, 1);
        if (space_id >= 0) {
            tokens[count++] = space_id;
        } else {
            const pp_status status =
                push_byte_token(tokenizer, space, tokens, &count);
            if (status != PP_OK)
                return status;
        }
    }

    size_t position = 0;
    while (position < length) {
        const size_t sequence =
            utf8_sequence_length(bytes + position, length - position);
        const int32_t id =
            sequence > 0 ? lookup(tokenizer, bytes + position, sequence) : -1;
        if (id >= 0) {
            tokens[count++] = id;
            position += sequence;
            continue;
        }

        /* A code point missing from the vocabulary becomes one byte token
           per byte. An invalid byte becomes one byte token on its own, and
           decoding restarts at the next byte. */
        const size_t fallback = sequence > 0 ? sequence : 1;
        for (size_t i = 0; i < fallback; i++) {
            const pp_status status =
                push_byte_token(tokenizer, bytes[position + i], tokens, &count);
            if (status != PP_OK)
                return status;
        }
        position += fallback;
    }

    merge_segments(tokenizer, tokens, first, &count);
    *n_tokens = count;
    return PP_OK;
}

/* ---- Decoding ------------------------------------------------------------- */

const char *pp_tokenizer_decode(const pp_tokenizer *tokenizer,
                                int32_t previous, int32_t token,
                                size_t *length) {
    if (tokenizer && tokenizer->kind == PP_TOKENIZER_BPE)
        return pp_bpe_decode(tokenizer, token, length);
    if (!tokenizer || token < 0 || token >= tokenizer->vocab_size)
        return NULL;

    size_t piece_length;
    const uint8_t *piece = token_bytes(tokenizer, token, &piece_length);
    if (previous == tokenizer->bos_id && piece_length > 0 && piece[0] == ' ') {
        piece++;
        piece_length--;
    }

    const int byte = byte_token_value(piece, piece_length);
    if (byte >= 0) {
        piece = &tokenizer->byte_chars[byte];
        piece_length = 1;
    }

    if (length)
        *length = piece_length;
    return (const char *)piece;
}

/* ---- Dispatch by section kind --------------------------------------------- */

pp_status pp_tokenizer_validate_kind(pp_tokenizer_kind kind,
                                     const uint8_t *section, size_t size,
                                     int32_t vocab_size, size_t *text_bytes) {
    if (kind == PP_TOKENIZER_BPE)
        return pp_bpe_validate(section, size, vocab_size, text_bytes);
    return pp_tokenizer_validate(section, size, vocab_size, text_bytes);
}

pp_status pp_tokenizer_load_kind(pp_tokenizer_kind kind,
                                 pp_tokenizer *tokenizer, pp_arena *arena,
                                 const uint8_t *section, size_t size,
                                 int32_t vocab_size, int32_t bos_id,
                                 int32_t eos_id) {
    if (kind == PP_TOKENIZER_BPE)
        return pp_bpe_load(tokenizer, arena, section, size, vocab_size, bos_id,
                           eos_id);
    return pp_tokenizer_load(tokenizer, arena, section, size, vocab_size,
                             bos_id, eos_id);
}
