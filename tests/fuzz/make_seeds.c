/*
 * make_seeds.c - writes the seed corpora of the fuzz targets from synthetic
 * weights, so every seed is a few KiB and the fuzzers start from valid
 * inputs of every kind they parse.
 *
 * Usage: make_seeds CORPUS_DIR
 * Writes CORPUS_DIR/fuzz_model/, CORPUS_DIR/fuzz_llama2c/ and
 * CORPUS_DIR/fuzz_tokenizer/, which must exist. The input layouts are the
 * ones described at the top of each fuzz_*.c file.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "format.h"

/* ---- Synthetic weights ---------------------------------------------------- */

/* A deterministic value in [-0.5, 0.5) for every weight position. */
static float synthetic_weight(uint32_t tensor, uint32_t layer, size_t row,
                              size_t col) {
    uint64_t x = (uint64_t)tensor * 0x9E3779B97F4A7C15u ^
                 (uint64_t)layer * 0xC2B2AE3D27D4EB4Fu ^
                 (uint64_t)row * 0x165667B19E3779F9u ^ (uint64_t)col;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 29;
    return (float)(x >> 40) / (float)(1u << 24) - 0.5f;
}

static void synthetic_block(void *user, int tensor, int layer, size_t row0,
                            size_t nrows, size_t col0, size_t ncols,
                            float *out) {
    (void)user;
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            out[r * ncols + c] = synthetic_weight(
                (uint32_t)tensor, (uint32_t)layer, row0 + r, col0 + c);
}

/* A synthetic model: the weight provider and the norms it points to. */
typedef struct synthetic_model {
    pp_weight_provider provider;
    float norms[4096];
} synthetic_model;

static int make_provider(synthetic_model *m, int32_t dim, int32_t hidden,
                         int32_t layers, int32_t heads, int32_t kv_heads,
                         int32_t vocab, int shared_classifier) {
    const size_t norm_count = (size_t)(2 * layers + 1) * (size_t)dim;
    if (norm_count > sizeof m->norms / sizeof m->norms[0])
        return -1;
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < norm_count; i++)
        m->norms[i] = 1.0f + 0.01f * (float)(i % 7);

    pp_weight_provider *p = &m->provider;
    p->dim = dim;
    p->hidden_dim = hidden;
    p->n_layers = layers;
    p->n_heads = heads;
    p->n_kv_heads = kv_heads;
    p->vocab_size = vocab;
    p->max_seq_len = 32;
    p->shared_classifier = shared_classifier;
    p->synthetic = 1;
    p->rope_theta = 10000.0f;
    p->norm_eps = 1e-5f;
    p->attn_norm = m->norms;
    p->mlp_norm = m->norms + (size_t)layers * (size_t)dim;
    p->final_norm = m->norms + 2 * (size_t)layers * (size_t)dim;
    p->block = synthetic_block;
    return 0;
}

/* ---- Byte buffers ---------------------------------------------------------- */

typedef struct buffer {
    uint8_t data[1 << 16];
    size_t size;
    int overflow;
} buffer;

static void append(buffer *b, const void *data, size_t n) {
    if (n > sizeof b->data - b->size) {
        b->overflow = 1;
        return;
    }
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

static void append_u8(buffer *b, uint8_t v) { append(b, &v, 1); }

static void append_u16(buffer *b, uint16_t v) {
    const uint8_t bytes[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    append(b, bytes, 2);
}

static void append_u32(buffer *b, uint32_t v) {
    uint8_t bytes[4];
    pp_put_u32(bytes, v);
    append(b, bytes, 4);
}

static void append_f32(buffer *b, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    append_u32(b, bits);
}

static int write_file(const char *dir, const char *name, const buffer *b) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (b->overflow) {
        fprintf(stderr, "make_seeds: %s is larger than %zu bytes\n", path,
                sizeof b->data);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, b->size, f) != b->size) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        return -1;
    }
    printf("make_seeds: wrote %s (%zu bytes)\n", path, b->size);
    return 0;
}

/* ---- Tokenizer sections ---------------------------------------------------- */

