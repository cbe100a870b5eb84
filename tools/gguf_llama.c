/*
 * gguf_llama.c - a `llama` architecture GGUF file as a pp_weight_provider,
 * and the pprt tokenizer sections built from GGUF tokenizer metadata.
 *
 * Weights: GGUF stores a projection as ne = [in, out], so its rows are the
 * output channels, as pprt's [out][in] layout wants. The q and k rows need
 * no reordering: llama.cpp's converters store them in the original Meta
 * order, where RoPE rotates adjacent pairs (x[2i], x[2i+1]). Its Hugging
 * Face converter undoes the Hugging Face permutation, and its llama2.c
 * converter copies llama2.c's rows unchanged, which the stories260K test
 * checks by comparing logits with the llama2.c-converted model.
 *
 * Quantized tensors are dequantized one block range at a time, so the
 * writer's column slices (one attention head, one MLP tile) cost about their
 * own size, not a whole row each.
 *
 * Tokenizers: `llama` (SentencePiece) vocabularies become llama2.c
 * tokenizer.bin bytes, spelled as llama2.c's export spells them: U+2581
 * ("▁") becomes a space, and BOS and EOS read "\n<s>\n" and "\n</s>\n".
 * `gpt2` (byte-level BPE) vocabularies become the BPE section of format.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "gguf.h"

/* Limits that match the pprt loader's (runtime/model.c). */
#define MAX_DIM 65536u
#define MAX_HIDDEN 262144u
#define MAX_LAYERS 1024u
#define MAX_VOCAB (1u << 22)
#define MAX_SEQ_LEN (1u << 20)

