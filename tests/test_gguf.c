/*
 * test_gguf.c - GGUF import. The real stories260K GGUF files are compared
 * with the llama2.c conversion, the byte-level BPE tokenizer with GPT-2's
 * ids, and the dequantizers with hand-built blocks. Hostile GGUF files
 * built in memory must each be rejected with a message, never a crash.
 */
#include <math.h>
#include <stdint.h>

#include "fuzz/fuzz_gguf.c"
#include "gguf.h"
#include "internal.h"
#include "model_fixture.h"

/* ---- Helpers ---------------------------------------------------------------- */

/* Writes a model from `p` to a temporary file and loads it into memory. */
static int write_and_load(const pp_weight_provider *p, const uint8_t *tokenizer,
                          size_t tokenizer_size, fixture_model *out) {
    char path[64], err[512];
    static int serial;
    snprintf(path, sizeof path, "/tmp/pprt-gguf-%d-%d.ppm", (int)getpid(),
             serial++);
    memset(out, 0, sizeof *out);
    pp_write_options o = {0, 0, 0, 0};
    const int written =
        pp_write_model(path, p, tokenizer, tokenizer_size, &o, err, sizeof err) == 0;
    CHECKF(written, "pp_write_model: %s", err);
    if (!written)
        return 0;

    return fixture_take_file(out, path);
}

/* Opens and converts one of the shared GGUF files. */
static int convert_shared_gguf(const char *relative, fixture_model *out,
                               char *warnings, size_t warnings_size) {
    const char *path = check_shared(relative);
    if (!check_require_file(path))
        return 0;
    size_t size;
    uint8_t *bytes = check_read_file(path, &size);
    if (!bytes)
        return 0;
    pp_gguf_llama m;
    char err[512];
    const int opened = pp_gguf_llama_open(bytes, size, &m, err, sizeof err) == 0;
    CHECKF(opened, "%s: %s", relative, err);
    int ok = 0;
    if (opened) {
        if (warnings)
            snprintf(warnings, warnings_size, "%s", m.warnings);
        ok = write_and_load(&m.provider, m.tokenizer, m.tokenizer_size, out);
        pp_gguf_llama_free(&m);
    }
    free(bytes);
    return ok;
}

static float *dense_logits(const fixture_model *m, const int32_t *tokens, int n) {
    void *arena = NULL;
    pp_context *ctx = fixture_context(m, 1, n, pp_pool_workers(NULL), NULL, &arena);
    float *logits = NULL;
    if (ctx) {
        const size_t count = (size_t)n * (size_t)pp_info(ctx)->vocab_size;
        logits = malloc(count * sizeof *logits);
        const pp_status st = pp_forward(ctx, tokens, 1, n, 0, 0, logits);
        CHECKF(st == PP_OK, "pp_forward: %s", pp_status_string(st));
    }
    free(arena);
    return logits;
}

/* ---- The real stories260K GGUF files ------------------------------------------ */

/* Mean NLL of row-major logits [n][vocab] against targets. */
static double mean_nll(const float *logits, const int32_t *targets, int n,
                       int vocab) {
    double total = 0.0;
    for (int j = 0; j < n; j++) {
        const float *row = logits + (size_t)j * (size_t)vocab;
        double max = row[0], sum = 0.0;
        for (int v = 1; v < vocab; v++)
            if (row[v] > max)
                max = row[v];
        for (int v = 0; v < vocab; v++)
            sum += exp(row[v] - max);
        total += log(sum) + max - row[targets[j]];
    }
    return total / n;
}

typedef struct logit_comparison {
    double max_diff;        /* largest |logit difference| */
    int argmax_agree;       /* positions with the same argmax, of 32 */
    double nll, reference_nll;  /* mean NLL of the next token */
} logit_comparison;

/*
 * Compares the logits of a GGUF conversion with the llama2.c conversion on
 * the reference window (32 positions, vocab 512). Returns 0 if something
 * failed or was skipped.
 */
static int compare_with_llama2c(const char *relative, char *warnings,
                                size_t warnings_size, logit_comparison *out) {
    fixture_model reference, converted;
    int ok = 0;
    if (!fixture_load(&reference, 0))
        return 0;
    if (!convert_shared_gguf(relative, &converted, warnings, warnings_size)) {
        fixture_free(&reference);
        return 0;
    }
    size_t n_tokens;
    int32_t *tokens = fixture_reference("reference/b_window_tokens.i32", &n_tokens);
    if (tokens && n_tokens >= 33) {
        float *a = dense_logits(&reference, tokens, 32);
        float *b = dense_logits(&converted, tokens, 32);
        if (a && b) {
            out->max_diff = 0.0;
            out->argmax_agree = 0;
            for (int t = 0; t < 32; t++) {
                int arg_a = 0, arg_b = 0;
                for (int v = 0; v < 512; v++) {
                    const size_t i = (size_t)t * 512 + (size_t)v;
                    const double d = fabs((double)a[i] - b[i]);
                    if (d > out->max_diff)
                        out->max_diff = d;
                    if (a[i] > a[(size_t)t * 512 + (size_t)arg_a])
                        arg_a = v;
                    if (b[i] > b[(size_t)t * 512 + (size_t)arg_b])
                        arg_b = v;
                }
                out->argmax_agree += arg_a == arg_b;
            }
            out->nll = mean_nll(b, tokens + 1, 32, 512);
            out->reference_nll = mean_nll(a, tokens + 1, 32, 512);
            ok = 1;
        }
        free(a);
        free(b);
    }
    free(tokens);
    fixture_free(&reference);
    fixture_free(&converted);
    return ok;
}

/*
 * stories260K-f32.gguf holds the llama2.c weights unchanged (llama.cpp's
 * llama2.c converter does not permute q and k), so the converted weights
 * are bit-identical and the logits must be equal.
 */
static void f32_gguf_logits_equal_llama2c(void) {
    char warnings[2048];
    logit_comparison c;
    if (!compare_with_llama2c("models/stories260K/stories260K-f32.gguf",
                              warnings, sizeof warnings, &c))
        return;
    CHECKF(c.max_diff == 0.0, "max |logit difference| = %g", c.max_diff);
    CHECKF(warnings[0] == '\0', "unexpected warnings: %s", warnings);
    printf("stories260K-f32.gguf: max |logit - llama2.c conversion| = %g\n",
           c.max_diff);
}

/*
 * The Q8_0 file's matrices were rounded to 8 bits in blocks of 32 with f16
 * scales (ffn_down stays F16, 172 not being a multiple of 32), and pprt
 * rounds them again in its own groups (8 columns per head for attn_output,
 * 4 per tile for ffn_down). Measured on x86-64 on the reference window:
 * logits move by 0.36 at most (the int8 model itself is 0.37 from the
 * float32 reference), the argmax agrees at 31 of 32 positions, and the
 * mean NLL is 0.74% higher. Over 5120 tokens (pprt perplexity, 10 batches
 * of 8 x 64) the perplexity is 4.5773 against 4.5753. A q/k row order or
 * scale mistake moves the NLL far more than the 2% allowed.
 */
static void q8_0_gguf_logits_close(void) {
    logit_comparison c;
    if (!compare_with_llama2c("models/stories260K/stories260K-q8_0.gguf", NULL,
                              0, &c))
        return;
    CHECKF(c.max_diff < 0.6, "max |logit difference| = %g", c.max_diff);
    CHECKF(c.argmax_agree >= 29, "argmax agrees on %d of 32 positions",
           c.argmax_agree);
    CHECKF(fabs(c.nll - c.reference_nll) / c.reference_nll < 0.02,
           "mean NLL %.5f, llama2.c conversion %.5f", c.nll, c.reference_nll);
    printf("stories260K-q8_0.gguf: max |logit - llama2.c conversion| = %.4f, "
           "argmax %d/32, NLL %.5f vs %.5f\n",
           c.max_diff, c.argmax_agree, c.nll, c.reference_nll);
}