/* Text of the tokens after the three special tokens and the byte tokens. */
static const char *const merge_tokens[] = {
    " ", "a", "c", "d", "e", "h", "i", "n", "o", "s", "t", "\xC3\xA9",
    " t", "th", "he", " the", "in", " a", "an", " c", "at", " cat", "on",
    "nd", " s", "is", " is", "\xC3\xA9t", "t\xC3\xA9",
};

/* Appends one llama2.c tokenizer entry: score, length, bytes. */
static void append_token(buffer *b, float score, const char *text) {
    append_f32(b, score);
    append_u32(b, (uint32_t)strlen(text));
    append(b, text, strlen(text));
}

/* A sentencepiece-like vocabulary: <unk>, <s>, </s>, then with `byte_tokens`
 * the 256 tokens <0x00>..<0xFF>, then merge_tokens. Returns the token count. */
static int32_t append_tokenizer(buffer *b, int byte_tokens) {
    const size_t merges = sizeof merge_tokens / sizeof merge_tokens[0];
    int32_t count = 0;

    append_u32(b, 6);
    append_token(b, 0.0f, "<unk>");
    append_token(b, 0.0f, "\n<s>\n");
    append_token(b, 0.0f, "\n</s>\n");
    count += 3;
    if (byte_tokens) {
        for (int i = 0; i < 256; i++) {
            char text[8];
            snprintf(text, sizeof text, "<0x%02X>", i);
            append_token(b, 0.0f, text);
        }
        count += 256;
    }
    for (size_t i = 0; i < merges; i++)
        append_token(b, -(float)i, merge_tokens[i]);
    return count + (int32_t)merges;
}

/* Pairs merged by the byte-level BPE seed, in priority order. */
static const char *const bpe_merges[][2] = {
    {"t", "h"}, {"h", "e"}, {"th", "e"}, {" ", "t"}, {" t", "he"},
    {"i", "n"}, {"in", "g"}, {"a", "t"}, {" ", "c"}, {" c", "at"},
    {"\xC3", "\xA9"}, {"1", "2"}, {"'", "s"},
};

#define BPE_MAX_TOKENS 300

/* Token texts of the BPE seed vocabulary, built by append_bpe_tokenizer. */
typedef struct bpe_vocab {
    char text[BPE_MAX_TOKENS][16];
    int32_t count;
} bpe_vocab;

static int32_t bpe_find(const bpe_vocab *v, const char *text) {
    for (int32_t i = 0; i < v->count; i++)
        if (strcmp(v->text[i], text) == 0)
            return i;
    return -1;
}

static void append_bpe_token(buffer *b, bpe_vocab *v, uint8_t kind,
                             const char *text, size_t length) {
    append_u8(b, kind);
    append_u32(b, (uint32_t)length);
    append(b, text, length);
    memcpy(v->text[v->count], text, length);
    v->text[v->count][length] = '\0';
    v->count++;
}

/*
 * A byte-level BPE section (format.h): three special tokens, the 256
 * single-byte tokens (id byte + 3), then one token per merge in
 * bpe_merges. Returns the token count.
 */
static int32_t append_bpe_tokenizer(buffer *b, uint32_t pre_tokenizer) {
    static bpe_vocab v;
    const size_t merges = sizeof bpe_merges / sizeof bpe_merges[0];
    v.count = 0;

    append_u32(b, pre_tokenizer);
    append_u32(b, (uint32_t)merges);
    append_bpe_token(b, &v, 1, "<|unk|>", 7);
    append_bpe_token(b, &v, 1, "<|bos|>", 7);
    append_bpe_token(b, &v, 1, "<|eos|>", 7);
    for (int i = 0; i < 256; i++) {
        const char byte = (char)i;
        append_bpe_token(b, &v, 0, &byte, 1);
    }
    for (size_t i = 0; i < merges; i++) {
        char merged[16];
        snprintf(merged, sizeof merged, "%s%s", bpe_merges[i][0],
                 bpe_merges[i][1]);
        append_bpe_token(b, &v, 0, merged, strlen(merged));
    }
    for (size_t i = 0; i < merges; i++) {
        char merged[16];
        snprintf(merged, sizeof merged, "%s%s", bpe_merges[i][0],
                 bpe_merges[i][1]);
        /* Single bytes are looked up by id, because the text of byte 0 is
         * the empty C string. */
        const int32_t left = strlen(bpe_merges[i][0]) == 1
                                 ? 3 + (uint8_t)bpe_merges[i][0][0]
                                 : bpe_find(&v, bpe_merges[i][0]);
        const int32_t right = strlen(bpe_merges[i][1]) == 1
                                  ? 3 + (uint8_t)bpe_merges[i][1][0]
                                  : bpe_find(&v, bpe_merges[i][1]);
        append_u32(b, (uint32_t)left);
        append_u32(b, (uint32_t)right);
        append_u32(b, (uint32_t)bpe_find(&v, merged));
    }
    return v.count;
}