/* GGUF token types (llama_token_type in llama.cpp). */
enum {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER_DEFINED = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_error(char *err, size_t err_size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(err, err_size, format, args);
    va_end(args);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void add_warning(pp_gguf_llama *m, const char *format, ...) {
    const size_t used = strlen(m->warnings);
    if (used + 2 >= sizeof m->warnings)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(m->warnings + used, sizeof m->warnings - used - 1, format, args);
    va_end(args);
    strcat(m->warnings, "\n");
}

/* ---- Weights --------------------------------------------------------------- */

static const pp_gguf_tensor *provider_tensor(const pp_gguf_llama *m,
                                             int tensor, int layer) {
    const pp_gguf_tensor **blk =
        m->layer + (size_t)layer * PP_GGUF_LAYER_TENSORS;
    switch (tensor) {
    case PP_T_EMBEDDING: return m->embedding;
    case PP_T_CLASSIFIER: return m->classifier ? m->classifier : m->embedding;
    case PP_T_WQ: return blk[PP_GGUF_ATTN_Q];
    case PP_T_WK: return blk[PP_GGUF_ATTN_K];
    case PP_T_WV: return blk[PP_GGUF_ATTN_V];
    case PP_T_WO: return blk[PP_GGUF_ATTN_OUTPUT];
    case PP_T_GATE: return blk[PP_GGUF_FFN_GATE];
    case PP_T_DOWN: return blk[PP_GGUF_FFN_DOWN];
    case PP_T_UP: return blk[PP_GGUF_FFN_UP];
    default: return NULL;
    }
}

/* Dequantizes columns [col0, col0 + ncols) of `rows` rows from row0. */
static void copy_columns(const pp_gguf *file, const pp_gguf_tensor *t,
                         size_t row0, size_t nrows, size_t col0, size_t ncols,
                         float *scratch, float *out) {
    if (ncols == 0)
        return;
    uint32_t block_elements, block_bytes;
    pp_ggml_type_block(t->type, &block_elements, &block_bytes);
    const size_t first_block = col0 / block_elements;
    const size_t last_block = (col0 + ncols - 1) / block_elements;
    const size_t skip = col0 - first_block * block_elements;
    const uint64_t n = (uint64_t)(last_block - first_block + 1) * block_elements;

    for (size_t r = 0; r < nrows; r++) {
        const uint8_t *row =
            file->data + t->offset + (row0 + r) * t->row_bytes;
        pp_ggml_dequantize_row(t->type, row + first_block * block_bytes, n,
                               scratch);
        memcpy(out + r * ncols, scratch + skip, ncols * sizeof *out);
    }
}

static void gguf_block(void *user, int tensor, int layer, size_t row0,
                       size_t nrows, size_t col0, size_t ncols, float *out) {
    pp_gguf_llama *m = user;
    const pp_gguf_tensor *t = provider_tensor(m, tensor, layer);
    copy_columns(&m->file, t, row0, nrows, col0, ncols, m->row, out);
}

/* ---- Model hyperparameters ------------------------------------------------- */

typedef struct llama_config {
    uint64_t dim, hidden, layers, heads, kv_heads, context, vocab;
    double rope_base, norm_eps;
} llama_config;

/* Reads a required unsigned key. Returns -1 with a message if it is
 * missing, mistyped or outside [1, max]. */
static int require_uint(const pp_gguf *f, const char *key, uint64_t max,
                        uint64_t *value, char *err, size_t err_size) {
    const int found = pp_gguf_get_uint(f, key, max, value, err, err_size);
    if (found < 0)
        return -1;
    if (found == 0) {
        set_error(err, err_size, "missing metadata key '%s'", key);
        return -1;
    }
    if (*value == 0) {
        set_error(err, err_size, "metadata key '%s' is 0", key);
        return -1;
    }
    return 0;
}

static int check_architecture(const pp_gguf *f, char *err, size_t err_size) {
    pp_gguf_string arch;
    const int found =
        pp_gguf_get_string(f, "general.architecture", &arch, err, err_size);
    if (found < 0)
        return -1;
    if (found == 0) {
        set_error(err, err_size, "missing metadata key 'general.architecture'");
        return -1;
    }
    if (!pp_gguf_string_equals(arch, "llama")) {
        set_error(err, err_size,
                  "unsupported architecture '%.*s': pprt converts only "
                  "'llama' GGUF files",
                  (int)(arch.length < 64 ? arch.length : 64), arch.data);
        return -1;
    }
    return 0;
}

static int read_config(pp_gguf_llama *m, llama_config *c, char *err,
                       size_t err_size) {
    const pp_gguf *f = &m->file;
    if (require_uint(f, "llama.embedding_length", MAX_DIM, &c->dim, err,
                     err_size) != 0 ||
        require_uint(f, "llama.feed_forward_length", MAX_HIDDEN, &c->hidden,
                     err, err_size) != 0 ||
        require_uint(f, "llama.block_count", MAX_LAYERS, &c->layers, err,
                     err_size) != 0 ||
        require_uint(f, "llama.attention.head_count", c->dim, &c->heads, err,
                     err_size) != 0 ||
        require_uint(f, "llama.context_length", MAX_SEQ_LEN, &c->context, err,
                     err_size) != 0)
        return -1;

    c->kv_heads = c->heads;
    if (pp_gguf_get_uint(f, "llama.attention.head_count_kv", c->heads,
                         &c->kv_heads, err, err_size) < 0)
        return -1;
    if (c->kv_heads == 0 || c->heads % c->kv_heads != 0) {
        set_error(err, err_size,
                  "llama.attention.head_count_kv %llu does not divide "
                  "llama.attention.head_count %llu",
                  (unsigned long long)c->kv_heads,
                  (unsigned long long)c->heads);
        return -1;
    }
    if (c->dim % c->heads != 0 || (c->dim / c->heads) % 2 != 0) {
        set_error(err, err_size,
                  "llama.embedding_length %llu is not an even multiple of "
                  "llama.attention.head_count %llu",
                  (unsigned long long)c->dim, (unsigned long long)c->heads);
        return -1;
    }

    c->rope_base = 10000.0;
    if (pp_gguf_get_float(f, "llama.rope.freq_base", &c->rope_base, err,
                          err_size) < 0)
        return -1;
    if (!(c->rope_base > 0.0 && c->rope_base < 3.0e38)) {
        set_error(err, err_size, "llama.rope.freq_base %g is out of range",
                  c->rope_base);
        return -1;
    }
    const int eps_found =
        pp_gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon",
                          &c->norm_eps, err, err_size);
    if (eps_found < 0)
        return -1;
    if (eps_found == 0) {
        set_error(err, err_size,
                  "missing metadata key "
                  "'llama.attention.layer_norm_rms_epsilon'");
        return -1;
    }
    if (!(c->norm_eps > 0.0 && c->norm_eps < 1.0)) {
        set_error(err, err_size,
                  "llama.attention.layer_norm_rms_epsilon %g is not in (0, 1)",
                  c->norm_eps);
        return -1;
    }
    return 0;
}

/* Rejects llama variants whose forward pass pprt does not compute. */
static int check_unsupported_features(pp_gguf_llama *m,
                                      const llama_config *c, char *err,
                                      size_t err_size) {
    const pp_gguf *f = &m->file;
    uint64_t value = 0;
    if (pp_gguf_get_uint(f, "llama.expert_count", UINT64_MAX, &value, err,
                         err_size) < 0)
        return -1;
    if (value > 0) {
        set_error(err, err_size,
                  "llama.expert_count is %llu: mixture-of-experts models are "
                  "not supported",
                  (unsigned long long)value);
        return -1;
    }

    value = c->dim / c->heads;
    if (pp_gguf_get_uint(f, "llama.rope.dimension_count", UINT64_MAX, &value,
                         err, err_size) < 0)
        return -1;
    if (value != c->dim / c->heads) {
        set_error(err, err_size,
                  "llama.rope.dimension_count is %llu but the head size is "
                  "%llu: partial rotary embeddings are not supported",
                  (unsigned long long)value,
                  (unsigned long long)(c->dim / c->heads));
        return -1;
    }

    pp_gguf_string scaling;
    const int found = pp_gguf_get_string(f, "llama.rope.scaling.type", &scaling,
                                         err, err_size);
    if (found < 0)
        return -1;
    if (found > 0 && !pp_gguf_string_equals(scaling, "none")) {
        set_error(err, err_size,
                  "llama.rope.scaling.type is '%.*s': RoPE scaling is not "
                  "supported",
                  (int)(scaling.length < 32 ? scaling.length : 32),
                  scaling.data);
        return -1;
    }
    return 0;
}

/* ---- Tensors --------------------------------------------------------------- */

/* Finds `name` with ne = [cols, rows] (rows 1 for a vector) and a supported
 * type, and marks it used. */
static const pp_gguf_tensor *require_tensor(const pp_gguf *f, const char *name,
                                            uint64_t cols, uint64_t rows,
                                            uint8_t *used, char *err,
                                            size_t err_size) {
    const pp_gguf_tensor *t = pp_gguf_find_tensor(f, name);
    if (!t) {
        set_error(err, err_size, "missing tensor '%s'", name);
        return NULL;
    }
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 ||
        t->ne[3] != 1) {
        set_error(err, err_size,
                  "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected "
                  "[%llu, %llu] from the metadata",
                  name, (unsigned long long)t->ne[0],
                  (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                  (unsigned long long)t->ne[3], (unsigned long long)cols,
                  (unsigned long long)rows);
        return NULL;
    }
    if (!pp_ggml_type_supported(t->type)) {
        const char *type_name = pp_ggml_type_name(t->type);
        set_error(err, err_size,
                  "tensor '%s' has type %s, which pprt cannot convert "
                  "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
                  name, type_name ? type_name : "unknown");
        return NULL;
    }
    used[t - f->tensors] = 1;
    return t;
}

static int find_tensors(pp_gguf_llama *m, const llama_config *c, char *err,
                        size_t err_size) {
    static const char *const suffixes[PP_GGUF_LAYER_TENSORS] = {
        "attn_q",   "attn_k",   "attn_v",    "attn_output", "ffn_gate",
        "ffn_down", "ffn_up",   "attn_norm", "ffn_norm"};
    const pp_gguf *f = &m->file;
    const uint64_t kv_dim = c->dim / c->heads * c->kv_heads;
    const uint64_t shapes[PP_GGUF_LAYER_TENSORS][2] = {
        {c->dim, c->dim},    {c->dim, kv_dim}, {c->dim, kv_dim},
        {c->dim, c->dim},    {c->dim, c->hidden}, {c->hidden, c->dim},
        {c->dim, c->hidden}, {c->dim, 1},         {c->dim, 1}};
    uint8_t *used = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, 1);
    int rc = -1;

