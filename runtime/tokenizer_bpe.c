/*
 * tokenizer_bpe.c - byte-level BPE (the GPT-2 family: GPT-2, Llama 3, Qwen,
 * SmolLM) over the tokenizer section format of format.h.
 *
 * Encoding has two steps. The pre-tokenizer splits the text into pieces
 * with the regular expression of the section's pre_tokenizer, hand-coded
 * below (no regex engine, no allocation) over Unicode class tables
 * generated from the Python regex package (unicode_ranges.h). Then every
 * piece starts as the tokens of its single bytes, and the adjacent pair
 * with the lowest merge rank is merged, the leftmost on ties, until no
 * adjacent pair has a merge. That order gives the same ids as Hugging Face
 * tokenizers and GPT-2's encoder.py for merge lists in which a merge ranks
 * after the merges that built its two halves, which training produces.
 *
 * Merges are looked up by binary search in a table sorted by (left,
 * right), built in the arena at load.
 *
 * NOTE: merging rescans the piece after every merge, so a piece of n bytes
 * takes O(n^2 log M) time. Pieces are words, numbers or runs of symbols or
 * white space, but a long run of one class (thousands of letters without a
 * space) is slow.
 *
 * NOTE: special tokens in the text (e.g. "<|endoftext|>") are encoded as
 * plain text, as llama.cpp does with parse_special off; only the caller's
 * BOS flag adds a special token.
 */
#include <stdalign.h>
#include <string.h>

#include "format.h"
#include "tokenizer.h"
#include "unicode_ranges.h"

/* Bytes of the section header, of a token's kind and length, and of a
 * merge's three ids. */
#define BPE_HEADER_BYTES 8u
#define BPE_TOKEN_BYTES 5u
#define BPE_MERGE_BYTES 12u

/* A code point value for bytes that are not valid UTF-8. */
#define INVALID_CODE_POINT 0x110000u

/* ---- Section parsing ------------------------------------------------------- */

pp_status pp_bpe_validate(const uint8_t *section, size_t size,
                          int32_t vocab_size, size_t *text_bytes) {
    if (!section && size != 0)
        return PP_ERR_INVALID_ARGUMENT;
    if (vocab_size <= 0)
        return PP_ERR_CORRUPT;
    if (size < BPE_HEADER_BYTES)
        return PP_ERR_TRUNCATED;
    if (pp_get_u32(section) >= PP_BPE_PRE_COUNT)
        return PP_ERR_UNSUPPORTED;
    const uint32_t merge_count = pp_get_u32(section + 4);
    if ((size - BPE_HEADER_BYTES) / BPE_TOKEN_BYTES < (size_t)vocab_size)
        return PP_ERR_TRUNCATED;

    size_t offset = BPE_HEADER_BYTES;
    size_t total = 0;
    for (int32_t i = 0; i < vocab_size; i++) {
        if (size - offset < BPE_TOKEN_BYTES)
            return PP_ERR_TRUNCATED;
        const uint8_t kind = section[offset];
        const uint32_t length = pp_get_u32(section + offset + 1);
        offset += BPE_TOKEN_BYTES;
        if (kind > 1)
            return PP_ERR_CORRUPT;
        if ((size_t)length > size - offset)
            return PP_ERR_TRUNCATED;
        offset += length;
        total += length;
    }

    const size_t remaining = size - offset;
    if (remaining / BPE_MERGE_BYTES < merge_count)
        return PP_ERR_TRUNCATED;
    if (remaining != (size_t)merge_count * BPE_MERGE_BYTES)
        return PP_ERR_CORRUPT;
    for (uint32_t i = 0; i < merge_count; i++) {
        const uint8_t *m = section + offset + (size_t)i * BPE_MERGE_BYTES;
        if (pp_get_u32(m) >= (uint32_t)vocab_size ||
            pp_get_u32(m + 4) >= (uint32_t)vocab_size ||
            pp_get_u32(m + 8) >= (uint32_t)vocab_size)
            return PP_ERR_CORRUPT;
    }

    if (text_bytes)
        *text_bytes = total;
    return PP_OK;
}

/* ---- Loading --------------------------------------------------------------- */

static const uint8_t *token_bytes(const pp_tokenizer *tokenizer, int32_t id,
                                  size_t *length) {
    const uint32_t start = tokenizer->offsets[id];
    *length = tokenizer->offsets[id + 1] - start - 1;
    return (const uint8_t *)tokenizer->text + start;
}

