/*
 * gguf.h - reading GGUF model files (versions 2 and 3, the container that
 * llama.cpp writes) and importing the `llama` architecture into pprt.
 *
 * gguf.c parses the container and treats the file as hostile. Every count,
 * length, type and offset is checked against the file size with
 * overflow-safe arithmetic before anything is read through it. Strings are
 * (pointer, length) pairs that are never assumed to end in a NUL. Every
 * rejection names the key or tensor and the problem. After pp_gguf_parse
 * succeeds, every pointer in the pp_gguf structures points inside the file
 * bytes, so later code can read them without further bounds checks.
 *
 * gguf_llama.c maps a parsed `llama` file onto a pp_weight_provider and
 * builds the tokenizer section of the pprt file from the GGUF tokenizer
 * metadata (see format.h for both tokenizer section formats).
 *
 * GGUF lists tensor dimensions innermost first: ne[0] is the number of
 * columns (elements per row), ne[1] the number of rows. Quantized types
 * store each row as ne[0] / block_size blocks.
 */
#ifndef PP_GGUF_H
#define PP_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"

/* Metadata value types (gguf_metadata_value_type in the GGUF spec). */
enum pp_gguf_value_type {
    PP_GGUF_UINT8 = 0,
    PP_GGUF_INT8 = 1,
    PP_GGUF_UINT16 = 2,
    PP_GGUF_INT16 = 3,
    PP_GGUF_UINT32 = 4,
    PP_GGUF_INT32 = 5,
    PP_GGUF_FLOAT32 = 6,
    PP_GGUF_BOOL = 7,
    PP_GGUF_STRING = 8,
    PP_GGUF_ARRAY = 9,
    PP_GGUF_UINT64 = 10,
    PP_GGUF_INT64 = 11,
    PP_GGUF_FLOAT64 = 12,
};

/* The ggml tensor types that pprt can dequantize (ggml_type ids). */
enum pp_ggml_type {
    PP_GGML_F32 = 0,
    PP_GGML_F16 = 1,
    PP_GGML_Q4_0 = 2,
    PP_GGML_Q8_0 = 8,
    PP_GGML_Q4_K = 12,
    PP_GGML_Q6_K = 14,
    PP_GGML_BF16 = 30,
};

/* A string inside the file: `length` bytes at `data`, no NUL after them. */
typedef struct pp_gguf_string {
    const char *data;
    uint64_t length;
} pp_gguf_string;

/* One metadata key-value pair. */
typedef struct pp_gguf_kv {
    pp_gguf_string key;
    uint32_t type;          /* enum pp_gguf_value_type */
    uint32_t element_type;  /* for arrays: the type of every element */
    uint64_t count;         /* element count of an array, 1 for a scalar */
    const uint8_t *value;   /* the value's bytes; for arrays, the first
                               element's (after the type and count) */
    uint64_t value_bytes;   /* bytes of the value or of all elements */
} pp_gguf_kv;

/* One tensor's description, whose data lies inside the file. */
typedef struct pp_gguf_tensor {
    pp_gguf_string name;
    uint32_t n_dims;        /* 1 to 4 */
    uint64_t ne[4];         /* elements per dimension, innermost first;
                               dimensions past n_dims are 1 */
    uint32_t type;          /* ggml_type id */
    uint64_t offset;        /* absolute file offset of the data */
    uint64_t bytes;         /* size of the data */
    uint64_t rows;          /* ne[1] * ne[2] * ne[3] */
    uint64_t row_bytes;     /* bytes of one row of ne[0] elements */
} pp_gguf_tensor;

typedef struct pp_gguf {
    const uint8_t *data;    /* the whole file, owned by the caller */
    uint64_t size;
    uint32_t version;       /* 2 or 3 */
    uint64_t alignment;     /* general.alignment, default 32 */
    uint64_t data_offset;   /* start of the tensor data section */
    uint64_t n_kv;
    pp_gguf_kv *kv;         /* [n_kv], malloc'd */
    uint64_t n_tensors;
    pp_gguf_tensor *tensors;  /* [n_tensors], malloc'd */
} pp_gguf;

/*
 * Parses and validates the header, the metadata and the tensor directory of
 * the GGUF file in data[0, size). The bytes must outlive `file`. Rejects
 * version 1 and big-endian files, nested arrays, and duplicate keys or
 * tensor names. Also rejects unknown value or tensor types, a row length
 * that is not a multiple of its type's block size, and tensor data that is
 * misaligned or extends past the end of the file. Returns 0, or -1 with a
 * message in err. Release with pp_gguf_free.
 */
int pp_gguf_parse(const uint8_t *data, size_t size, pp_gguf *file, char *err,
                  size_t err_size);
void pp_gguf_free(pp_gguf *file);

/* Returns the entry or tensor with this exact name, or NULL. */
const pp_gguf_kv *pp_gguf_find_kv(const pp_gguf *file, const char *key);
const pp_gguf_tensor *pp_gguf_find_tensor(const pp_gguf *file,
                                          const char *name);

/*
 * Typed metadata getters. Each returns 1 when the key is present and valid,
 * 0 when it is absent (leaving *value unchanged), and -1 with a message in
 * err when it has the wrong type or its value is out of range.
 * pp_gguf_get_uint accepts any integer type with a value in [0, max];
 * pp_gguf_get_float accepts FLOAT32 and FLOAT64 with a finite value.
 */