    m->layer = calloc((size_t)c->layers * PP_GGUF_LAYER_TENSORS,
                      sizeof *m->layer);
    if (!used || !m->layer) {
        set_error(err, err_size, "out of memory");
        goto done;
    }

    m->embedding = require_tensor(f, "token_embd.weight", c->dim, c->vocab,
                                  used, err, err_size);
    m->output_norm = m->embedding ? require_tensor(f, "output_norm.weight",
                                                   c->dim, 1, used, err,
                                                   err_size)
                                  : NULL;
    if (!m->embedding || !m->output_norm)
        goto done;
    if (pp_gguf_find_tensor(f, "output.weight")) {
        m->classifier = require_tensor(f, "output.weight", c->dim, c->vocab,
                                       used, err, err_size);
        if (!m->classifier)
            goto done;
    }

    for (uint64_t l = 0; l < c->layers; l++) {
        for (int i = 0; i < PP_GGUF_LAYER_TENSORS; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%llu.%s.weight",
                     (unsigned long long)l, suffixes[i]);
            const pp_gguf_tensor *t = require_tensor(
                f, name, shapes[i][0], shapes[i][1], used, err, err_size);
            if (!t)
                goto done;
            m->layer[l * PP_GGUF_LAYER_TENSORS + (uint64_t)i] = t;
        }
    }

    /* Anything else would change the forward pass (biases, experts), except
     * Llama 3.1's RoPE frequency factors, which only pprt's rope lacks. */
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const pp_gguf_tensor *t = &f->tensors[i];
        if (used[i])
            continue;
        if (pp_gguf_string_equals(t->name, "rope_freqs.weight")) {
            add_warning(m,
                        "rope_freqs.weight (RoPE frequency factors, as in "
                        "Llama 3.1) is ignored because pprt's RoPE has no "
                        "per-frequency scaling; logits will differ from "
                        "llama.cpp's, most at long positions");
            continue;
        }
        set_error(err, err_size,
                  "unexpected tensor '%.*s': pprt's llama has no biases, "
                  "experts or other extra weights",
                  (int)(t->name.length < 64 ? t->name.length : 64),
                  t->name.data);
        goto done;
    }
    rc = 0;

done:
    free(used);
    return rc;
}

/* A classifier stored as an exact copy of the embedding (llama.cpp's
 * llama2.c converter writes one) is the same matrix: tie it. */
static void tie_identical_classifier(pp_gguf_llama *m) {
    const pp_gguf_tensor *e = m->embedding, *o = m->classifier;
    if (o && o->type == e->type && o->bytes == e->bytes &&
        memcmp(m->file.data + o->offset, m->file.data + e->offset,
               (size_t)e->bytes) == 0)
        m->classifier = NULL;
}