static int merge_less(const pp_bpe_merge *a, const pp_bpe_merge *b) {
    if (a->left != b->left)
        return a->left < b->left;
    if (a->right != b->right)
        return a->right < b->right;
    return a->rank < b->rank;
}

static void sift_down(pp_bpe_merge *merges, size_t root, size_t count) {
    for (;;) {
        size_t largest = root;
        const size_t left = 2 * root + 1;
        const size_t right = left + 1;
        if (left < count && merge_less(&merges[largest], &merges[left]))
            largest = left;
        if (right < count && merge_less(&merges[largest], &merges[right]))
            largest = right;
        if (largest == root)
            return;
        const pp_bpe_merge swap = merges[root];
        merges[root] = merges[largest];
        merges[largest] = swap;
        root = largest;
    }
}

/* Heap sort, because the runtime may not use qsort and needs no scratch. */
static void sort_merges(pp_bpe_merge *merges, size_t count) {
    for (size_t i = count / 2; i-- > 0;)
        sift_down(merges, i, count);
    for (size_t end = count; end-- > 1;) {
        const pp_bpe_merge swap = merges[0];
        merges[0] = merges[end];
        merges[end] = swap;
        sift_down(merges, 0, end);
    }
}

/* Returns 1 if the merged token's bytes are the left's then the right's. */
static int merge_is_concatenation(const pp_tokenizer *tokenizer,
                                  const pp_bpe_merge *m) {
    size_t left_length, right_length, merged_length;
    const uint8_t *left = token_bytes(tokenizer, m->left, &left_length);
    const uint8_t *right = token_bytes(tokenizer, m->right, &right_length);
    const uint8_t *merged = token_bytes(tokenizer, m->merged, &merged_length);
    return merged_length == left_length + right_length &&
           memcmp(merged, left, left_length) == 0 &&
           memcmp(merged + left_length, right, right_length) == 0;
}

/*
 * The arena layout depends only on the section size and the vocabulary
 * size, so that measuring without the section bytes (a read source)
 * reserves what loading uses. With R = size - 8 - 5 * vocab_size bytes of
 * token text and merges, text_bytes + 12 * merge_count = R, so the text
 * with its NULs (text_bytes + vocab_size) and the 16-byte merge table (at
 * most 16 * R / 12) fit in R + vocab_size + R / 3 + 16 bytes.
 */
pp_status pp_bpe_load(pp_tokenizer *tokenizer, pp_arena *arena,
                      const uint8_t *section, size_t size, int32_t vocab_size,
                      int32_t bos_id, int32_t eos_id) {
    if (!arena || (arena->base && (!tokenizer || !section)))
        return PP_ERR_INVALID_ARGUMENT;
    if (section) {
        const pp_status status =
            pp_bpe_validate(section, size, vocab_size, NULL);
        if (status != PP_OK)
            return status;
    } else if (vocab_size <= 0 ||
               size < BPE_HEADER_BYTES +
                          BPE_TOKEN_BYTES * (size_t)vocab_size) {
        return PP_ERR_CORRUPT;
    }
    if (bos_id < 0 || bos_id >= vocab_size || eos_id < 0 ||
        eos_id >= vocab_size)
        return PP_ERR_CORRUPT;

    const size_t vocab = (size_t)vocab_size;
    const size_t rest = size - BPE_HEADER_BYTES - BPE_TOKEN_BYTES * vocab;
    /* Offsets are uint32, so the text and its NULs must fit in 4 GiB. */
    if (rest > UINT32_MAX - vocab)
        return PP_ERR_UNSUPPORTED;
    const size_t blob_size = rest + vocab + rest / 3 + 16;

    uint32_t *offsets = pp_arena_alloc(arena, vocab + 1, sizeof *offsets,
                                       alignof(uint32_t));
    uint8_t *blob = pp_arena_alloc(arena, blob_size, 1, 16);
    if (arena->failed)
        return PP_ERR_ARENA_TOO_SMALL;
    if (!arena->base)
        return PP_OK;

    /* Token text, each followed by a NUL, and the single-byte tokens. */
    char *text = (char *)blob;
    size_t offset = BPE_HEADER_BYTES;
    uint32_t text_offset = 0;
    for (int i = 0; i < 256; i++)
        tokenizer->byte_tokens[i] = -1;
    for (size_t i = 0; i < vocab; i++) {
        const uint8_t kind = section[offset];
        const size_t length = pp_get_u32(section + offset + 1);
        offset += BPE_TOKEN_BYTES;

        offsets[i] = text_offset;
        memcpy(text + text_offset, section + offset, length);
        text[text_offset + length] = '\0';
        text_offset += (uint32_t)(length + 1);
        if (kind == 0 && length == 1 &&
            tokenizer->byte_tokens[section[offset]] < 0)
            tokenizer->byte_tokens[section[offset]] = (int32_t)i;
        offset += length;
    }
    offsets[vocab] = text_offset;

    tokenizer->kind = PP_TOKENIZER_BPE;
    tokenizer->vocab_size = vocab_size;
    tokenizer->max_token_length = 0;
    tokenizer->bos_id = bos_id;
    tokenizer->eos_id = eos_id;
    tokenizer->scores = NULL;
    tokenizer->offsets = offsets;
    tokenizer->text = text;
    tokenizer->sorted = NULL;
    tokenizer->pair_bits = NULL;
    tokenizer->pre_tokenizer = pp_get_u32(section);

    /* The merge table follows the text at a 16-byte boundary. */
    const uint32_t merge_count = pp_get_u32(section + 4);
    pp_bpe_merge *merges =
        (pp_bpe_merge *)(blob + ((size_t)text_offset + 15) / 16 * 16);
    for (uint32_t i = 0; i < merge_count; i++, offset += BPE_MERGE_BYTES) {
        pp_bpe_merge *m = &merges[i];
        m->left = (int32_t)pp_get_u32(section + offset);
        m->right = (int32_t)pp_get_u32(section + offset + 4);
        m->merged = (int32_t)pp_get_u32(section + offset + 8);
        m->rank = i;
        if (!merge_is_concatenation(tokenizer, m))
            return PP_ERR_CORRUPT;
    }
    sort_merges(merges, merge_count);
    tokenizer->merge_count = merge_count;
    tokenizer->merges = merges;
    return PP_OK;
}