int pp_gguf_get_uint(const pp_gguf *file, const char *key, uint64_t max,
                     uint64_t *value, char *err, size_t err_size);
int pp_gguf_get_float(const pp_gguf *file, const char *key, double *value,
                      char *err, size_t err_size);
int pp_gguf_get_string(const pp_gguf *file, const char *key,
                       pp_gguf_string *value, char *err, size_t err_size);
int pp_gguf_get_bool(const pp_gguf *file, const char *key, int *value,
                     char *err, size_t err_size);

/*
 * Reads the next string of a validated string array and advances *cursor
 * (start it at kv->value).
 */
pp_gguf_string pp_gguf_next_string(const uint8_t **cursor);

/* Returns 1 if `s` equals the NUL-terminated `text`. */
int pp_gguf_string_equals(pp_gguf_string s, const char *text);

/* The ggml name of a tensor type ("Q4_K"), or NULL for an unknown id. */
const char *pp_ggml_type_name(uint32_t type);

/* Sets the elements and bytes of one block of a type. A block of F32, F16
 * or BF16 is one element. Both are 0 for an unknown id. */
void pp_ggml_type_block(uint32_t type, uint32_t *elements, uint32_t *bytes);

/* Returns 1 if pp_ggml_dequantize_row can read `type`. */
int pp_ggml_type_supported(uint32_t type);

/*
 * Dequantizes one row of `n` elements of a supported type from `src` (the
 * row's bytes, n a multiple of the block size) into dst[0, n). F16, BF16
 * and the block scales are converted exactly.
 */
void pp_ggml_dequantize_row(uint32_t type, const uint8_t *src, uint64_t n,
                            float *dst);

/* ---- The llama architecture (gguf_llama.c) ------------------------------ */

/* Tensors of one transformer layer, in enum pp_tensor order for the
 * projections. */
enum pp_gguf_layer_tensor {
    PP_GGUF_ATTN_Q,
    PP_GGUF_ATTN_K,
    PP_GGUF_ATTN_V,
    PP_GGUF_ATTN_OUTPUT,
    PP_GGUF_FFN_GATE,
    PP_GGUF_FFN_DOWN,
    PP_GGUF_FFN_UP,
    PP_GGUF_ATTN_NORM,
    PP_GGUF_FFN_NORM,
    PP_GGUF_LAYER_TENSORS
};

/* A `llama` GGUF file ready for pp_write_model. */
typedef struct pp_gguf_llama {
    pp_gguf file;
    pp_weight_provider provider;
    const pp_gguf_tensor *embedding;   /* token_embd.weight */
    const pp_gguf_tensor *classifier;  /* output.weight, NULL when tied */
    const pp_gguf_tensor *output_norm;
    const pp_gguf_tensor **layer;      /* [n_layers][PP_GGUF_LAYER_TENSORS] */
    float *norms;                      /* attention, MLP and final norms */
    float *row;                        /* one dequantized row, scratch */
    uint8_t *tokenizer;                /* the pprt tokenizer section */
    size_t tokenizer_size;
    char warnings[2048];               /* newline-separated, may be empty */
} pp_gguf_llama;

/*
 * Parses a GGUF file of the `llama` architecture from data[0, size) (which
 * must outlive the model), checks that every tensor the model needs is
 * present with the shape the metadata implies and a supported type, and
 * builds the tokenizer section. Returns 0, or -1 with a message in err.
 * Lossy or approximate steps (Q4 types requantized to int8, ignored RoPE
 * frequency factors, an unimplemented pre-tokenizer) add a line to
 * model->warnings. Release with pp_gguf_llama_free.
 */
int pp_gguf_llama_open(const uint8_t *data, size_t size, pp_gguf_llama *model,
                       char *err, size_t err_size);
void pp_gguf_llama_free(pp_gguf_llama *model);

/* ---- Tokenizer sections ------------------------------------------------- */

/* One vocabulary entry of a byte-level BPE tokenizer, as GGUF (and Hugging
 * Face's vocab.json) store it: the GPT-2 byte-to-Unicode form of the bytes,
 * so that a space is "\u0120" ("Ġ"). Special tokens keep their literal text. */
typedef struct pp_bpe_token {
    pp_gguf_string text;
    int special;  /* 1: a token outside the byte-to-Unicode form (GGUF
                     types unknown, control, user-defined and unused),
                     never produced by encoding text; stored unchanged */
} pp_bpe_token;

/*
 * Builds the byte-level BPE tokenizer section (format.h) from `n_tokens`
 * tokens and `n_merges` merges ("left right", both in the byte-to-Unicode
 * form). Every merge's halves and their concatenation must be tokens.
 * Returns 0 with a malloc'd section in *section, or -1 with a message.
 */
int pp_bpe_section_build(const pp_bpe_token *tokens, size_t n_tokens,
                         const pp_gguf_string *merges, size_t n_merges,
                         uint32_t pretokenizer, uint8_t **section,
                         size_t *section_size, char *err, size_t err_size);

#endif /* PP_GGUF_H */