static int is_low_bit(const pp_gguf_tensor *t) {
    return t && (t->type == PP_GGML_Q4_0 || t->type == PP_GGML_Q4_K ||
                 t->type == PP_GGML_Q6_K);
}

static void warn_about_quantization(pp_gguf_llama *m, uint64_t layers) {
    size_t low_bit = (size_t)is_low_bit(m->embedding) +
                     (size_t)is_low_bit(m->classifier);
    for (size_t i = 0; i < (size_t)layers * PP_GGUF_LAYER_TENSORS; i++)
        low_bit += (size_t)is_low_bit(m->layer[i]);
    if (low_bit > 0)
        add_warning(m,
                    "Q4_0, Q4_K and Q6_K tensors (%zu) are dequantized and "
                    "requantized to int8, which adds quantization error to "
                    "their own. Convert from an F16, BF16 or Q8_0 file when "
                    "there is one",
                    low_bit);
}

static int read_norms(pp_gguf_llama *m, const llama_config *c, char *err,
                      size_t err_size) {
    const size_t dim = (size_t)c->dim, layers = (size_t)c->layers;
    m->norms = malloc((2 * layers + 1) * dim * sizeof *m->norms);
    if (!m->norms) {
        set_error(err, err_size, "out of memory");
        return -1;
    }
    for (size_t l = 0; l < layers; l++) {
        const pp_gguf_tensor **blk = m->layer + l * PP_GGUF_LAYER_TENSORS;
        copy_columns(&m->file, blk[PP_GGUF_ATTN_NORM], 0, 1, 0, dim, m->row,
                     m->norms + l * dim);
        copy_columns(&m->file, blk[PP_GGUF_FFN_NORM], 0, 1, 0, dim, m->row,
                     m->norms + (layers + l) * dim);
    }
    copy_columns(&m->file, m->output_norm, 0, 1, 0, dim, m->row,
                 m->norms + 2 * layers * dim);
    return 0;
}

/* ---- Tokenizer metadata ---------------------------------------------------- */

/* A metadata array of `count` elements of `element_type`, or NULL with a
 * message. Absent optional keys return NULL with err[0] == 0. */
static const pp_gguf_kv *get_array(const pp_gguf *f, const char *key,
                                   uint32_t element_type, uint64_t count,
                                   int required, char *err, size_t err_size) {
    err[0] = '\0';
    const pp_gguf_kv *kv = pp_gguf_find_kv(f, key);
    if (!kv) {
        if (required)
            set_error(err, err_size, "missing metadata key '%s'", key);
        return NULL;
    }
    if (kv->type != PP_GGUF_ARRAY || kv->element_type != element_type) {
        static const char *const names[] = {
            "uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
            "bool",  "string", "array",  "uint64", "int64", "float64"};
        const uint32_t shown =
            kv->type == PP_GGUF_ARRAY ? kv->element_type : kv->type;
        set_error(err, err_size,
                  "metadata key '%s' is %s %s, expected an array of %s", key,
                  kv->type == PP_GGUF_ARRAY ? "an array of" : "a",
                  shown < 13 ? names[shown] : "unknown", names[element_type]);
        return NULL;
    }
    if (count != UINT64_MAX && kv->count != count) {
        set_error(err, err_size,
                  "metadata key '%s' has %llu elements, expected %llu (one "
                  "per token)",
                  key, (unsigned long long)kv->count,
                  (unsigned long long)count);
        return NULL;
    }
    return kv;
}

/* Reads tokenizer.ggml.bos_token_id / eos_token_id (defaults 1 and 2). */
static int read_special_ids(pp_gguf_llama *m, uint64_t vocab, char *err,
                            size_t err_size) {
    uint64_t bos = 1, eos = 2;
    const int bos_found = pp_gguf_get_uint(
        &m->file, "tokenizer.ggml.bos_token_id", vocab - 1, &bos, err, err_size);
    if (bos_found < 0)
        return -1;
    const int eos_found = pp_gguf_get_uint(
        &m->file, "tokenizer.ggml.eos_token_id", vocab - 1, &eos, err, err_size);
    if (eos_found < 0)
        return -1;
    if (!bos_found || !eos_found)
        add_warning(m, "tokenizer.ggml.bos_token_id or eos_token_id is "
                       "missing; using BOS 1 and EOS 2 as llama2.c does");
    if (bos >= vocab || eos >= vocab) {
        set_error(err, err_size,
                  "the default BOS id 1 or EOS id 2 is outside the vocabulary "
                  "of %llu tokens; the file needs tokenizer.ggml.bos_token_id "
                  "and tokenizer.ggml.eos_token_id",
                  (unsigned long long)vocab);
        return -1;
    }
    m->provider.special_ids_set = 1;
    m->provider.bos_id = (int32_t)bos;
    m->provider.eos_id = (int32_t)eos;
    return 0;
}