/* The SentencePiece vocabulary becomes exactly llama2.c's tok512.bin. */
static void llama_tokenizer_section_matches_tok512(void) {
    const char *gguf_path = check_shared("models/stories260K/stories260K-f32.gguf");
    const char *tok_path = check_shared("models/stories260K/tok512.bin");
    if (!check_require_file(gguf_path) || !check_require_file(tok_path))
        return;
    size_t gguf_size, tok_size;
    uint8_t *gguf = check_read_file(gguf_path, &gguf_size);
    uint8_t *tok = check_read_file(tok_path, &tok_size);
    pp_gguf_llama m;
    char err[512];
    if (gguf && tok && pp_gguf_llama_open(gguf, gguf_size, &m, err, sizeof err) == 0) {
        CHECK(m.provider.tokenizer_bpe == 0);
        CHECK(m.provider.bos_id == 1);
        CHECK(m.provider.eos_id == 2);
        CHECKF(m.tokenizer_size == tok_size, "section %zu bytes, tok512.bin %zu",
               m.tokenizer_size, tok_size);
        CHECK(m.tokenizer_size == tok_size &&
              memcmp(m.tokenizer, tok, tok_size) == 0);
        pp_gguf_llama_free(&m);
    } else {
        CHECKF(0, "opening the GGUF file failed: %s", gguf ? err : "read");
    }
    free(gguf);
    free(tok);
}

/* Encodes the first stories of the evaluation text with both models. */
static void gguf_tokenizer_same_ids_on_stories(void) {
    fixture_model reference, converted;
    const char *text_path = check_shared("data/tinystories-valid-a.txt");
    if (!check_require_file(text_path) || !fixture_load(&reference, 0))
        return;
    if (!convert_shared_gguf("models/stories260K/stories260K-q8_0.gguf",
                             &converted, NULL, 0)) {
        fixture_free(&reference);
        return;
    }
    size_t size;
    char *text = check_read_file(text_path, &size);
    void *arena_a = NULL, *arena_b = NULL;
    pp_context *a = fixture_context(&reference, 1, 8, pp_pool_workers(NULL), NULL, &arena_a);
    pp_context *b = fixture_context(&converted, 1, 8, pp_pool_workers(NULL), NULL, &arena_b);
    if (text && a && b) {
        /* The first five stories (split at blank lines). */
        size_t start = 0;
        for (int story = 0; story < 5 && start < size; story++) {
            const char *end = strstr(text + start, "\n\n");
            const size_t length = end ? (size_t)(end - (text + start)) : size - start;
            const int32_t capacity = (int32_t)length + 3;
            int32_t *ids_a = malloc((size_t)capacity * sizeof *ids_a);
            int32_t *ids_b = malloc((size_t)capacity * sizeof *ids_b);
            int32_t n_a = 0, n_b = 0;
            CHECK(pp_tokenize(a, text + start, length, 1, ids_a, capacity, &n_a) == PP_OK);
            CHECK(pp_tokenize(b, text + start, length, 1, ids_b, capacity, &n_b) == PP_OK);
            CHECKF(n_a == n_b, "story %d: %d and %d tokens", story, n_a, n_b);
            CHECKF(n_a > 10, "story %d: only %d tokens", story, n_a);
            CHECKF(n_a == n_b && memcmp(ids_a, ids_b, (size_t)n_a * sizeof *ids_a) == 0,
                   "story %d: ids differ", story);
            free(ids_a);
            free(ids_b);
            start += length + 2;
        }
    }
    free(text);
    free(arena_a);
    free(arena_b);
    fixture_free(&reference);
    fixture_free(&converted);
}

/* ---- Byte-level BPE with GPT-2's vocabulary ------------------------------------ */

typedef struct gpt2_vocab {
    char *json, *merges_text;
    pp_bpe_token *tokens;
    size_t n_tokens;
    pp_gguf_string *merges;
    size_t n_merges;
} gpt2_vocab;

/* Parses vocab.json ({"token": id, ...}, JSON string escapes allowed) in
 * place, storing token text in the json buffer. Returns 0 on success. */
static int parse_vocab_json(gpt2_vocab *v, size_t size) {
    char *p = v->json, *end = v->json + size;
    v->n_tokens = 0;
    v->tokens = calloc(60000, sizeof *v->tokens);
    while (p < end && *p != '{')
        p++;
    while (p < end) {
        while (p < end && *p != '"' && *p != '}')
            p++;
        if (p >= end || *p == '}')
            break;
        char *out = ++p, *text = out;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end) {
                p++;
                if (*p == 'u' && p + 4 < end) {
                    unsigned cp = (unsigned)strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
                    p += 5;
                    if (cp < 0x80) {
                        *out++ = (char)cp;
                    } else if (cp < 0x800) {
                        *out++ = (char)(0xC0 | cp >> 6);
                        *out++ = (char)(0x80 | (cp & 0x3F));
                    } else {
                        *out++ = (char)(0xE0 | cp >> 12);
                        *out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                        *out++ = (char)(0x80 | (cp & 0x3F));
                    }
                    continue;
                }
                char c = *p;
                if (c == 'n')
                    c = '\n';
                else if (c == 't')
                    c = '\t';
                else if (c == 'r')
                    c = '\r';
                *out++ = c;
                p++;
                continue;
            }
            *out++ = *p++;
        }
        const size_t length = (size_t)(out - text);
        p++;
        while (p < end && *p != ':')
            p++;
        const long id = strtol(p + 1, &p, 10);
        if (id < 0 || id >= 60000)
            return -1;
        v->tokens[id].text.data = text;
        v->tokens[id].text.length = length;
        v->tokens[id].special = 0;
        if ((size_t)id + 1 > v->n_tokens)
            v->n_tokens = (size_t)id + 1;
    }
    return v->n_tokens > 0 ? 0 : -1;
}

static int load_gpt2(gpt2_vocab *v) {
    const char *vocab_path = check_shared("tokenizers/gpt2/gpt2_vocab.json");
    const char *merges_path = check_shared("tokenizers/gpt2/gpt2_merges.txt");
    memset(v, 0, sizeof *v);
    if (!check_require_file(vocab_path) || !check_require_file(merges_path))
        return 0;
    size_t vocab_size, merges_size;
    v->json = check_read_file(vocab_path, &vocab_size);
    v->merges_text = check_read_file(merges_path, &merges_size);
    if (!v->json || !v->merges_text)
        return 0;
    CHECK(parse_vocab_json(v, vocab_size) == 0);
    CHECK(v->n_tokens == 50257);
    /* <|endoftext|> is GPT-2's one special token. */
    if (v->n_tokens == 50257)
        v->tokens[50256].special = 1;

    v->merges = malloc(60000 * sizeof *v->merges);
    char *p = v->merges_text, *end = v->merges_text + merges_size;
    while (p < end && v->n_merges < 60000) {
        char *line_end = memchr(p, '\n', (size_t)(end - p));
        if (!line_end)
            line_end = end;
        if (line_end > p && strncmp(p, "#version", 8) != 0) {
            v->merges[v->n_merges].data = p;
            v->merges[v->n_merges].length = (uint64_t)(line_end - p);
            v->n_merges++;
        }
        p = line_end + 1;
    }
    CHECK(v->n_merges == 50000);
    return v->n_tokens == 50257;
}

static void free_gpt2(gpt2_vocab *v) {
    free(v->json);
    free(v->merges_text);
    free(v->tokens);
    free(v->merges);
}

/* Loads a BPE tokenizer section. The caller frees *arena_memory. */
static int load_bpe(const uint8_t *section, size_t size, int32_t vocab,
                    int32_t bos, pp_tokenizer *t, void **arena_memory) {
    pp_arena measure;
    pp_arena_init(&measure, NULL, 0);
    pp_status st = pp_tokenizer_load_kind(PP_TOKENIZER_BPE, NULL, &measure,
                                          section, size, vocab, bos, bos);
    CHECKF(st == PP_OK, "measuring: %s", pp_status_string(st));
    if (st != PP_OK)
        return 0;

    /* Measuring without the bytes (a read source) reserves the same. */
    pp_arena blind;
    pp_arena_init(&blind, NULL, 0);
    CHECK(pp_tokenizer_load_kind(PP_TOKENIZER_BPE, NULL, &blind, NULL, size,
                                 vocab, bos, bos) == PP_OK);
    CHECK(blind.used == measure.used);

    *arena_memory = aligned_alloc(64, (measure.used + 63) / 64 * 64);
    pp_arena arena;
    pp_arena_init(&arena, *arena_memory, measure.used);
    st = pp_tokenizer_load_kind(PP_TOKENIZER_BPE, t, &arena, section, size,
                                vocab, bos, bos);
    CHECKF(st == PP_OK, "loading: %s", pp_status_string(st));
    CHECK(arena.used == measure.used);
    return st == PP_OK;
}