/* ---- Seeds of fuzz_model ---------------------------------------------------- */

/* Tokenizer of a model seed: llama2.c with or without byte tokens, or
 * byte-level BPE. */
enum seed_tokenizer { SEED_LLAMA2C, SEED_LLAMA2C_BYTES, SEED_BPE };

/* Converts a synthetic model and writes it after the control byte. */
static int write_model_seed(const char *dir, const char *name, uint8_t control,
                            synthetic_model *m, enum seed_tokenizer kind,
                            int tile, int group) {
    static buffer tokenizer;
    static buffer seed;
    tokenizer.size = 0;
    const int32_t vocab =
        kind == SEED_BPE ? append_bpe_tokenizer(&tokenizer, PP_BPE_PRE_LLAMA3)
                         : append_tokenizer(&tokenizer, kind == SEED_LLAMA2C_BYTES);
    synthetic_model *model = m;
    model->provider.vocab_size = vocab;
    model->provider.tokenizer_bpe = kind == SEED_BPE;

    char path[] = "/tmp/pprt-seed-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "make_seeds: cannot create a file in /tmp\n");
        return -1;
    }
    close(fd);

    char err[256];
    const pp_write_options options = {.tile = tile, .group = group};
    if (pp_write_model(path, &model->provider, tokenizer.data, tokenizer.size,
                       &options, err, sizeof err) != 0) {
        fprintf(stderr, "make_seeds: %s\n", err);
        remove(path);
        return -1;
    }

    FILE *f = fopen(path, "rb");
    seed.size = 0;
    seed.overflow = 0;
    append_u8(&seed, control);
    const size_t n = f ? fread(seed.data + 1, 1, sizeof seed.data - 1, f) : 0;
    const int more = f ? fgetc(f) != EOF : 1;
    if (f)
        fclose(f);
    remove(path);
    if (n == 0 || more) {
        fprintf(stderr, "make_seeds: cannot read back %s, or it is over "
                        "64 KiB\n", name);
        return -1;
    }
    seed.size += n;
    return write_file(dir, name, &seed);
}

static int write_model_seeds(const char *dir) {
    synthetic_model m;
    int failed = 0;

    /* Control byte bits (see fuzz_model.c): 0x01 repair CRCs, 0x02 verify
     * weights, 0x04 read source, 0x08 Probe Pruning forward, 0x10 no tile
     * cache budget, 0x20 failing reads. */
    make_provider(&m, 16, 24, 2, 2, 1, 0, 1);
    failed |= write_model_seed(dir, "tiny_shared", 0x01, &m,
                               SEED_LLAMA2C_BYTES, 4, 32);
    failed |= write_model_seed(dir, "tiny_shared_verify", 0x03, &m,
                               SEED_LLAMA2C_BYTES, 4, 32);
    failed |= write_model_seed(dir, "tiny_shared_no_repair", 0x00, &m,
                               SEED_LLAMA2C_BYTES, 4, 8);
    failed |= write_model_seed(dir, "tiny_shared_read_source", 0x05, &m,
                               SEED_LLAMA2C_BYTES, 4, 32);
    failed |= write_model_seed(dir, "tiny_shared_one_slot_cache", 0x1D, &m,
                               SEED_LLAMA2C_BYTES, 4, 32);
    failed |= write_model_seed(dir, "tiny_shared_failing_reads", 0x25, &m,
                               SEED_LLAMA2C_BYTES, 4, 32);
    failed |= write_model_seed(dir, "tiny_bpe", 0x09, &m, SEED_BPE, 4, 32);

    /* An untied classifier, a last MLP tile narrower than the rest and no
     * byte tokens. */
    make_provider(&m, 16, 24, 2, 4, 2, 0, 0);
    failed |= write_model_seed(dir, "tiny_untied_pruned", 0x09, &m,
                               SEED_LLAMA2C, 5, 4);
    failed |= write_model_seed(dir, "tiny_untied_read_source", 0x0D, &m,
                               SEED_LLAMA2C, 5, 4);
    return failed;
}