/* Builds llama2.c tokenizer.bin bytes from a SentencePiece vocabulary. */
static int build_llama_tokenizer(pp_gguf_llama *m, const pp_gguf_kv *tokens,
                                 char *err, size_t err_size) {
    const pp_gguf *f = &m->file;
    const uint64_t vocab = tokens->count;
    const pp_gguf_kv *scores =
        get_array(f, "tokenizer.ggml.scores", PP_GGUF_FLOAT32, vocab, 0, err,
                  err_size);
    if (!scores && err[0])
        return -1;
    if (!scores)
        add_warning(m, "tokenizer.ggml.scores is missing, so every merge "
                       "scores 0 and the merge order can differ from "
                       "SentencePiece's");

    int add_space_prefix = 1;
    if (pp_gguf_get_bool(f, "tokenizer.ggml.add_space_prefix",
                         &add_space_prefix, err, err_size) < 0)
        return -1;
    if (!add_space_prefix)
        add_warning(m, "tokenizer.ggml.add_space_prefix is false, but pprt's "
                       "SentencePiece tokenizer always adds a leading space, "
                       "so the first token of a text can differ");

    if (vocab < 259) {
        set_error(err, err_size,
                  "the vocabulary has %llu tokens, fewer than the 259 that "
                  "<unk>, BOS, EOS and the 256 byte tokens need",
                  (unsigned long long)vocab);
        return -1;
    }

    /* Byte fallback in pprt needs <0xNN> at id NN + 3. */
    const uint8_t *cursor = tokens->value;
    for (uint64_t i = 0; i < 259; i++) {
        const pp_gguf_string t = pp_gguf_next_string(&cursor);
        char expected[8];
        if (i < 3)
            continue;
        snprintf(expected, sizeof expected, "<0x%02X>", (unsigned)(i - 3));
        if (!pp_gguf_string_equals(t, expected)) {
            set_error(err, err_size,
                      "token %llu is '%.*s', expected '%s': pprt's "
                      "SentencePiece tokenizer needs the byte tokens <0x00> "
                      "to <0xFF> at ids 3 to 258",
                      (unsigned long long)i,
                      (int)(t.length < 32 ? t.length : 32), t.data, expected);
            return -1;
        }
    }
    /* Worst case: every byte of every token is a 3-byte U+2581 that becomes
     * one space, plus "\n<s>\n" and "\n</s>\n" for BOS and EOS. */
    const size_t capacity = 4 + 8 * (size_t)vocab + (size_t)tokens->value_bytes + 16;
    uint8_t *out = malloc(capacity);
    if (!out) {
        set_error(err, err_size, "out of memory");
        return -1;
    }

    size_t size = 4;
    uint32_t max_length = 0;
    cursor = tokens->value;
    for (uint64_t i = 0; i < vocab; i++) {
        const pp_gguf_string t = pp_gguf_next_string(&cursor);
        uint8_t *entry = out + size;
        uint8_t *text = entry + 8;
        size_t length = 0;

        if (i == (uint64_t)m->provider.bos_id) {
            memcpy(text, "\n<s>\n", 5);
            length = 5;
        } else if (i == (uint64_t)m->provider.eos_id) {
            memcpy(text, "\n</s>\n", 6);
            length = 6;
        } else {
            for (uint64_t j = 0; j < t.length; j++) {
                if (j + 2 < t.length && memcmp(t.data + j, "\xE2\x96\x81", 3) == 0) {
                    text[length++] = ' ';
                    j += 2;
                } else {
                    text[length++] = (uint8_t)t.data[j];
                }
            }
        }
        if (length > INT32_MAX) {
            free(out);
            set_error(err, err_size, "token %llu is too long",
                      (unsigned long long)i);
            return -1;
        }

        const uint32_t score_bits =
            scores ? pp_get_u32(scores->value + 4 * i) : 0u;
        float score;
        memcpy(&score, &score_bits, sizeof score);
        if (!isfinite(score)) {
            free(out);
            set_error(err, err_size,
                      "tokenizer.ggml.scores[%llu] is not a finite number",
                      (unsigned long long)i);
            return -1;
        }
        pp_put_u32(entry, score_bits);
        pp_put_u32(entry + 4, (uint32_t)length);
        if (length > max_length)
            max_length = (uint32_t)length;
        size += 8 + length;
    }
    pp_put_u32(out, max_length);
    m->tokenizer = out;
    m->tokenizer_size = size;
    return 0;
}

/* The GPT-2 byte-to-Unicode map: bytes that are printable in Latin-1 map to
 * the same code point, the 68 others to U+0100 + n in byte order. */
static void gpt2_byte_code_points(uint32_t code_point[256]) {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; b++) {
        const int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
                              (b >= 174 && b <= 255);
        code_point[b] = printable ? b : next++;
    }
}

/* Decodes one UTF-8 code point of any well-formed sequence. Returns its
 * length, or 0 if the bytes are not UTF-8. */
static size_t decode_utf8(const uint8_t *p, uint64_t available, uint32_t *cp) {
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    size_t n;
    if ((p[0] & 0xE0) == 0xC0)
        n = 2;
    else if ((p[0] & 0xF0) == 0xE0)
        n = 3;
    else if ((p[0] & 0xF8) == 0xF0)
        n = 4;
    else
        return 0;
    if (available < n)
        return 0;
    uint32_t value = p[0] & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        value = value << 6 | (p[i] & 0x3Fu);
    }
    *cp = value;
    return n;
}