static void check_encoding(const pp_tokenizer *t, const char *text,
                           const int32_t *expected, int32_t n_expected) {
    const size_t length = strlen(text);
    int32_t ids[256];
    int32_t n = 0;
    const pp_status st =
        pp_tokenizer_encode(t, text, length, 0, ids, (int32_t)length + 3, &n);
    CHECKF(st == PP_OK, "encoding \"%s\": %s", text, pp_status_string(st));
    int same = n == n_expected;
    for (int32_t i = 0; same && i < n; i++)
        same = ids[i] == expected[i];
    if (!same) {
        fprintf(stderr, "encoding \"%s\" gave", text);
        for (int32_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    CHECKF(same, "ids of \"%s\"", text);

    /* Decoding the ids gives the text back byte for byte. */
    char decoded[1024];
    size_t used = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t piece_length;
        const char *piece = pp_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i],
                                                &piece_length);
        CHECK(piece != NULL);
        if (!piece || used + piece_length > sizeof decoded)
            return;
        memcpy(decoded + used, piece, piece_length);
        used += piece_length;
    }
    CHECKF(used == length && memcmp(decoded, text, length) == 0,
           "round trip of \"%s\"", text);
}

/*
 * Expected ids come from GPT-2's published encoder algorithm (regex split,
 * then lowest-rank merges) run in Python with the same vocabulary and
 * merges. "Hello world" -> [15496, 995] is GPT-2's best-known example.
 */
static void gpt2_bpe_known_ids(void) {
    gpt2_vocab v;
    if (!load_gpt2(&v)) {
        free_gpt2(&v);
        return;
    }
    uint8_t *section = NULL;
    size_t size = 0;
    char err[512];
    const int built = pp_bpe_section_build(v.tokens, v.n_tokens, v.merges,
                                           v.n_merges, PP_BPE_PRE_GPT2,
                                           &section, &size, err, sizeof err);
    CHECKF(built == 0, "pp_bpe_section_build: %s", err);
    pp_tokenizer t;
    void *arena = NULL;
    if (built == 0 && load_bpe(section, size, 50257, 50256, &t, &arena)) {
        static const int32_t hello[] = {15496, 995};
        static const int32_t years[] = {40, 1101, 17031, 812};
        static const int32_t unicode[] = {2616, 38776, 40304, 784, 10545,
                                          251, 109, 12859, 105, 32485};
        static const int32_t spaces[] = {220, 3294, 220, 220, 9029,
                                         198, 198, 3605, 7322};
        static const int32_t contractions[] = {3987, 470, 44934, 6, 3069,
                                               17031, 2231, 3228};
        static const int32_t white[] = {220, 197, 23748, 201, 198, 201,
                                        198, 220, 995, 220, 220};
        check_encoding(&t, "Hello world", hello, 2);
        check_encoding(&t, "I'm 123 years", years, 4);
        check_encoding(&t, "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x93 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x99\x82",
                       unicode, 10);
        check_encoding(&t, "  multiple   spaces\n\nnew paragraph", spaces, 9);
        check_encoding(&t, "Don't STOP'LL 12345!!", contractions, 8);
        check_encoding(&t, " \t hello\r\n\r\n  world  ", white, 11);

        /* BOS is <|endoftext|>, and its text in the input stays text. */
        int32_t ids[64], n = 0;
        CHECK(pp_tokenizer_encode(&t, "<|endoftext|>", 13, 1, ids, 16, &n) == PP_OK);
        CHECK(n > 2);
        CHECK(ids[0] == 50256);
        for (int32_t i = 1; i < n; i++)
            CHECK(ids[i] != 50256);

        /* Invalid UTF-8 still round-trips through the byte tokens. */
        const char invalid[] = "a\xFF\xC3(b\xE2\x82";
        CHECK(pp_tokenizer_encode(&t, invalid, sizeof invalid - 1, 0, ids, 64,
                                  &n) == PP_OK);
        char decoded[32];
        size_t used = 0;
        for (int32_t i = 0; i < n; i++) {
            size_t length;
            const char *piece = pp_tokenizer_decode(&t, -1, ids[i], &length);
            if (piece && used + length <= sizeof decoded) {
                memcpy(decoded + used, piece, length);
                used += length;
            }
        }
        CHECK(used == sizeof invalid - 1 &&
              memcmp(decoded, invalid, sizeof invalid - 1) == 0);

        /* The capacity rule of the llama2.c kind holds. */
        CHECK(pp_tokenizer_encode(&t, "hello", 5, 1, ids, 7, &n) == PP_ERR_CAPACITY);
        CHECK(n == 8);
        CHECK(pp_tokenizer_decode(&t, -1, 50257, NULL) == NULL);
        CHECK(pp_tokenizer_decode(&t, -1, -1, NULL) == NULL);
    }
    free(arena);
    free(section);
    free_gpt2(&v);
}

/* A merge whose halves are not tokens is rejected with its text. */
static void gpt2_bpe_rejects_bad_merge(void) {
    gpt2_vocab v;
    if (!load_gpt2(&v)) {
        free_gpt2(&v);
        return;
    }
    const pp_gguf_string bad = {"Hel xyzzy", 9};
    v.merges[5] = bad;
    uint8_t *section = NULL;
    size_t size = 0;
    char err[512] = "";
    CHECK(pp_bpe_section_build(v.tokens, v.n_tokens, v.merges, v.n_merges,
                               PP_BPE_PRE_GPT2, &section, &size, err,
                               sizeof err) == -1);
    CHECKF(strstr(err, "merge 5") != NULL, "message: %s", err);
    free(section);
    free_gpt2(&v);
}

/* ---- Pre-tokenizer splits ------------------------------------------------------ */

typedef struct split_case {
    uint32_t pre;
    const char *text;
    const char *pieces[16];
} split_case;

/* Expected pieces from the Python regex package with each expression (see
 * enum pp_bpe_pre_tokenizer in format.h). */
static const split_case split_cases[] = {
    {PP_BPE_PRE_GPT2, "I'm 123 years", {"I", "'m", " 123", " years"}},
    {PP_BPE_PRE_LLAMA3, "I'm 123 years", {"I", "'m", " ", "123", " years"}},
    {PP_BPE_PRE_QWEN2, "I'm 123 years", {"I", "'m", " ", "1", "2", "3", " years"}},
    {PP_BPE_PRE_SMOLLM, "I'm 123 years", {"I", "'m", " ", "1", "2", "3", " years"}},
    {PP_BPE_PRE_GPT2, "  multiple   spaces\n\nnew paragraph",
     {" ", " multiple", "  ", " spaces", "\n", "\n", "new", " paragraph"}},
    {PP_BPE_PRE_LLAMA3, "  multiple   spaces\n\nnew paragraph",
     {" ", " multiple", "  ", " spaces", "\n\n", "new", " paragraph"}},
    {PP_BPE_PRE_SMOLLM, "  multiple   spaces\n\nnew paragraph",
     {" ", " multiple", "  ", " spaces", "\n", "\n", "new", " paragraph"}},
    {PP_BPE_PRE_GPT2, "Don't STOP'LL 12345!!",
     {"Don", "'t", " STOP", "'", "LL", " 12345", "!!"}},
    {PP_BPE_PRE_LLAMA3, "Don't STOP'LL 12345!!",
     {"Don", "'t", " STOP", "'LL", " ", "123", "45", "!!"}},
    {PP_BPE_PRE_QWEN2, "Don't STOP'LL 12345!!",
     {"Don", "'t", " STOP", "'LL", " ", "1", "2", "3", "4", "5", "!!"}},
    {PP_BPE_PRE_SMOLLM, "Don't STOP'LL 12345!!",
     {"Don", "'t", " STOP", "'", "LL", " ", "1", "2", "3", "4", "5", "!!"}},
    {PP_BPE_PRE_GPT2, " \t hello\r\n\r\n  world  ",
     {" \t", " hello", "\r\n\r\n ", " world", "  "}},
    {PP_BPE_PRE_LLAMA3, " \t hello\r\n\r\n  world  ",
     {" \t", " hello", "\r\n\r\n", " ", " world", "  "}},
    {PP_BPE_PRE_QWEN2, " \t hello\r\n\r\n  world  ",
     {" \t", " hello", "\r\n\r\n", " ", " world", "  "}},
    {PP_BPE_PRE_SMOLLM, " \t hello\r\n\r\n  world  ",
     {" \t", " hello", "\r\n\r\n ", " world", "  "}},
    {PP_BPE_PRE_LLAMA3, "a\t\xE6\x9D\xB1!?\n\nb",
     {"a", "\t\xE6\x9D\xB1", "!?\n\n", "b"}},
    {PP_BPE_PRE_GPT2, "\xE3\x80\x80x \xD9\xA3\xD9\xA4",
     {"\xE3\x80\x80", "x", " \xD9\xA3\xD9\xA4"}},
};

