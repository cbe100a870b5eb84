/*
 * convert.h - writing pprt model files from float weights, and reading
 * llama2.c checkpoints. Used by `pprt convert`, `pprt synth` and the tests.
 */
#ifndef PP_CONVERT_H
#define PP_CONVERT_H

#include <stddef.h>
#include <stdint.h>

/* Weight tensors as llama2.c and PyTorch lay them out: [out][in]. */
enum pp_tensor {
    PP_T_EMBEDDING, /* [vocab][dim] */
    PP_T_WQ,        /* [dim][dim] per layer */
    PP_T_WK,        /* [kv_dim][dim] */
    PP_T_WV,        /* [kv_dim][dim] */
    PP_T_WO,        /* [dim][dim] */
    PP_T_GATE,      /* w1 [hidden][dim] */
    PP_T_DOWN,      /* w2 [dim][hidden] */
    PP_T_UP,        /* w3 [hidden][dim] */
    PP_T_CLASSIFIER /* [vocab][dim], only when not shared */
};

typedef struct pp_weight_provider {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
        max_seq_len;
    int shared_classifier;
    int synthetic;
    float rope_theta, norm_eps;
    /* BOS and EOS ids for the header. When special_ids_set is 0 (llama2.c
     * checkpoints, synthetic models), pp_write_model writes BOS 1, EOS 2. */
    int special_ids_set;
    int32_t bos_id, eos_id;
    int tokenizer_bpe;  /* 1: the tokenizer bytes are a byte-level BPE
                           section (format.h), not llama2.c tokenizer.bin */
    const float *attn_norm, *mlp_norm, *final_norm; /* [L][dim], [L][dim], [dim] */
    /* Copies W[row0 + r][col0 + c] of `tensor` in `layer` to out[r * ncols + c]. */
    void (*block)(void *user, int tensor, int layer, size_t row0, size_t nrows,
                  size_t col0, size_t ncols, float *out);
    void *user;
} pp_weight_provider;

typedef struct pp_write_options {
    int tile;       /* MLP channels per tile; 0: chosen from the model size */
    int group;      /* int8 group; 0: 32 */
    int alignment;  /* tile alignment; 0: 64 */
    int verbose;    /* progress lines on stderr */
} pp_write_options;

/* Picks the MLP tile width for a model: small models get small tiles so
 * pruning stays fine-grained, large ones 32 so each tile read is long. */
int pp_default_tile(int32_t hidden_dim, int32_t dim);

/*
 * Writes a pprt model file. `tokenizer` is llama2.c tokenizer.bin bytes,
 * or the byte-level BPE section when w->tokenizer_bpe is set.
 * Returns 0, or -1 with a message in err.
 */
int pp_write_model(const char *path, const pp_weight_provider *w,
                   const uint8_t *tokenizer, size_t tokenizer_size,
                   const pp_write_options *options, char *err, size_t err_size);

/* A llama2.c checkpoint in memory, as float weights. */
typedef struct pp_llama2c {
    pp_weight_provider provider;
    float *embedding, *wq, *wk, *wv, *wo, *w1, *w2, *w3, *classifier;
    float *norms;  /* the norm arrays, owned */
    int version;   /* 0 legacy float32, 2 int8 export */
} pp_llama2c;

/*
 * Parses a llama2.c checkpoint: the legacy float32 layout (7 int32 header;
 * a negative vocab size means an untied classifier) or the version-2 int8
 * export (magic 0x616b3432). Returns 0, or -1 with a message in err.
 * Release with pp_llama2c_free.
 */
int pp_llama2c_parse(const uint8_t *data, size_t size, pp_llama2c *model,
                     char *err, size_t err_size);
void pp_llama2c_free(pp_llama2c *model);

#endif /* PP_CONVERT_H */