typedef struct raw_token {
    const uint8_t *bytes;
    size_t length;
    int32_t id;
} raw_token;

static int compare_raw(const void *a, const void *b) {
    const raw_token *x = a, *y = b;
    const size_t n = x->length < y->length ? x->length : y->length;
    const int order = memcmp(x->bytes, y->bytes, n);
    if (order != 0)
        return order;
    if (x->length != y->length)
        return x->length < y->length ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Returns the lowest id among text tokens whose raw bytes are `bytes`. */
static int32_t find_raw(const raw_token *sorted, size_t count,
                        const uint8_t *bytes, size_t length) {
    size_t low = 0, high = count;
    const raw_token key = {bytes, length, -1};
    while (low < high) {
        const size_t middle = low + (high - low) / 2;
        if (compare_raw(&sorted[middle], &key) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    if (low < count && sorted[low].length == length &&
        memcmp(sorted[low].bytes, bytes, length) == 0)
        return sorted[low].id;
    return -1;
}

/* Converts `text` from the byte-to-Unicode form to raw bytes in `out`
 * (at least text.length bytes). Returns the length, or -1. */
static int64_t unmap_gpt2(pp_gguf_string text, const int16_t *byte_of,
                          uint8_t *out) {
    int64_t n = 0;
    for (uint64_t i = 0; i < text.length;) {
        uint32_t cp;
        const size_t length =
            decode_utf8((const uint8_t *)text.data + i, text.length - i, &cp);
        if (length == 0 || cp >= 512 || byte_of[cp] < 0)
            return -1;
        out[n++] = (uint8_t)byte_of[cp];
        i += length;
    }
    return n;
}

int pp_bpe_section_build(const pp_bpe_token *tokens, size_t n_tokens,
                         const pp_gguf_string *merges, size_t n_merges,
                         uint32_t pretokenizer, uint8_t **section,
                         size_t *section_size, char *err, size_t err_size) {
    uint32_t code_point[256];
    int16_t byte_of[512];
    gpt2_byte_code_points(code_point);
    for (int i = 0; i < 512; i++)
        byte_of[i] = -1;
    for (int b = 0; b < 256; b++)
        byte_of[code_point[b]] = (int16_t)b;

    *section = NULL;
    if (n_tokens == 0 || n_tokens > MAX_VOCAB || n_merges > UINT32_MAX) {
        set_error(err, err_size, "invalid vocabulary of %zu tokens and %zu "
                  "merges", n_tokens, n_merges);
        return -1;
    }

    /* Raw bytes never exceed the mapped text. */
    size_t text_total = 0;
    for (size_t i = 0; i < n_tokens; i++)
        text_total += (size_t)tokens[i].text.length;
    const size_t capacity = 8 + 5 * n_tokens + text_total + 12 * n_merges;
    uint8_t *out = malloc(capacity);
    raw_token *raw = malloc(n_tokens * sizeof *raw);
    uint8_t *joined = NULL;
    size_t n_raw = 0;
    int rc = -1;
    if (!out || !raw) {
        set_error(err, err_size, "out of memory");
        goto done;
    }

    pp_put_u32(out, pretokenizer);
    pp_put_u32(out + 4, (uint32_t)n_merges);
    size_t size = 8;
    for (size_t i = 0; i < n_tokens; i++) {
        const pp_gguf_string t = tokens[i].text;
        uint8_t *entry = out + size;
        int64_t length;
        entry[0] = tokens[i].special ? 1 : 0;
        if (tokens[i].special) {
            memcpy(entry + 5, t.data, (size_t)t.length);
            length = (int64_t)t.length;
        } else {
            length = unmap_gpt2(t, byte_of, entry + 5);
            if (length < 0) {
                set_error(err, err_size,
                          "token %zu '%.*s' is not in GPT-2's byte-to-Unicode "
                          "form",
                          i, (int)(t.length < 32 ? t.length : 32), t.data);
                goto done;
            }
            raw[n_raw].bytes = entry + 5;
            raw[n_raw].length = (size_t)length;
            raw[n_raw].id = (int32_t)i;
            n_raw++;
        }
        pp_put_u32(entry + 1, (uint32_t)length);
        size += 5 + (size_t)length;
    }
    qsort(raw, n_raw, sizeof *raw, compare_raw);

    /* Each merge "left right" names two text tokens whose concatenation is
     * a text token. The byte-to-Unicode form has no plain spaces, so the
     * first space separates the halves. */
    size_t longest = 0;
    for (size_t i = 0; i < n_merges; i++)
        if (merges[i].length > longest)
            longest = (size_t)merges[i].length;
    joined = malloc(longest + 1);
    if (!joined) {
        set_error(err, err_size, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_merges; i++) {
        const pp_gguf_string m = merges[i];
        const char *space = memchr(m.data, ' ', (size_t)m.length);
        if (!space || space == m.data || space + 1 == m.data + m.length) {
            set_error(err, err_size, "merge %zu '%.*s' is not two tokens "
                      "separated by a space",
                      i, (int)(m.length < 64 ? m.length : 64), m.data);
            goto done;
        }
        const pp_gguf_string left = {m.data, (uint64_t)(space - m.data)};
        const pp_gguf_string right = {space + 1,
                                      m.length - left.length - 1};
        const int64_t left_length = unmap_gpt2(left, byte_of, joined);
        const int64_t right_length =
            left_length < 0 ? -1
                            : unmap_gpt2(right, byte_of, joined + left_length);
        int32_t ids[3] = {-1, -1, -1};
        if (left_length >= 0 && right_length >= 0) {
            ids[0] = find_raw(raw, n_raw, joined, (size_t)left_length);
            ids[1] = find_raw(raw, n_raw, joined + left_length,
                              (size_t)right_length);
            ids[2] = find_raw(raw, n_raw, joined,
                              (size_t)(left_length + right_length));
        }
        if (ids[0] < 0 || ids[1] < 0 || ids[2] < 0) {
            set_error(err, err_size,
                      "merge %zu '%.*s': its halves or their concatenation "
                      "are not tokens of the vocabulary",
                      i, (int)(m.length < 64 ? m.length : 64), m.data);
            goto done;
        }
        for (int k = 0; k < 3; k++)
            pp_put_u32(out + size + 4 * (size_t)k, (uint32_t)ids[k]);
        size += 12;
    }

    *section = out;
    *section_size = size;
    out = NULL;
    rc = 0;

done:
    free(out);
    free(raw);
    free(joined);
    return rc;
}

/* Maps tokenizer.ggml.pre to a pre-tokenizer, warning for unknown names. */
static uint32_t choose_pre_tokenizer(pp_gguf_llama *m, char *err,
                                     size_t err_size, int *failed) {
    static const struct {
        const char *name;
        uint32_t pre;
    } known[] = {
        {"gpt-2", PP_BPE_PRE_GPT2},      {"gpt2", PP_BPE_PRE_GPT2},
        {"llama3", PP_BPE_PRE_LLAMA3},   {"llama-v3", PP_BPE_PRE_LLAMA3},
        {"llama-bpe", PP_BPE_PRE_LLAMA3}, {"qwen2", PP_BPE_PRE_QWEN2},
        {"deepseek-r1-qwen", PP_BPE_PRE_QWEN2},
        {"smollm", PP_BPE_PRE_SMOLLM},
    };
    pp_gguf_string pre;
    *failed = 0;
    const int found =
        pp_gguf_get_string(&m->file, "tokenizer.ggml.pre", &pre, err, err_size);
    if (found < 0) {
        *failed = 1;
        return 0;
    }
    if (found == 0) {
        add_warning(m, "tokenizer.ggml.pre is missing; splitting text with "
                       "GPT-2's pre-tokenizer");
        return PP_BPE_PRE_GPT2;
    }
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (pp_gguf_string_equals(pre, known[i].name))
            return known[i].pre;
    add_warning(m,
                "pre-tokenizer '%.*s' is not implemented; splitting text with "
                "GPT-2's, so token ids can differ from llama.cpp's around "
                "digits, apostrophes and white space",
                (int)(pre.length < 32 ? pre.length : 32), pre.data);
    return PP_BPE_PRE_GPT2;
}

static int build_gpt2_tokenizer(pp_gguf_llama *m, const pp_gguf_kv *tokens,
                                char *err, size_t err_size) {
    const pp_gguf *f = &m->file;
    const uint64_t vocab = tokens->count;
    const pp_gguf_kv *merges_kv = get_array(
        f, "tokenizer.ggml.merges", PP_GGUF_STRING, UINT64_MAX, 1, err, err_size);
    if (!merges_kv)
        return -1;
    const pp_gguf_kv *types = get_array(f, "tokenizer.ggml.token_type",
                                        PP_GGUF_INT32, vocab, 0, err, err_size);
    if (!types && err[0])
        return -1;
    int failed;
    const uint32_t pre = choose_pre_tokenizer(m, err, err_size, &failed);
    if (failed)
        return -1;

    pp_bpe_token *list = malloc((size_t)vocab * sizeof *list);
    pp_gguf_string *merges =
        malloc((merges_kv->count ? (size_t)merges_kv->count : 1) * sizeof *merges);
    int rc = -1;
    if (!list || !merges) {
        set_error(err, err_size, "out of memory");
        goto done;
    }
    const uint8_t *cursor = tokens->value;
    for (uint64_t i = 0; i < vocab; i++) {
        list[i].text = pp_gguf_next_string(&cursor);
        const int32_t type =
            types ? (int32_t)pp_get_u32(types->value + 4 * i) : TOKEN_NORMAL;
        /* Only normal and byte tokens are spelled in the byte-to-Unicode
         * form. Unknown, control, user-defined and unused ones are kept as
         * written. */
        list[i].special = type == TOKEN_UNKNOWN || type == TOKEN_CONTROL ||
                          type == TOKEN_USER_DEFINED || type == TOKEN_UNUSED;
    }
    cursor = merges_kv->value;
    for (uint64_t i = 0; i < merges_kv->count; i++)
        merges[i] = pp_gguf_next_string(&cursor);

    rc = pp_bpe_section_build(list, (size_t)vocab, merges,
                              (size_t)merges_kv->count, pre, &m->tokenizer,
                              &m->tokenizer_size, err, err_size);
    m->provider.tokenizer_bpe = 1;

done:
    free(list);
    free(merges);
    return rc;
}

static int build_tokenizer(pp_gguf_llama *m, llama_config *c, char *err,
                           size_t err_size) {
    const pp_gguf *f = &m->file;
    pp_gguf_string model;
    const int found =
        pp_gguf_get_string(f, "tokenizer.ggml.model", &model, err, err_size);
    if (found < 0)
        return -1;
    if (found == 0) {
        set_error(err, err_size, "missing metadata key 'tokenizer.ggml.model'");
        return -1;
    }

    const pp_gguf_kv *tokens = get_array(f, "tokenizer.ggml.tokens",
                                         PP_GGUF_STRING, UINT64_MAX, 1, err,
                                         err_size);
    if (!tokens)
        return -1;
    if (tokens->count == 0 || tokens->count > MAX_VOCAB) {
        set_error(err, err_size,
                  "tokenizer.ggml.tokens has %llu tokens (expected 1 to %u)",
                  (unsigned long long)tokens->count, MAX_VOCAB);
        return -1;
    }
    c->vocab = tokens->count;
    uint64_t declared = c->vocab;
    if (pp_gguf_get_uint(f, "llama.vocab_size", MAX_VOCAB, &declared, err,
                         err_size) < 0)
        return -1;
    if (declared != c->vocab) {
        set_error(err, err_size,
                  "llama.vocab_size is %llu but tokenizer.ggml.tokens has "
                  "%llu tokens",
                  (unsigned long long)declared,
                  (unsigned long long)c->vocab);
        return -1;
    }
    if (read_special_ids(m, c->vocab, err, err_size) != 0)
        return -1;

    if (pp_gguf_string_equals(model, "llama"))
        return build_llama_tokenizer(m, tokens, err, err_size);
    if (pp_gguf_string_equals(model, "gpt2"))
        return build_gpt2_tokenizer(m, tokens, err, err_size);
    set_error(err, err_size,
              "unsupported tokenizer model '%.*s' (tokenizer.ggml.model): "
              "pprt reads 'llama' (SentencePiece) and 'gpt2' (byte-level BPE)",
              (int)(model.length < 32 ? model.length : 32), model.data);
    return -1;
}

/* ---- Opening a model ------------------------------------------------------- */

int pp_gguf_llama_open(const uint8_t *data, size_t size, pp_gguf_llama *m,
                       char *err, size_t err_size) {
    llama_config c;
    memset(m, 0, sizeof *m);
    memset(&c, 0, sizeof c);
    if (pp_gguf_parse(data, size, &m->file, err, err_size) != 0)
        return -1;
    if (check_architecture(&m->file, err, err_size) != 0 ||
        read_config(m, &c, err, err_size) != 0 ||
        check_unsupported_features(m, &c, err, err_size) != 0 ||
        build_tokenizer(m, &c, err, err_size) != 0 ||
        find_tensors(m, &c, err, err_size) != 0)
        goto fail;

    tie_identical_classifier(m);
    warn_about_quantization(m, c.layers);

    const size_t longest_row = (size_t)(c.dim > c.hidden ? c.dim : c.hidden);
    m->row = malloc(longest_row * sizeof *m->row);
    if (!m->row) {
        set_error(err, err_size, "out of memory");
        goto fail;
    }
    if (read_norms(m, &c, err, err_size) != 0)
        goto fail;

    pp_weight_provider *p = &m->provider;
    p->dim = (int32_t)c.dim;
    p->hidden_dim = (int32_t)c.hidden;
    p->n_layers = (int32_t)c.layers;
    p->n_heads = (int32_t)c.heads;
    p->n_kv_heads = (int32_t)c.kv_heads;
    p->vocab_size = (int32_t)c.vocab;
    p->max_seq_len = (int32_t)c.context;
    p->shared_classifier = m->classifier == NULL;
    p->synthetic = 0;
    p->rope_theta = (float)c.rope_base;
    p->norm_eps = (float)c.norm_eps;
    p->attn_norm = m->norms;
    p->mlp_norm = m->norms + (size_t)c.layers * (size_t)c.dim;
    p->final_norm = m->norms + 2 * (size_t)c.layers * (size_t)c.dim;
    p->block = gguf_block;
    p->user = m;
    return 0;

fail:
    pp_gguf_llama_free(m);
    return -1;
}

void pp_gguf_llama_free(pp_gguf_llama *m) {
    pp_gguf_free(&m->file);
    free(m->layer);
    free(m->norms);
    free(m->row);
    free(m->tokenizer);
    memset(m, 0, sizeof *m);
}