static void pre_tokenizer_splits(void) {
    for (size_t c = 0; c < sizeof split_cases / sizeof *split_cases; c++) {
        const split_case *s = &split_cases[c];
        const uint8_t *text = (const uint8_t *)s->text;
        const size_t length = strlen(s->text);
        size_t start = 0;
        int piece = 0;
        while (start < length && s->pieces[piece]) {
            const size_t end = pp_bpe_piece_end(s->pre, text, length, start);
            const size_t expected = strlen(s->pieces[piece]);
            CHECKF(end - start == expected &&
                       memcmp(text + start, s->pieces[piece], expected) == 0,
                   "case %zu (pre-tokenizer %u) piece %d: got \"%.*s\", "
                   "expected \"%s\"",
                   c, s->pre, piece, (int)(end - start), s->text + start,
                   s->pieces[piece]);
            if (end - start != expected)
                break;
            start = end;
            piece++;
        }
        CHECKF(start == length, "case %zu: the pieces end early", c);
        CHECKF(s->pieces[piece] == NULL, "case %zu: pieces are missing", c);
    }
}

/* ---- Dequantizers ------------------------------------------------------------ */

static void put_half(uint8_t *p, uint16_t bits) {
    p[0] = (uint8_t)bits;
    p[1] = (uint8_t)(bits >> 8);
}

static void f16_and_bf16_convert_exactly(void) {
    static const struct {
        uint16_t bits;
        float value;
    } halves[] = {{0x3C00, 1.0f},          {0xC000, -2.0f},
                  {0x0001, 5.9604645e-8f}, {0x03FF, 6.0975552e-5f},
                  {0x7BFF, 65504.0f},      {0x8000, -0.0f}};
    for (size_t i = 0; i < sizeof halves / sizeof *halves; i++) {
        uint8_t raw[2];
        float out;
        put_half(raw, halves[i].bits);
        pp_ggml_dequantize_row(PP_GGML_F16, raw, 1, &out);
        CHECKF(out == halves[i].value, "f16 %04x -> %g", halves[i].bits, out);
    }
    uint8_t raw[2];
    float out;
    put_half(raw, 0x7C00);
    pp_ggml_dequantize_row(PP_GGML_F16, raw, 1, &out);
    CHECK(isinf(out));
    CHECK(out > 0);
    put_half(raw, 0x7E00);
    pp_ggml_dequantize_row(PP_GGML_F16, raw, 1, &out);
    CHECK(isnan(out));
    put_half(raw, 0xC040); /* bf16 -3.0 */
    pp_ggml_dequantize_row(PP_GGML_BF16, raw, 1, &out);
    CHECK(out == -3.0f);
}

/* Q4_K scales and mins are 6-bit values packed as ggml packs them. Those
 * of sub-blocks 0-3 are the low 6 bits of bytes 0-3 (scales) and 4-7
 * (mins). Those of sub-blocks 4-7 have their low 4 bits in the nibbles of
 * bytes 8-11 and their high 2 bits in the top bits of bytes 0-7. */
static void q4_k_dequantizes_packed_scales(void) {
    static const int scale[8] = {1, 2, 3, 4, 17, 33, 50, 63};
    static const int min[8] = {0, 5, 10, 15, 20, 40, 60, 63};
    uint8_t block[144] = {0};
    put_half(block, 0x3C00);      /* d = 1 */
    put_half(block + 2, 0x3800);  /* dmin = 0.5 */
    uint8_t *packed = block + 4;
    for (int j = 0; j < 4; j++) {
        packed[j] = (uint8_t)(scale[j] | (scale[j + 4] >> 4) << 6);
        packed[j + 4] = (uint8_t)(min[j] | (min[j + 4] >> 4) << 6);
        packed[j + 8] = (uint8_t)((scale[j + 4] & 15) | (min[j + 4] & 15) << 4);
    }
    /* Element e of sub-block e / 32: its 32-byte group is e / 64, the low
     * nibble for even sub-blocks and the high nibble for odd ones. */
    for (int e = 0; e < 256; e++) {
        const int q = (e * 5 + 3) % 16;
        uint8_t *byte = block + 16 + (e / 64) * 32 + e % 32;
        *byte = (uint8_t)(((e / 32) % 2) ? (*byte | q << 4) : (*byte | q));
    }
    float out[256];
    pp_ggml_dequantize_row(PP_GGML_Q4_K, block, 256, out);
    int wrong = 0;
    for (int e = 0; e < 256; e++) {
        const float expected = 1.0f * (float)scale[e / 32] * (float)((e * 5 + 3) % 16) -
                               0.5f * (float)min[e / 32];
        wrong += out[e] != expected;
    }
    CHECKF(wrong == 0, "%d of 256 Q4_K values wrong", wrong);
}

/* Q6_K holds 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16
 * int8 scales (one per 16 values) and an f16 d. Each x = d * scale * (q -
 * 32). */
static void q6_k_dequantizes_split_bits(void) {
    uint8_t block[210] = {0};
    for (int s = 0; s < 16; s++)
        block[192 + s] = (uint8_t)(int8_t)(s - 8);
    put_half(block + 208, 0x3400); /* d = 0.25 */
    for (int e = 0; e < 256; e++) {
        const int q = (e * 11 + 5) % 64;
        const int half = e / 128, r = e % 128, k = r / 32, i = r % 32;
        uint8_t *low = block + 64 * half + i + (k & 1) * 32;
        *low = (uint8_t)(*low | (k >= 2 ? (q & 15) << 4 : (q & 15)));
        block[128 + 32 * half + i] |= (uint8_t)((q >> 4) << (2 * k));
    }
    float out[256];
    pp_ggml_dequantize_row(PP_GGML_Q6_K, block, 256, out);
    int wrong = 0;
    for (int e = 0; e < 256; e++) {
        const float expected =
            0.25f * (float)(e / 16 - 8) * (float)((e * 11 + 5) % 64 - 32);
        wrong += out[e] != expected;
    }
    CHECKF(wrong == 0, "%d of 256 Q6_K values wrong", wrong);
}

/* ---- A tiny llama GGUF built in memory ------------------------------------------ */

typedef struct buffer {
    uint8_t *data;
    size_t size, capacity;
} buffer;