/* ---- Seeds of fuzz_llama2c ------------------------------------------------- */

/* Appends n synthetic float32 values. */
static void append_weights(buffer *b, uint32_t tensor, size_t n) {
    for (size_t i = 0; i < n; i++)
        append_f32(b, synthetic_weight(tensor, 0, i, 0));
}

/* A legacy float32 checkpoint: 7 int32, then the tensors in run.c order. */
static int write_legacy_seed(const char *dir, const char *name, int shared) {
    static buffer b;
    const int32_t dim = 8, hidden = 12, layers = 1, heads = 2, kv_heads = 1;
    const int32_t vocab = 8, seq_len = 4;
    const size_t head_dim = (size_t)(dim / heads);
    const size_t kv_dim = head_dim * (size_t)kv_heads;
    const size_t d = (size_t)dim, h = (size_t)hidden, l = (size_t)layers;
    b.size = 0;

    const int32_t config[7] = {dim, hidden, layers, heads, kv_heads,
                               shared ? vocab : -vocab, seq_len};
    for (int i = 0; i < 7; i++)
        append_u32(&b, (uint32_t)config[i]);
    append_weights(&b, 0, (size_t)vocab * d);      /* embedding */
    for (size_t i = 0; i < l * d; i++)             /* attention norms */
        append_f32(&b, 1.0f);
    append_weights(&b, 1, l * d * d);              /* wq */
    append_weights(&b, 2, l * kv_dim * d);         /* wk */
    append_weights(&b, 3, l * kv_dim * d);         /* wv */
    append_weights(&b, 4, l * d * d);              /* wo */
    for (size_t i = 0; i < l * d; i++)             /* MLP norms */
        append_f32(&b, 1.0f);
    append_weights(&b, 5, l * h * d);              /* w1 */
    append_weights(&b, 6, l * d * h);              /* w2 */
    append_weights(&b, 7, l * h * d);              /* w3 */
    for (size_t i = 0; i < d; i++)                 /* final norm */
        append_f32(&b, 1.0f);
    append_weights(&b, 8, (size_t)seq_len * head_dim); /* RoPE tables */
    if (!shared)
        append_weights(&b, 9, (size_t)vocab * d);  /* classifier */
    return write_file(dir, name, &b);
}

/* Appends a tensor in the version-2 layout: int8 values, then one float32
 * scale per group. */
static void append_q80(buffer *b, uint32_t tensor, size_t n, size_t group) {
    for (size_t i = 0; i < n; i++)
        append_u8(b, (uint8_t)(int8_t)(synthetic_weight(tensor, 0, i, 1) * 200));
    for (size_t i = 0; i < n / group; i++)
        append_f32(b, 0.01f);
}

/* A version-2 int8 export: a 256-byte header, float32 norms, then the q8
 * tensors, each layer's part quantized on its own. */
static int write_version2_seed(const char *dir, const char *name, int shared) {
    static buffer b;
    const int32_t config[7] = {8, 12, 2, 2, 1, 8, 4};
    const size_t d = 8, h = 12, l = 2, kv_dim = 4, vocab = 8, group = 4;
    b.size = 0;

    append_u32(&b, 0x616b3432u);
    append_u32(&b, 2);
    for (int i = 0; i < 7; i++)
        append_u32(&b, (uint32_t)config[i]);
    append_u8(&b, shared ? 1 : 0);
    append_u32(&b, (uint32_t)group);
    while (b.size < 256)
        append_u8(&b, 0);

    for (size_t i = 0; i < (2 * l + 1) * d; i++)
        append_f32(&b, 1.0f);
    append_q80(&b, 0, vocab * d, group);
    const size_t per_layer[7] = {d * d, kv_dim * d, kv_dim * d, d * d,
                                 h * d, d * h, h * d};
    for (uint32_t t = 0; t < 7; t++)
        for (size_t layer = 0; layer < l; layer++)
            append_q80(&b, t + 1, per_layer[t], group);
    if (!shared)
        append_q80(&b, 8, vocab * d, group);
    return write_file(dir, name, &b);
}