/* ---- Unicode classes ------------------------------------------------------- */

static int in_ranges(const uint32_t (*ranges)[2], size_t count, uint32_t cp) {
    size_t low = 0, high = count;
    while (low < high) {
        const size_t middle = low + (high - low) / 2;
        if (cp < ranges[middle][0])
            high = middle;
        else if (cp > ranges[middle][1])
            low = middle + 1;
        else
            return 1;
    }
    return 0;
}

#define RANGE_COUNT(table) (sizeof(table) / sizeof((table)[0]))

static int is_letter(uint32_t cp) {
    return in_ranges(pp_unicode_letter_ranges,
                     RANGE_COUNT(pp_unicode_letter_ranges), cp);
}

static int is_number(uint32_t cp) {
    return in_ranges(pp_unicode_number_ranges,
                     RANGE_COUNT(pp_unicode_number_ranges), cp);
}

static int is_space(uint32_t cp) {
    return in_ranges(pp_unicode_space_ranges,
                     RANGE_COUNT(pp_unicode_space_ranges), cp);
}

/* [^\s\p{L}\p{N}]: symbols, punctuation, controls and invalid bytes. */
static int is_other(uint32_t cp) {
    return !is_space(cp) && !is_letter(cp) && !is_number(cp);
}

/*
 * Decodes the code point at text[at] and sets *length to its byte count.
 * Valid means RFC 3629 UTF-8: no overlong forms, no surrogates, nothing
 * past U+10FFFF. A byte that does not start a valid sequence decodes to
 * INVALID_CODE_POINT with length 1.
 */
static uint32_t code_point_at(const uint8_t *text, size_t end, size_t at,
                              size_t *length) {
    const uint8_t lead = text[at];
    size_t n;
    uint32_t cp;
    uint8_t second_min = 0x80, second_max = 0xBF;

    *length = 1;
    if (lead < 0x80)
        return lead;
    if (lead >= 0xC2 && lead <= 0xDF) {
        n = 2;
        cp = lead & 0x1Fu;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        n = 3;
        cp = lead & 0x0Fu;
        if (lead == 0xE0)
            second_min = 0xA0;
        else if (lead == 0xED)
            second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        n = 4;
        cp = lead & 0x07u;
        if (lead == 0xF0)
            second_min = 0x90;
        else if (lead == 0xF4)
            second_max = 0x8F;
    } else {
        return INVALID_CODE_POINT;
    }

    if (end - at < n || text[at + 1] < second_min || text[at + 1] > second_max)
        return INVALID_CODE_POINT;
    for (size_t i = 1; i < n; i++) {
        if ((text[at + i] & 0xC0) != 0x80)
            return INVALID_CODE_POINT;
        cp = cp << 6 | (text[at + i] & 0x3Fu);
    }
    *length = n;
    return cp;
}