static void put(buffer *b, const void *p, size_t n) {
    if (b->size + n > b->capacity) {
        b->capacity = (b->size + n) * 2 + 1024;
        b->data = realloc(b->data, b->capacity);
    }
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_u32(buffer *b, uint32_t v) {
    uint8_t raw[4];
    pp_put_u32(raw, v);
    put(b, raw, 4);
}

static void put_u64(buffer *b, uint64_t v) {
    uint8_t raw[8];
    pp_put_u64(raw, v);
    put(b, raw, 8);
}

static void put_str(buffer *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* Knobs that break one thing in the tiny file. */
typedef struct tiny_spec {
    const char *omit_key;          /* leave this metadata key out */
    const char *string_key;        /* write this key as the string "x" */
    const char *int32_array_key;   /* write this array with int32 elements */
    const char *duplicate_key;     /* write this key twice */
    const char *architecture;      /* default "llama" */
    const char *tokenizer_model;   /* default "gpt2" */
    const char *bad_merge;         /* replaces the first merge */
    uint64_t kv_heads;             /* default 2 */
    uint64_t alignment;            /* 0: no general.alignment key */
    const char *retype_tensor;     /* give this tensor type `tensor_type` */
    uint32_t tensor_type;
    const char *reshape_tensor;    /* make this tensor's ne[1] one larger */
    const char *omit_tensor;
    const char *extra_tensor;      /* an additional F32 vector */
    const char *misplace_tensor;   /* add `offset_delta` to its offset */
    uint64_t offset_delta;
    int nested_array;              /* add a key whose value is an array of arrays */
    int bool_two;                  /* add a bool key with the value 2 */
    int five_dims;                 /* give token_embd.weight five dimensions */
    const char *extra_u32_key;     /* an additional uint32 key ... */
    uint32_t extra_u32_value;      /* ... with this value */
    const char *extra_string_key;  /* an additional string key ... */
    const char *extra_string_value;
    /* Filled by the builder: where the tokens array count is. */
    size_t tokens_count_at;
} tiny_spec;

enum { TINY_DIM = 32, TINY_HIDDEN = 64, TINY_HEADS = 4, TINY_VOCAB = 262 };

/* The values of weight tensor `index`: multiples of 1/8 in [-1, 0.875],
 * exact in F16, BF16, Q8_0 (d = 1/8) and Q4_0 (d = 1/8). */
static float tiny_value(int index, uint64_t row, uint64_t col) {
    return (float)((int)((row * 7 + col * 3 + (uint64_t)index * 5) % 16) - 8) / 8.0f;
}

typedef struct tiny_tensor {
    char name[48];
    uint64_t ne[2];
    uint32_t type;
    int index;  /* argument of tiny_value, or -1 for a norm (1 + col / 64) */
} tiny_tensor;

static size_t tiny_tensors(tiny_tensor *t) {
    const struct {
        const char *name;
        uint64_t cols, rows;
        uint32_t type;
    } list[] = {
        {"token_embd.weight", TINY_DIM, TINY_VOCAB, PP_GGML_F32},
        {"output_norm.weight", TINY_DIM, 1, PP_GGML_F32},
        {"output.weight", TINY_DIM, TINY_VOCAB, PP_GGML_Q8_0},
        {"blk.0.attn_norm.weight", TINY_DIM, 1, PP_GGML_F32},
        {"blk.0.attn_q.weight", TINY_DIM, TINY_DIM, PP_GGML_F16},
        {"blk.0.attn_k.weight", TINY_DIM, TINY_DIM / 2, PP_GGML_BF16},
        {"blk.0.attn_v.weight", TINY_DIM, TINY_DIM / 2, PP_GGML_Q8_0},
        {"blk.0.attn_output.weight", TINY_DIM, TINY_DIM, PP_GGML_Q4_0},
        {"blk.0.ffn_norm.weight", TINY_DIM, 1, PP_GGML_F32},
        {"blk.0.ffn_gate.weight", TINY_DIM, TINY_HIDDEN, PP_GGML_F32},
        {"blk.0.ffn_up.weight", TINY_DIM, TINY_HIDDEN, PP_GGML_F16},
        {"blk.0.ffn_down.weight", TINY_HIDDEN, TINY_DIM, PP_GGML_Q8_0},
    };
    const size_t n = sizeof list / sizeof *list;
    for (size_t i = 0; i < n; i++) {
        snprintf(t[i].name, sizeof t[i].name, "%s", list[i].name);
        t[i].ne[0] = list[i].cols;
        t[i].ne[1] = list[i].rows;
        t[i].type = list[i].type;
        t[i].index = list[i].rows == 1 ? -1 : (int)i;
    }
    return n;
}

/* Encodes one row of tiny_value in `type`. */
static void put_row(buffer *b, const tiny_tensor *t, uint64_t row) {
    const uint64_t cols = t->ne[0];
    for (uint64_t c = 0; c < cols; c += t->type == PP_GGML_Q8_0 || t->type == PP_GGML_Q4_0 ? 32 : 1) {
        const float v = t->index < 0 ? 1.0f + (float)c / 64.0f : tiny_value(t->index, row, c);
        uint32_t bits;
        memcpy(&bits, &v, 4);
        switch (t->type) {
        case PP_GGML_F32: put_u32(b, bits); break;
        case PP_GGML_BF16: {
            const uint8_t raw[2] = {(uint8_t)(bits >> 16), (uint8_t)(bits >> 24)};
            put(b, raw, 2);
            break;
        }
        case PP_GGML_F16: {
            /* Multiples of 1/8 in [-1, 1): sign, exponent, 3 mantissa bits. */
            uint16_t h = 0;
            if (v != 0.0f) {
                const float a = fabsf(v);
                int e = 0;
                float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
                const uint16_t mantissa = (uint16_t)((m * 2.0f - 1.0f) * 1024.0f);
                h = (uint16_t)((v < 0 ? 0x8000 : 0) | (uint16_t)(e - 1 + 15) << 10 | mantissa);
            }
            uint8_t raw[2];
            put_half(raw, h);
            put(b, raw, 2);
            break;
        }
        case PP_GGML_Q8_0: {
            uint8_t block[34];
            put_half(block, 0x3000); /* 1/8 */
            for (int i = 0; i < 32; i++)
                block[2 + i] = (uint8_t)(int8_t)(tiny_value(t->index, row, c + (uint64_t)i) * 8.0f);
            put(b, block, 34);
            break;
        }
        case PP_GGML_Q4_0: {
            uint8_t block[18];
            put_half(block, 0x3000);
            for (int i = 0; i < 16; i++) {
                const int low = (int)(tiny_value(t->index, row, c + (uint64_t)i) * 8.0f) + 8;
                const int high = (int)(tiny_value(t->index, row, c + 16 + (uint64_t)i) * 8.0f) + 8;
                block[2 + i] = (uint8_t)(low | high << 4);
            }
            put(b, block, 18);
            break;
        }
        default: {
            /* Unsupported types get zero bytes of their size. */
            uint32_t elements, bytes;
            pp_ggml_type_block(t->type, &elements, &bytes);
            static const uint8_t zeros[512];
            put(b, zeros, bytes);
            c += elements - 1;
            break;
        }
        }
    }
}

static int kv_wanted(const tiny_spec *s, const char *key) {
    return !(s->omit_key && strcmp(s->omit_key, key) == 0);
}

static int kv_as_string(buffer *b, const tiny_spec *s, const char *key) {
    if (s->string_key && strcmp(s->string_key, key) == 0) {
        put_str(b, key);
        put_u32(b, PP_GGUF_STRING);
        put_str(b, "x");
        return 1;
    }
    return 0;
}

static void kv_u32(buffer *b, const tiny_spec *s, const char *key, uint32_t v,
                   uint64_t *count) {
    if (!kv_wanted(s, key))
        return;
    (*count)++;
    if (kv_as_string(b, s, key))
        return;
    put_str(b, key);
    put_u32(b, PP_GGUF_UINT32);
    put_u32(b, v);
}

static void kv_f32(buffer *b, const tiny_spec *s, const char *key, float v,
                   uint64_t *count) {
    if (!kv_wanted(s, key))
        return;
    (*count)++;
    if (kv_as_string(b, s, key))
        return;
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_str(b, key);
    put_u32(b, PP_GGUF_FLOAT32);
    put_u32(b, bits);
}

static void kv_string(buffer *b, const tiny_spec *s, const char *key,
                      const char *v, uint64_t *count) {
    if (!kv_wanted(s, key))
        return;
    (*count)++;
    put_str(b, key);
    put_u32(b, PP_GGUF_STRING);
    put_str(b, v);
}

/* Writes the tiny vocabulary: the 256 bytes in GPT-2's byte-to-Unicode
 * spelling at ids 0-255, five merged tokens, then <|endoftext|>. */
static void kv_tokens(buffer *b, tiny_spec *s, uint64_t *count) {
    const char *key = "tokenizer.ggml.tokens";
    if (!kv_wanted(s, key))
        return;
    (*count)++;
    put_str(b, key);
    put_u32(b, PP_GGUF_ARRAY);
    if (s->int32_array_key && strcmp(s->int32_array_key, key) == 0) {
        put_u32(b, PP_GGUF_INT32);
        put_u64(b, 1);
        put_u32(b, 7);
        return;
    }
    put_u32(b, PP_GGUF_STRING);
    s->tokens_count_at = b->size;
    put_u64(b, TINY_VOCAB);
    uint32_t next = 256;
    for (uint32_t byte = 0; byte < 256; byte++) {
        const int printable = (byte >= 33 && byte <= 126) ||
                              (byte >= 161 && byte <= 172) || byte >= 174;
        const uint32_t cp = printable ? byte : next++;
        char utf8[3];
        size_t n;
        if (cp < 0x80) {
            utf8[0] = (char)cp;
            n = 1;
        } else {
            utf8[0] = (char)(0xC0 | cp >> 6);
            utf8[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        }
        put_u64(b, n);
        put(b, utf8, n);
    }
    static const char *const merged[] = {"he", "ll", "hell", "hello",
                                         "\xC4\xA0w", "<|endoftext|>"};
    for (int i = 0; i < 6; i++)
        put_str(b, merged[i]);
}

static void kv_merges(buffer *b, const tiny_spec *s, uint64_t *count) {
    const char *key = "tokenizer.ggml.merges";
    if (!kv_wanted(s, key))
        return;
    (*count)++;
    const char *merges[] = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w"};
    if (s->bad_merge)
        merges[0] = s->bad_merge;
    put_str(b, key);
    put_u32(b, PP_GGUF_ARRAY);
    put_u32(b, PP_GGUF_STRING);
    put_u64(b, 5);
    for (int i = 0; i < 5; i++)
        put_str(b, merges[i]);
}

static void kv_token_types(buffer *b, const tiny_spec *s, uint64_t *count) {
    const char *key = "tokenizer.ggml.token_type";
    if (!kv_wanted(s, key))
        return;
    (*count)++;
    put_str(b, key);
    put_u32(b, PP_GGUF_ARRAY);
    put_u32(b, PP_GGUF_INT32);
    put_u64(b, TINY_VOCAB);
    for (int i = 0; i < TINY_VOCAB; i++)
        put_u32(b, i == TINY_VOCAB - 1 ? 3u : 1u);
}

/* Builds the tiny file in malloc'd memory. */
static uint8_t *build_tiny(tiny_spec *s, size_t *size) {
    buffer b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    const size_t counts_at = b.size;
    put_u64(&b, 0);
    put_u64(&b, 0);

    uint64_t n_kv = 0;
    kv_string(&b, s, "general.architecture",
              s->architecture ? s->architecture : "llama", &n_kv);
    if (s->alignment)
        kv_u32(&b, s, "general.alignment", (uint32_t)s->alignment, &n_kv);
    kv_u32(&b, s, "llama.context_length", 64, &n_kv);
    kv_u32(&b, s, "llama.embedding_length", TINY_DIM, &n_kv);
    kv_u32(&b, s, "llama.feed_forward_length", TINY_HIDDEN, &n_kv);
    kv_u32(&b, s, "llama.block_count", 1, &n_kv);
    kv_u32(&b, s, "llama.attention.head_count", TINY_HEADS, &n_kv);
    kv_u32(&b, s, "llama.attention.head_count_kv",
           s->kv_heads ? (uint32_t)s->kv_heads : 2, &n_kv);
    kv_f32(&b, s, "llama.rope.freq_base", 10000.0f, &n_kv);
    kv_f32(&b, s, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &n_kv);
    kv_string(&b, s, "tokenizer.ggml.model",
              s->tokenizer_model ? s->tokenizer_model : "gpt2", &n_kv);
    kv_string(&b, s, "tokenizer.ggml.pre", "gpt-2", &n_kv);
    kv_tokens(&b, s, &n_kv);
    kv_token_types(&b, s, &n_kv);
    kv_merges(&b, s, &n_kv);
    kv_u32(&b, s, "tokenizer.ggml.bos_token_id", TINY_VOCAB - 1, &n_kv);
    kv_u32(&b, s, "tokenizer.ggml.eos_token_id", TINY_VOCAB - 1, &n_kv);
    if (s->duplicate_key)
        kv_u32(&b, s, s->duplicate_key, 1, &n_kv);
    /* Extra keys are written even when omit_key names them, so a key can
     * be replaced by another value. */
    const tiny_spec plain = {0};
    if (s->extra_u32_key)
        kv_u32(&b, &plain, s->extra_u32_key, s->extra_u32_value, &n_kv);
    if (s->extra_string_key)
        kv_string(&b, &plain, s->extra_string_key, s->extra_string_value, &n_kv);
    if (s->nested_array) {
        n_kv++;
        put_str(&b, "test.nested");
        put_u32(&b, PP_GGUF_ARRAY);
        put_u32(&b, PP_GGUF_ARRAY);
        put_u64(&b, 0);
    }
    if (s->bool_two) {
        n_kv++;
        put_str(&b, "test.flag");
        put_u32(&b, PP_GGUF_BOOL);
        const uint8_t two = 2;
        put(&b, &two, 1);
    }

    tiny_tensor tensors[16];
    size_t n_tensors = tiny_tensors(tensors);
    if (s->extra_tensor) {
        tiny_tensor *t = &tensors[n_tensors++];
        snprintf(t->name, sizeof t->name, "%s", s->extra_tensor);
        t->ne[0] = TINY_DIM;
        t->ne[1] = 1;
        t->type = PP_GGML_F32;
        t->index = -1;
    }
    for (size_t i = 0; i < n_tensors; i++) {
        if (s->retype_tensor && strcmp(s->retype_tensor, tensors[i].name) == 0)
            tensors[i].type = s->tensor_type;
        if (s->reshape_tensor && strcmp(s->reshape_tensor, tensors[i].name) == 0)
            tensors[i].ne[1]++;
    }

    /* Tensor directory, then data at 32-byte (or the given) alignment. */
    const uint64_t alignment = s->alignment ? s->alignment : 32;
    buffer data = {0};
    uint64_t written = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        const tiny_tensor *t = &tensors[i];
        if (s->omit_tensor && strcmp(s->omit_tensor, t->name) == 0)
            continue;
        written++;
        while (data.size % alignment != 0)
            put(&data, "", 1);
        put_str(&b, t->name);
        uint32_t dims = t->ne[1] != 1 ? 2 : 1;
        if (s->five_dims && i == 0)
            dims = 5;
        put_u32(&b, dims);
        put_u64(&b, t->ne[0]);
        for (uint32_t d = 1; d < dims; d++)
            put_u64(&b, d == 1 ? t->ne[1] : 1);
        put_u32(&b, t->type);
        uint64_t offset = data.size;
        if (s->misplace_tensor && strcmp(s->misplace_tensor, t->name) == 0)
            offset += s->offset_delta;
        put_u64(&b, offset);
        for (uint64_t r = 0; r < t->ne[1]; r++)
            put_row(&data, t, r);
    }
    while (b.size % alignment != 0)
        put(&b, "", 1);
    put(&b, data.data, data.size);
    free(data.data);

    pp_put_u64(b.data + counts_at, written);
    pp_put_u64(b.data + counts_at + 8, n_kv);
    *size = b.size;
    return b.data;
}

/* Opens the tiny file built from `spec` and returns the result of
 * pp_gguf_llama_open, with its message in err. */
static int open_tiny(tiny_spec *spec, char *err, size_t err_size) {
    size_t size;
    uint8_t *bytes = build_tiny(spec, &size);
    pp_gguf_llama m;
    err[0] = '\0';
    const int rc = pp_gguf_llama_open(bytes, size, &m, err, err_size);
    if (rc == 0)
        pp_gguf_llama_free(&m);
    free(bytes);
    return rc;
}

/* Every weight of the tiny file reaches the writer exactly. */
static void tiny_gguf_weights_exact(void) {
    tiny_spec spec = {0};
    size_t size;
    uint8_t *bytes = build_tiny(&spec, &size);
    pp_gguf_llama m;
    char err[512];
    const int opened = pp_gguf_llama_open(bytes, size, &m, err, sizeof err) == 0;
    CHECKF(opened, "%s", err);
    if (!opened) {
        free(bytes);
        return;
    }
    const pp_weight_provider *p = &m.provider;
    CHECK(p->dim == TINY_DIM);
    CHECK(p->hidden_dim == TINY_HIDDEN);
    CHECK(p->n_layers == 1);
    CHECK(p->n_heads == TINY_HEADS);
    CHECK(p->n_kv_heads == 2);
    CHECK(p->vocab_size == TINY_VOCAB);
    CHECK(p->max_seq_len == 64);
    CHECK(p->shared_classifier == 0);
    CHECK(p->special_ids_set);
    CHECK(p->bos_id == TINY_VOCAB - 1);
    CHECK(p->eos_id == TINY_VOCAB - 1);
    CHECK(p->tokenizer_bpe == 1);
    CHECK(p->final_norm[5] == 1.0f + 5.0f / 64.0f);

    /* (provider tensor, tiny tensor index, rows, cols) */
    static const int map[][4] = {
        {PP_T_EMBEDDING, 0, TINY_VOCAB, TINY_DIM}, {PP_T_CLASSIFIER, 2, TINY_VOCAB, TINY_DIM},
        {PP_T_WQ, 4, TINY_DIM, TINY_DIM},          {PP_T_WK, 5, TINY_DIM / 2, TINY_DIM},
        {PP_T_WV, 6, TINY_DIM / 2, TINY_DIM},      {PP_T_WO, 7, TINY_DIM, TINY_DIM},
        {PP_T_GATE, 9, TINY_HIDDEN, TINY_DIM},     {PP_T_UP, 10, TINY_HIDDEN, TINY_DIM},
        {PP_T_DOWN, 11, TINY_DIM, TINY_HIDDEN},
    };
    float out[TINY_VOCAB * TINY_HIDDEN];
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        const size_t rows = (size_t)map[i][2], cols = (size_t)map[i][3];
        int wrong = 0;
        p->block(p->user, map[i][0], 0, 0, rows, 0, cols, out);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                wrong += out[r * cols + c] != tiny_value(map[i][1], r, c);
        /* A column slice that starts inside a quantization block. */
        p->block(p->user, map[i][0], 0, 3, 2, 5, 7, out);
        for (size_t r = 0; r < 2; r++)
            for (size_t c = 0; c < 7; c++)
                wrong += out[r * 7 + c] != tiny_value(map[i][1], 3 + r, 5 + c);
        CHECKF(wrong == 0, "tensor %d: %d values differ", map[i][0], wrong);
    }

    /* The Q4_0 tensor draws the requantization warning. */
    CHECKF(strstr(m.warnings, "Q4_0, Q4_K and Q6_K tensors (1)") != NULL, "warnings: %s", m.warnings);
    pp_gguf_llama_free(&m);
    free(bytes);
}

/* The tiny model converts to a file that loads, runs and tokenizes with
 * its byte-level BPE vocabulary and GGUF's BOS id. */
static void tiny_gguf_model_runs_with_bpe(void) {
    tiny_spec spec = {0};
    size_t size;
    uint8_t *bytes = build_tiny(&spec, &size);
    pp_gguf_llama m;
    char err[512];
    fixture_model converted;
    if (pp_gguf_llama_open(bytes, size, &m, err, sizeof err) != 0) {
        CHECKF(0, "%s", err);
        free(bytes);
        return;
    }
    const int written = write_and_load(&m.provider, m.tokenizer, m.tokenizer_size, &converted);
    pp_gguf_llama_free(&m);
    free(bytes);
    if (!written)
        return;

    void *arena = NULL;
    pp_context *ctx = fixture_context(&converted, 1, 8, pp_pool_workers(NULL), NULL, &arena);
    if (ctx) {
        CHECK(pp_info(ctx)->bos_id == TINY_VOCAB - 1);
        CHECK(pp_info(ctx)->eos_id == TINY_VOCAB - 1);
        int32_t ids[32], n = 0;
        CHECK(pp_tokenize(ctx, "hello world", 11, 1, ids, 32, &n) == PP_OK);
        static const int32_t expected[] = {TINY_VOCAB - 1, 259, 260, 'o', 'r', 'l', 'd'};
        CHECKF(n == 7 && memcmp(ids, expected, sizeof expected) == 0,
               "%d ids, first %d %d %d", n, ids[0], ids[1], ids[2]);
        size_t length;
        const char *text = pp_token_text(ctx, ids[0], ids[1], &length);
        CHECK(text != NULL);
        CHECK(length == 5);
        CHECK(text && memcmp(text, "hello", 5) == 0);
        text = pp_token_text(ctx, ids[1], ids[2], &length);
        CHECK(text != NULL);
        CHECK(length == 2);
        CHECK(text && memcmp(text, " w", 2) == 0);

        float logits[TINY_VOCAB];
        CHECK(pp_forward(ctx, ids, 1, 1, 0, PP_LAST_LOGITS, logits) == PP_OK);
        int finite = 1;
        for (int i = 0; i < TINY_VOCAB; i++)
            finite &= isfinite(logits[i]) != 0;
        CHECK(finite);
    }
    free(arena);
    fixture_free(&converted);
}

/* ---- Hostile files -------------------------------------------------------------- */

/* Each case breaks one thing and names a phrase the message must contain. */
static void rejects_bad_metadata(void) {
    static const struct {
        tiny_spec spec;
        const char *phrase;
    } cases[] = {
        {{.omit_key = "llama.embedding_length"}, "missing metadata key 'llama.embedding_length'"},
        {{.omit_key = "general.architecture"}, "missing metadata key 'general.architecture'"},
        {{.omit_key = "llama.attention.layer_norm_rms_epsilon"}, "layer_norm_rms_epsilon"},
        {{.omit_key = "tokenizer.ggml.tokens"}, "missing metadata key 'tokenizer.ggml.tokens'"},
        {{.omit_key = "tokenizer.ggml.merges"}, "missing metadata key 'tokenizer.ggml.merges'"},
        {{.architecture = "qwen2"}, "unsupported architecture 'qwen2'"},
        {{.tokenizer_model = "bert"}, "unsupported tokenizer model 'bert'"},
        {{.string_key = "llama.block_count"}, "'llama.block_count' is string, expected an integer"},
        {{.string_key = "llama.rope.freq_base"}, "'llama.rope.freq_base' is string, expected float32"},
        {{.int32_array_key = "tokenizer.ggml.tokens"}, "is an array of int32, expected an array of string"},
        {{.duplicate_key = "llama.block_count"}, "'llama.block_count' appears more than once"},
        {{.kv_heads = 3}, "does not divide"},
        {{.alignment = 48}, "not a power of two"},
        {{.nested_array = 1}, "arrays of arrays"},
        {{.bool_two = 1}, "invalid bool"},
        {{.five_dims = 1}, "5 dimensions"},
        {{.bad_merge = "h q"}, "are not tokens of the vocabulary"},
        {{.retype_tensor = "blk.0.ffn_up.weight", .tensor_type = 6}, "type Q5_0, which pprt cannot convert"},
        {{.retype_tensor = "blk.0.ffn_up.weight", .tensor_type = 99}, "unknown tensor type 99"},
        {{.retype_tensor = "blk.0.ffn_down.weight", .tensor_type = 12}, "not a multiple of the Q4_K block size"},
        {{.reshape_tensor = "blk.0.attn_k.weight"}, "'blk.0.attn_k.weight' has shape"},
        {{.omit_tensor = "blk.0.ffn_up.weight"}, "missing tensor 'blk.0.ffn_up.weight'"},
        {{.extra_tensor = "blk.0.attn_q.bias"}, "unexpected tensor 'blk.0.attn_q.bias'"},
        {{.misplace_tensor = "blk.0.ffn_down.weight", .offset_delta = 1}, "not a multiple of the alignment"},
        {{.misplace_tensor = "blk.0.ffn_down.weight", .offset_delta = 1u << 20}, "extends past the end"},
        {{.misplace_tensor = "token_embd.weight", .offset_delta = UINT64_MAX - 31}, "extends past the end"},
        {{.extra_u32_key = "llama.expert_count", .extra_u32_value = 8}, "mixture-of-experts"},
        {{.extra_u32_key = "llama.rope.dimension_count", .extra_u32_value = 4}, "partial rotary"},
        {{.extra_string_key = "llama.rope.scaling.type", .extra_string_value = "yarn"}, "RoPE scaling is not supported"},
        {{.omit_key = "tokenizer.ggml.bos_token_id", .extra_u32_key = "tokenizer.ggml.bos_token_id",
          .extra_u32_value = 262}, "above the maximum 261"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tiny_spec spec = cases[i].spec;
        char err[512];
        const int rc = open_tiny(&spec, err, sizeof err);
        CHECKF(rc == -1, "case %zu (%s) was accepted", i, cases[i].phrase);
        CHECKF(strstr(err, cases[i].phrase) != NULL,
               "case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].phrase);
    }

    /* A power-of-two alignment other than 32 is honored. */
    tiny_spec aligned = {.alignment = 64};
    char err[512];
    CHECKF(open_tiny(&aligned, err, sizeof err) == 0, "alignment 64: %s", err);
}

/* Header fields patched after building: version, byte order, magic and
 * counts far beyond what the file can hold. */
static void rejects_bad_header_and_counts(void) {
    tiny_spec spec = {0};
    size_t size;
    uint8_t *original = build_tiny(&spec, &size);
    uint8_t *bytes = malloc(size);
    static const struct {
        size_t offset;
        int width;
        uint64_t value;
        const char *phrase;
    } patches[] = {
        {4, 4, 1, "GGUF version 1 is not supported"},
        {4, 4, 0x03000000u, "big-endian"},
        {0, 4, 0x46554746u, "not a GGUF file"},
        {8, 8, UINT64_C(1) << 60, "tensor count"},
        {16, 8, UINT64_C(1) << 60, "metadata count"},
        {24, 8, UINT64_C(1) << 62, "key runs past the end"},
        {0, 0, 0, "tokens cannot fit"},  /* the tokens array count */
    };
    for (size_t i = 0; i < sizeof patches / sizeof *patches; i++) {
        memcpy(bytes, original, size);
        if (patches[i].width == 4)
            pp_put_u32(bytes + patches[i].offset, (uint32_t)patches[i].value);
        else if (patches[i].width == 8)
            pp_put_u64(bytes + patches[i].offset, patches[i].value);
        else
            pp_put_u64(bytes + spec.tokens_count_at, UINT64_C(1) << 40);
        pp_gguf_llama m;
        char err[512] = "";
        CHECKF(pp_gguf_llama_open(bytes, size, &m, err, sizeof err) == -1,
               "patch %zu accepted", i);
        const char *phrase = patches[i].width ? patches[i].phrase : "cannot fit";
        CHECKF(strstr(err, phrase) != NULL, "patch %zu: \"%s\" lacks \"%s\"", i,
               err, phrase);
    }
    free(bytes);
    free(original);
}

/* Every truncation of a valid file is rejected with a message. */
static void rejects_every_truncation(void) {
    tiny_spec spec = {0};
    size_t size;
    uint8_t *original = build_tiny(&spec, &size);
    int silent = 0, accepted = 0;
    for (size_t cut = 0; cut < size; cut++) {
        /* A copy of exactly `cut` bytes, so a sanitizer sees any overread. */
        uint8_t *bytes = malloc(cut ? cut : 1);
        memcpy(bytes, original, cut);
        pp_gguf_llama m;
        char err[512] = "";
        if (pp_gguf_llama_open(bytes, cut, &m, err, sizeof err) == 0) {
            accepted++;
            pp_gguf_llama_free(&m);
        } else if (err[0] == '\0') {
            silent++;
        }
        free(bytes);
    }
    CHECKF(accepted == 0, "%d truncations accepted", accepted);
    CHECKF(silent == 0, "%d truncations rejected without a message", silent);
    free(original);
}

/* The BPE section is checked like the llama2.c one: truncation, bad ids,
 * bad merges and unknown pre-tokenizers. */
static void bpe_section_rejects_corruption(void) {
    tiny_spec spec = {0};
    size_t size;
    uint8_t *bytes = build_tiny(&spec, &size);
    pp_gguf_llama m;
    char err[512];
    if (pp_gguf_llama_open(bytes, size, &m, err, sizeof err) != 0) {
        CHECKF(0, "%s", err);
        free(bytes);
        return;
    }
    const size_t n = m.tokenizer_size;
    uint8_t *copy = malloc(n);
    int accepted = 0;
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(copy, m.tokenizer, cut);
        accepted += pp_bpe_validate(copy, cut, TINY_VOCAB, NULL) == PP_OK;
    }
    CHECKF(accepted == 0, "%d truncated sections accepted", accepted);
    CHECK(pp_bpe_validate(m.tokenizer, n, TINY_VOCAB, NULL) == PP_OK);
    CHECK(pp_bpe_validate(m.tokenizer, n, TINY_VOCAB + 1, NULL) != PP_OK);

    /* The last merge is "Ġ w" -> "Ġw": point its result at "he". */
    memcpy(copy, m.tokenizer, n);
    pp_put_u32(copy + n - 4, 256);
    pp_arena measure;
    pp_arena_init(&measure, NULL, 0);
    CHECK(pp_bpe_load(NULL, &measure, copy, n, TINY_VOCAB, 0, 0) == PP_OK);
    void *memory = aligned_alloc(64, (measure.used + 63) / 64 * 64);
    pp_arena arena;
    pp_arena_init(&arena, memory, measure.used);
    pp_tokenizer t;
    CHECK(pp_bpe_load(&t, &arena, copy, n, TINY_VOCAB, 0, 0) == PP_ERR_CORRUPT);
    free(memory);

    pp_put_u32(copy + n - 4, TINY_VOCAB);
    CHECK(pp_bpe_validate(copy, n, TINY_VOCAB, NULL) == PP_ERR_CORRUPT);
    memcpy(copy, m.tokenizer, n);
    pp_put_u32(copy, 9);
    CHECK(pp_bpe_validate(copy, n, TINY_VOCAB, NULL) == PP_ERR_UNSUPPORTED);
    memcpy(copy, m.tokenizer, n);
    copy[8] = 2; /* the first token's kind */
    CHECK(pp_bpe_validate(copy, n, TINY_VOCAB, NULL) == PP_ERR_CORRUPT);

    free(copy);
    pp_gguf_llama_free(&m);
    free(bytes);
}

/* The fuzz target's checks pass on valid files: the tiny one and the real
 * Q8_0 file (a failure aborts the program). */
static void fuzz_entry_accepts_valid_files(void) {
    tiny_spec spec = {0};
    size_t size;
    uint8_t *bytes = build_tiny(&spec, &size);
    fuzz_gguf_one(bytes, size);
    free(bytes);

    const char *path = check_shared("models/stories260K/stories260K-q8_0.gguf");
    if (!check_require_file(path))
        return;
    bytes = check_read_file(path, &size);
    if (bytes)
        fuzz_gguf_one(bytes, size);
    free(bytes);
}

/* Approximations are accepted with a warning that says what differs. */
static void accepts_with_warnings(void) {
    static const struct {
        tiny_spec spec;
        const char *phrase;
    } cases[] = {
        {{.omit_key = "tokenizer.ggml.bos_token_id"}, "using BOS 1 and EOS 2"},
        {{.omit_key = "tokenizer.ggml.pre"}, "tokenizer.ggml.pre is missing"},
        {{.extra_tensor = "rope_freqs.weight"}, "rope_freqs.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tiny_spec spec = cases[i].spec;
        size_t size;
        uint8_t *bytes = build_tiny(&spec, &size);
        pp_gguf_llama m;
        char err[512];
        const int opened = pp_gguf_llama_open(bytes, size, &m, err, sizeof err) == 0;
        CHECKF(opened, "case %zu: %s", i, err);
        if (opened) {
            CHECKF(strstr(m.warnings, cases[i].phrase) != NULL,
                   "case %zu: warnings \"%s\" lack \"%s\"", i, m.warnings,
                   cases[i].phrase);
            pp_gguf_llama_free(&m);
        }
        free(bytes);
    }

    /* An unknown pre-tokenizer name falls back to GPT-2's, with a warning. */
    tiny_spec spec = {.omit_key = "tokenizer.ggml.pre",
                      .extra_string_key = "tokenizer.ggml.pre",
                      .extra_string_value = "tekken"};
    size_t size;
    uint8_t *bytes = build_tiny(&spec, &size);
    pp_gguf_llama m;
    char err[512];
    if (pp_gguf_llama_open(bytes, size, &m, err, sizeof err) == 0) {
        CHECK(strstr(m.warnings, "pre-tokenizer 'tekken' is not implemented") != NULL);
        CHECK(pp_get_u32(m.tokenizer) == PP_BPE_PRE_GPT2);
        pp_gguf_llama_free(&m);
    } else {
        CHECKF(0, "%s", err);
    }
    free(bytes);
}

int main(void) {
    RUN(f32_gguf_logits_equal_llama2c);
    RUN(q8_0_gguf_logits_close);
    RUN(llama_tokenizer_section_matches_tok512);
    RUN(gguf_tokenizer_same_ids_on_stories);
    RUN(gpt2_bpe_known_ids);
    RUN(gpt2_bpe_rejects_bad_merge);
    RUN(pre_tokenizer_splits);
    RUN(f16_and_bf16_convert_exactly);
    RUN(q4_k_dequantizes_packed_scales);
    RUN(q6_k_dequantizes_split_bits);
    RUN(tiny_gguf_weights_exact);
    RUN(tiny_gguf_model_runs_with_bpe);
    RUN(rejects_bad_metadata);
    RUN(rejects_bad_header_and_counts);
    RUN(accepts_with_warnings);
    RUN(rejects_every_truncation);
    RUN(bpe_section_rejects_corruption);
    RUN(fuzz_entry_accepts_valid_files);
    return check_summary("test_gguf");
}
