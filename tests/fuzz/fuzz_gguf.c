/*
 * fuzz_gguf.c - libFuzzer target: arbitrary bytes as a GGUF file.
 *
 * pp_gguf_parse and pp_gguf_llama_open must return 0, or -1 with a
 * non-empty message. When the llama import accepts the bytes, every weight
 * is read through the provider (so AddressSanitizer sees any read outside
 * a tensor), the norms must be copied, and the tokenizer section it built
 * must pass the runtime's validation, load into an arena of the measured
 * size, and encode and decode a short text.
 *
 * Built with -DPP_FUZZ_MAIN it is a libFuzzer target. Without it, a test
 * includes this file and calls fuzz_gguf_one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

static void fuzz_gguf_fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_gguf: %s: %s\n", what, detail);
    abort();
}

/* Reads every weight of the model once, one row at a time. */
static void fuzz_gguf_read_weights(const pp_weight_provider *p) {
    const size_t dim = (size_t)p->dim, hidden = (size_t)p->hidden_dim;
    const size_t kv_dim = dim / (size_t)p->n_heads * (size_t)p->n_kv_heads;
    const size_t longest = dim > hidden ? dim : hidden;
    float *row = malloc(longest * sizeof *row);
    if (!row)
        return;

    p->block(p->user, PP_T_EMBEDDING, 0, (size_t)p->vocab_size - 1, 1, 0, dim,
             row);
    if (!p->shared_classifier)
        p->block(p->user, PP_T_CLASSIFIER, 0, 0, 1, 0, dim, row);
    for (int layer = 0; layer < p->n_layers; layer++) {
        const struct {
            int tensor;
            size_t rows, cols;
        } tensors[] = {{PP_T_WQ, dim, dim},       {PP_T_WK, kv_dim, dim},
                       {PP_T_WV, kv_dim, dim},    {PP_T_WO, dim, dim},
                       {PP_T_GATE, hidden, dim},  {PP_T_UP, hidden, dim},
                       {PP_T_DOWN, dim, hidden}};
        for (size_t t = 0; t < sizeof tensors / sizeof *tensors; t++)
            for (size_t r = 0; r < tensors[t].rows; r++)
                p->block(p->user, tensors[t].tensor, layer, r, 1, 0,
                         tensors[t].cols, row);
    }
    free(row);
}

/* Validates, loads and exercises the tokenizer section the import built. */
static void fuzz_gguf_tokenizer(const pp_gguf_llama *m) {
    const pp_weight_provider *p = &m->provider;
    const pp_tokenizer_kind kind =
        p->tokenizer_bpe ? PP_TOKENIZER_BPE : PP_TOKENIZER_LLAMA2C;
    pp_status status = pp_tokenizer_validate_kind(kind, m->tokenizer,
                                                  m->tokenizer_size,
                                                  p->vocab_size, NULL);
    if (status != PP_OK)
        fuzz_gguf_fail("validating the built tokenizer section",
                       pp_status_string(status));

    pp_arena measure;
    pp_arena_init(&measure, NULL, 0);
    status = pp_tokenizer_load_kind(kind, NULL, &measure, m->tokenizer,
                                    m->tokenizer_size, p->vocab_size,
                                    p->bos_id, p->eos_id);
    if (status != PP_OK)
        fuzz_gguf_fail("measuring the tokenizer", pp_status_string(status));
    void *memory = aligned_alloc(64, (measure.used + 63) / 64 * 64 + 64);
    if (!memory)
        return;
    pp_arena arena;
    pp_arena_init(&arena, memory, measure.used);
    pp_tokenizer tokenizer;
    status = pp_tokenizer_load_kind(kind, &tokenizer, &arena, m->tokenizer,
                                    m->tokenizer_size, p->vocab_size,
                                    p->bos_id, p->eos_id);
    /* A BPE merge whose result is not the concatenation of its halves is
     * only found at load, so PP_ERR_CORRUPT is the one failure allowed. */
    if (status == PP_ERR_CORRUPT && kind == PP_TOKENIZER_BPE) {
        free(memory);
        return;
    }
    if (status != PP_OK)
        fuzz_gguf_fail("loading the tokenizer", pp_status_string(status));

    static const char text[] = "Hello world, it's 2024!\n\xE6\x9D\xB1\xFF";
    int32_t ids[sizeof text + 3];
    int32_t count = 0;
    status = pp_tokenizer_encode(&tokenizer, text, sizeof text - 1, 1, ids,
                                 (int32_t)(sizeof ids / sizeof *ids), &count);
    /* A vocabulary without some byte token cannot encode every text. */
    if (status != PP_OK && status != PP_ERR_UNSUPPORTED)
        fuzz_gguf_fail("encoding", pp_status_string(status));
    for (int32_t i = 1; status == PP_OK && i < count; i++)
        if (!pp_tokenizer_decode(&tokenizer, ids[i - 1], ids[i], NULL))
            fuzz_gguf_fail("decoding an encoded id", "returned NULL");
    free(memory);
}

static void fuzz_gguf_one(const uint8_t *data, size_t size) {
    char err[512];
    pp_gguf file;
    err[0] = '\0';
    if (pp_gguf_parse(data, size, &file, err, sizeof err) != 0) {
        if (err[0] == '\0')
            fuzz_gguf_fail("pp_gguf_parse", "returned -1 without a message");
    } else {
        pp_gguf_free(&file);
    }

    pp_gguf_llama model;
    err[0] = '\0';
    if (pp_gguf_llama_open(data, size, &model, err, sizeof err) != 0) {
        if (err[0] == '\0')
            fuzz_gguf_fail("pp_gguf_llama_open", "returned -1 without a message");
        return;
    }
    fuzz_gguf_read_weights(&model.provider);
    fuzz_gguf_tokenizer(&model);
    pp_gguf_llama_free(&model);
}

#ifdef PP_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_gguf_one(data, size);
    return 0;
}
#endif