static int write_llama2c_seeds(const char *dir) {
    int failed = 0;
    failed |= write_legacy_seed(dir, "legacy_shared", 1);
    failed |= write_legacy_seed(dir, "legacy_untied", 0);
    failed |= write_version2_seed(dir, "version2_shared", 1);
    failed |= write_version2_seed(dir, "version2_untied", 0);
    return failed;
}

/* ---- Seeds of fuzz_tokenizer ----------------------------------------------- */

/* Input: uint16 section size, uint16 kind bit and vocab size (0: count the
 * entries), the section, then the text (see fuzz_tokenizer.c). */
#define SEED_BPE_FLAG 0x8000u

/* With bpe_pre_tokenizer >= 0 the section is byte-level BPE with that
 * pre-tokenizer, and the vocab size bits are 0 so that the target counts
 * the entries. */
static int write_tokenizer_seed(const char *dir, const char *name,
                                int byte_tokens, int bpe_pre_tokenizer,
                                uint16_t vocab_field, const char *text) {
    static buffer section;
    static buffer seed;
    section.size = 0;
    seed.size = 0;
    if (bpe_pre_tokenizer >= 0) {
        append_bpe_tokenizer(&section, (uint32_t)bpe_pre_tokenizer);
        vocab_field = SEED_BPE_FLAG;
    } else {
        append_tokenizer(&section, byte_tokens);
    }
    append_u16(&seed, (uint16_t)section.size);
    append_u16(&seed, vocab_field);
    append(&seed, section.data, section.size);
    append(&seed, text, strlen(text));
    return write_file(dir, name, &seed);
}

static int write_tokenizer_seeds(const char *dir) {
    const int32_t small_vocab = 3 + (int32_t)(sizeof merge_tokens /
                                              sizeof merge_tokens[0]);
    int failed = 0;
    failed |= write_tokenizer_seed(dir, "bytes_counted", 1, -1, 0,
                                   "the cat is on the mat");
    failed |= write_tokenizer_seed(dir, "bytes_utf8", 1, -1, 0,
                                   "th\xC3\xA9 caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80");
    failed |= write_tokenizer_seed(dir, "bytes_invalid_utf8", 1, -1, 0,
                                   "a\xFF\xC3 \xED\xA0\x80<0x41>\n");
    failed |= write_tokenizer_seed(dir, "no_bytes_given_vocab", 0, -1,
                                   (uint16_t)small_vocab, "the cat");
    failed |= write_tokenizer_seed(dir, "no_bytes_missing_byte", 0, -1,
                                   (uint16_t)small_vocab, "the dog");

    /* One BPE seed per pre-tokenizer, with text that each splits
     * differently. */
    static const char *const bpe_texts[] = {
        "the cat's 12345 things!!\n\n  in  g\xC3\xA9",
        "I'M here\r\n\tthe\xE2\x80\x83" "cat 1\xD9\xA3 \xF0\x9F\x98\x80x",
        "a\xFF\xC3 \xED\xA0\x80th 'll 's'S",
        "12 12 123456789 x2 \xC2\xB2\xC2\xB3 done",
    };
    for (int pre = 0; pre < 4; pre++) {
        char name[32];
        snprintf(name, sizeof name, "bpe_pre_tokenizer_%d", pre);
        failed |= write_tokenizer_seed(dir, name, 0, pre, 0, bpe_texts[pre]);
    }
    return failed;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    char dir[1024];
    int failed = 0;

    snprintf(dir, sizeof dir, "%s/fuzz_model", argv[1]);
    failed |= write_model_seeds(dir);
    snprintf(dir, sizeof dir, "%s/fuzz_llama2c", argv[1]);
    failed |= write_llama2c_seeds(dir);
    snprintf(dir, sizeof dir, "%s/fuzz_tokenizer", argv[1]);
    failed |= write_tokenizer_seeds(dir);
    return failed ? 1 : 0;
}