/* ---- Pre-tokenizers -------------------------------------------------------- */

typedef int (*class_fn)(uint32_t cp);

/* Returns the end of the run of code points of `in_class` from `at`. */
static size_t run_end(const uint8_t *text, size_t end, size_t at,
                      class_fn in_class) {
    while (at < end) {
        size_t length;
        if (!in_class(code_point_at(text, end, at, &length)))
            break;
        at += length;
    }
    return at;
}

/* Returns the end of a contraction ('s 't 're 've 'm 'll 'd) at `at`, or
 * `at` if there is none. Llama 3 matches the letters in either case. */
static size_t contraction_end(const uint8_t *text, size_t end, size_t at,
                              int any_case) {
    char next[2] = {0, 0};
    for (size_t i = 0; i < 2 && at + 1 + i < end; i++) {
        const uint8_t c = text[at + 1 + i];
        next[i] = (char)(any_case && c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (text[at] != '\'')
        return at;
    if (next[0] == 's' || next[0] == 't' || next[0] == 'm' || next[0] == 'd')
        return at + 2;
    if ((next[0] == 'r' && next[1] == 'e') ||
        (next[0] == 'v' && next[1] == 'e') ||
        (next[0] == 'l' && next[1] == 'l'))
        return at + 3;
    return at;
}

/*
 * \s+(?!\S)|\s+ at `start` (a white space code point): the run of white
 * space, less its last code point when a non-space follows, because that
 * one joins the next piece (" ?\p{L}+" and friends).
 */
static size_t space_run_end(const uint8_t *text, size_t end, size_t start) {
    size_t at = start, last = start;
    while (at < end) {
        size_t length;
        if (!is_space(code_point_at(text, end, at, &length)))
            break;
        last = at;
        at += length;
    }
    if (at == end || last == start)
        return at;
    return last;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * on text[start, end). */
static size_t gpt2_piece_end(const uint8_t *text, size_t end, size_t start) {
    const size_t contraction = contraction_end(text, end, start, 0);
    if (contraction > start)
        return contraction;

    /* An optional single space (U+0020) before a letter, number or other
     * run belongs to that run. */
    const size_t at = text[start] == ' ' && start + 1 < end ? start + 1 : start;
    size_t length;
    const uint32_t cp = code_point_at(text, end, at, &length);
    if (is_letter(cp))
        return run_end(text, end, at, is_letter);
    if (is_number(cp))
        return run_end(text, end, at, is_number);
    if (!is_space(cp))
        return run_end(text, end, at, is_other);
    return space_run_end(text, end, start);
}

static int is_line_break(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_piece_end(const uint8_t *text, size_t end, size_t start,
                               int max_digits) {
    const size_t contraction = contraction_end(text, end, start, 1);
    if (contraction > start)
        return contraction;

    size_t length;
    const uint32_t cp = code_point_at(text, end, start, &length);
    const size_t next_at = start + length;
    size_t next_length = 0;
    const uint32_t next =
        next_at < end ? code_point_at(text, end, next_at, &next_length)
                      : INVALID_CODE_POINT;

    /* One optional non-letter, non-number, non-line-break code point
     * (a space, a symbol, a tab ...) joins the letters after it. */
    if (is_letter(cp))
        return run_end(text, end, start, is_letter);
    if (!is_number(cp) && !is_line_break(cp) && next_at < end &&
        is_letter(next))
        return run_end(text, end, next_at, is_letter);

    if (is_number(cp)) {
        size_t at = start;
        for (int i = 0; i < max_digits && at < end; i++) {
            size_t digit_length;
            if (!is_number(code_point_at(text, end, at, &digit_length)))
                break;
            at += digit_length;
        }
        return at;
    }

    /* " ?[^\s\p{L}\p{N}]+[\r\n]*" */
    size_t at = start;
    if (cp == ' ' && next_at < end && is_other(next))
        at = next_at;
    if (is_other(code_point_at(text, end, at, &length))) {
        at = run_end(text, end, at, is_other);
        while (at < end && (text[at] == '\r' || text[at] == '\n'))
            at++;
        return at;
    }

    /* "\s*[\r\n]+": the white space up to its last line break. */
    size_t line_break_end = start;
    for (at = start; at < end;) {
        const uint32_t space = code_point_at(text, end, at, &length);
        if (!is_space(space))
            break;
        at += length;
        if (is_line_break(space))
            line_break_end = at;
    }
    if (line_break_end > start)
        return line_break_end;
    return space_run_end(text, end, start);
}

/* Every \p{N} code point is a piece, and the GPT-2 expression splits the
 * text between them. */
static size_t smollm_piece_end(const uint8_t *text, size_t end, size_t start) {
    size_t length;
    if (is_number(code_point_at(text, end, start, &length)))
        return start + length;
    size_t region_end = start;
    while (region_end < end) {
        if (is_number(code_point_at(text, end, region_end, &length)))
            break;
        region_end += length;
    }
    return gpt2_piece_end(text, region_end, start);
}

size_t pp_bpe_piece_end(uint32_t pre_tokenizer, const uint8_t *text,
                        size_t length, size_t start) {
    if (start >= length)
        return length;
    switch (pre_tokenizer) {
    case PP_BPE_PRE_LLAMA3:
        return llama3_piece_end(text, length, start, 3);
    case PP_BPE_PRE_QWEN2:
        return llama3_piece_end(text, length, start, 1);
    case PP_BPE_PRE_SMOLLM:
        return smollm_piece_end(text, length, start);
    default:
        return gpt2_piece_end(text, length, start);
    }
}

/* ---- Encoding -------------------------------------------------------------- */

/* Returns the lowest-ranked merge of (left, right), or NULL. */
static const pp_bpe_merge *find_merge(const pp_tokenizer *tokenizer,
                                      int32_t left, int32_t right) {
    size_t low = 0, high = tokenizer->merge_count;
    while (low < high) {
        const size_t middle = low + (high - low) / 2;
        const pp_bpe_merge *m = &tokenizer->merges[middle];
        if (m->left < left || (m->left == left && m->right < right))
            low = middle + 1;
        else
            high = middle;
    }
    if (low == tokenizer->merge_count)
        return NULL;
    const pp_bpe_merge *m = &tokenizer->merges[low];
    return m->left == left && m->right == right ? m : NULL;
}

/* Merges tokens[0, *count) in place, lowest rank first, leftmost on ties. */
static void merge_piece(const pp_tokenizer *tokenizer, int32_t *tokens,
                        int32_t *count) {
    for (;;) {
        const pp_bpe_merge *best = NULL;
        int32_t best_index = -1;
        for (int32_t i = 0; i + 1 < *count; i++) {
            const pp_bpe_merge *m = find_merge(tokenizer, tokens[i],
                                               tokens[i + 1]);
            if (m && (!best || m->rank < best->rank)) {
                best = m;
                best_index = i;
            }
        }
        if (!best)
            return;

        tokens[best_index] = best->merged;
        memmove(tokens + best_index + 1, tokens + best_index + 2,
                (size_t)(*count - best_index - 2) * sizeof *tokens);
        (*count)--;
    }
}

pp_status pp_bpe_encode(const pp_tokenizer *tokenizer, const char *text,
                        size_t length, int bos, int32_t *tokens,
                        int32_t capacity, int32_t *n_tokens) {
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

    const uint8_t *bytes = (const uint8_t *)text;
    int32_t count = 0;
    if (bos)
        tokens[count++] = tokenizer->bos_id;

    size_t start = 0;
    while (start < length) {
        const size_t end =
            pp_bpe_piece_end(tokenizer->pre_tokenizer, bytes, length, start);
        const int32_t first = count;
        for (size_t i = start; i < end; i++) {
            const int32_t id = tokenizer->byte_tokens[bytes[i]];
            if (id < 0)
                return PP_ERR_UNSUPPORTED;
            tokens[count++] = id;
        }
        int32_t piece_count = count - first;
        merge_piece(tokenizer, tokens + first, &piece_count);
        count = first + piece_count;
        start = end;
    }
    *n_tokens = count;
    return PP_OK;
}

/* ---- Decoding -------------------------------------------------------------- */

const char *pp_bpe_decode(const pp_tokenizer *tokenizer, int32_t token,
                          size_t *length) {
    if (!tokenizer || token < 0 || token >= tokenizer->vocab_size)
        return NULL;
    size_t piece_length;
    const uint8_t *piece = token_bytes(tokenizer, token, &piece_length);
    if (length)
        *length = piece_length;
    return (const char *)piece;
}
