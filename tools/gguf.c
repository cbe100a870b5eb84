/*
 * gguf.c - the GGUF container parser and the ggml tensor dequantizers.
 *
 * Versions 2 and 3 share one layout, because version 3 only added
 * big-endian files (which pprt rejects). A file is "GGUF", uint32 version,
 * uint64 tensor count and uint64 metadata count. The metadata entries
 * follow (string key, uint32 type, value), then the tensor descriptions
 * (string name, uint32 n_dims, uint64 ne[n_dims], uint32 type, uint64
 * offset), padding to `general.alignment` (default 32) and the tensor data.
 * A string is a uint64 length and that many bytes. Tensor offsets are
 * relative to the data section and are multiples of the alignment.
 *
 * The parser walks the bytes with a cursor that refuses to move past the
 * end, so every length and count is checked against the bytes that remain
 * before it is used, and products are checked for overflow before they are
 * formed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "gguf.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ALIGNMENT (1u << 20)
#define GGUF_MAX_DIMS 4u
/* Upper bounds on key and tensor name lengths. Real files use names of a
 * few dozen bytes. */
#define GGUF_MAX_KEY_LENGTH 65535u
#define GGUF_MAX_NAME_LENGTH 255u
/* Element counts stay below 2^62 so that byte counts cannot overflow. */
#define GGUF_MAX_ELEMENTS (UINT64_C(1) << 62)

/* Smallest encodings, used to reject absurd counts before allocating. */
#define GGUF_MIN_KV_BYTES 13u     /* empty key, type, one-byte value */
#define GGUF_MIN_TENSOR_BYTES 24u /* empty name, n_dims, type, offset */

/* ---- Messages -------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_error(char *err, size_t err_size, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(err, err_size, format, args);
    va_end(args);
}

/* Copies at most 80 bytes of `s` into `out` with non-printable bytes as
 * '?', so keys and names from a hostile file are safe to print. */
static const char *printable(pp_gguf_string s, char *out, size_t out_size) {
    size_t n = 0;
    for (uint64_t i = 0; i < s.length && n + 4 < out_size && i < 80; i++) {
        const unsigned char c = (unsigned char)s.data[i];
        out[n++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    if (s.length > 80 && n + 4 < out_size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* ---- The cursor ------------------------------------------------------------ */

typedef struct cursor {
    const uint8_t *data;
    uint64_t size, offset;
} cursor;

static int take(cursor *c, uint64_t n, const uint8_t **out) {
    if (n > c->size - c->offset)
        return -1;
    *out = c->data + c->offset;
    c->offset += n;
    return 0;
}

static int take_u32(cursor *c, uint32_t *value) {
    const uint8_t *p;
    if (take(c, 4, &p) != 0)
        return -1;
    *value = pp_get_u32(p);
    return 0;
}

static int take_u64(cursor *c, uint64_t *value) {
    const uint8_t *p;
    if (take(c, 8, &p) != 0)
        return -1;
    *value = pp_get_u64(p);
    return 0;
}

static int take_string(cursor *c, pp_gguf_string *s) {
    uint64_t length;
    const uint8_t *p;
    if (take_u64(c, &length) != 0 || take(c, length, &p) != 0)
        return -1;
    s->data = (const char *)p;
    s->length = length;
    return 0;
}

pp_gguf_string pp_gguf_next_string(const uint8_t **cursor_bytes) {
    pp_gguf_string s;
    s.length = pp_get_u64(*cursor_bytes);
    s.data = (const char *)*cursor_bytes + 8;
    *cursor_bytes += 8 + s.length;
    return s;
}

int pp_gguf_string_equals(pp_gguf_string s, const char *text) {
    const size_t n = strlen(text);
    return s.length == n && memcmp(s.data, text, n) == 0;
}

/* ---- Metadata -------------------------------------------------------------- */

/* Bytes of one value of a fixed-size type, 0 for STRING and ARRAY, or -1
 * for an unknown type. */
static int value_type_size(uint32_t type) {
    switch (type) {
    case PP_GGUF_UINT8:
    case PP_GGUF_INT8:
    case PP_GGUF_BOOL:
        return 1;
    case PP_GGUF_UINT16:
    case PP_GGUF_INT16:
        return 2;
    case PP_GGUF_UINT32:
    case PP_GGUF_INT32:
    case PP_GGUF_FLOAT32:
        return 4;
    case PP_GGUF_UINT64:
    case PP_GGUF_INT64:
    case PP_GGUF_FLOAT64:
        return 8;
    case PP_GGUF_STRING:
    case PP_GGUF_ARRAY:
        return 0;
    default:
        return -1;
    }
}

static const char *value_type_name(uint32_t type) {
    static const char *const names[] = {
        "uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
        "bool",  "string", "array", "uint64", "int64",  "float64"};
    return type < sizeof names / sizeof *names ? names[type] : "unknown";
}

/* Reads one value of `type` (not an array) and checks its length. */
static int take_scalar(cursor *c, uint32_t type, const char *key, char *err,
                       size_t err_size) {
    const uint8_t *p;
    if (type == PP_GGUF_STRING) {
        pp_gguf_string s;
        if (take_string(c, &s) != 0) {
            set_error(err, err_size,
                      "metadata key '%s': string value runs past the end of "
                      "the file",
                      key);
            return -1;
        }
        return 0;
    }
    if (take(c, (uint64_t)value_type_size(type), &p) != 0) {
        set_error(err, err_size,
                  "metadata key '%s': %s value runs past the end of the file",
                  key, value_type_name(type));
        return -1;
    }
    if (type == PP_GGUF_BOOL && p[0] > 1) {
        set_error(err, err_size, "metadata key '%s': invalid bool value %u",
                  key, p[0]);
        return -1;
    }
    return 0;
}

/* Reads the value of entry `kv` (type already read). */
static int take_value(cursor *c, pp_gguf_kv *kv, const char *key, char *err,
                      size_t err_size) {
    const uint64_t start = c->offset;
    kv->count = 1;
    kv->element_type = kv->type;

    if (kv->type != PP_GGUF_ARRAY) {
        kv->value = c->data + c->offset;
        if (take_scalar(c, kv->type, key, err, err_size) != 0)
            return -1;
        kv->value_bytes = c->offset - start;
        return 0;
    }

    uint32_t element_type;
    uint64_t count;
    if (take_u32(c, &element_type) != 0 || take_u64(c, &count) != 0) {
        set_error(err, err_size,
                  "metadata key '%s': array header runs past the end of the "
                  "file",
                  key);
        return -1;
    }
    const int element_size = value_type_size(element_type);
    if (element_size < 0) {
        set_error(err, err_size,
                  "metadata key '%s': array of unknown element type %u", key,
                  element_type);
        return -1;
    }
    if (element_type == PP_GGUF_ARRAY) {
        set_error(err, err_size,
                  "metadata key '%s': arrays of arrays are not supported", key);
        return -1;
    }

    kv->element_type = element_type;
    kv->count = count;
    kv->value = c->data + c->offset;
    const uint64_t elements_start = c->offset;
    const uint64_t remaining = c->size - c->offset;
    /* A string element takes at least its 8-byte length. */
    const uint64_t min_element = element_size > 0 ? (uint64_t)element_size : 8;
    if (count > remaining / min_element) {
        set_error(err, err_size,
                  "metadata key '%s': array of %llu %s elements cannot fit in "
                  "the %llu bytes left in the file",
                  key, (unsigned long long)count,
                  value_type_name(element_type),
                  (unsigned long long)remaining);
        return -1;
    }
    if (element_size > 0) {
        /* The count check above guarantees that the elements fit. */
        const uint8_t *p = kv->value;
        c->offset += count * (uint64_t)element_size;
        if (element_type == PP_GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++) {
                if (p[i] > 1) {
                    set_error(err, err_size,
                              "metadata key '%s': invalid bool value %u at "
                              "index %llu",
                              key, p[i], (unsigned long long)i);
                    return -1;
                }
            }
        }
    } else {
        for (uint64_t i = 0; i < count; i++) {
            pp_gguf_string s;
            if (take_string(c, &s) != 0) {
                set_error(err, err_size,
                          "metadata key '%s': string %llu of %llu runs past "
                          "the end of the file",
                          key, (unsigned long long)i,
                          (unsigned long long)count);
                return -1;
            }
        }
    }
    kv->value_bytes = c->offset - elements_start;
    return 0;
}

/* Compares two strings by bytes, then length, for duplicate detection. */
static int compare_strings(pp_gguf_string a, pp_gguf_string b) {
    const uint64_t n = a.length < b.length ? a.length : b.length;
    const int order = memcmp(a.data, b.data, (size_t)n);
    if (order != 0)
        return order;
    return (a.length > b.length) - (a.length < b.length);
}

static int compare_string_pointers(const void *a, const void *b) {
    return compare_strings(**(const pp_gguf_string *const *)a,
                           **(const pp_gguf_string *const *)b);
}

/* Finds a repeated name among `count` strings spaced `stride` bytes apart.
 * Returns the repeated string or NULL, and sets *failed when out of memory. */
static const pp_gguf_string *find_duplicate(const void *first, uint64_t count,
                                            size_t stride, int *failed) {
    *failed = 0;
    if (count < 2)
        return NULL;
    const pp_gguf_string **sorted = malloc((size_t)count * sizeof *sorted);
    if (!sorted) {
        *failed = 1;
        return NULL;
    }
    for (uint64_t i = 0; i < count; i++)
        sorted[i] = (const pp_gguf_string *)((const char *)first + i * stride);
    qsort(sorted, (size_t)count, sizeof *sorted, compare_string_pointers);
    const pp_gguf_string *duplicate = NULL;
    for (uint64_t i = 1; i < count && !duplicate; i++)
        if (compare_strings(*sorted[i - 1], *sorted[i]) == 0)
            duplicate = sorted[i];
    free(sorted);
    return duplicate;
}

/* ---- Tensor types ---------------------------------------------------------- */

typedef struct type_info {
    uint32_t id;
    const char *name;
    uint32_t block_elements, block_bytes;
} type_info;

/* Block geometry of the ggml types, so that a file with types pprt cannot
 * read still parses and the error can name the type. */
static const type_info type_table[] = {
    {0, "F32", 1, 4},          {1, "F16", 1, 2},
    {2, "Q4_0", 32, 18},       {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},     {11, "Q3_K", 256, 110},
    {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},
    {16, "IQ2_XXS", 256, 66},  {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},    {23, "IQ4_XS", 256, 136},
    {24, "I8", 1, 1},          {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},
    {28, "F64", 1, 8},         {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},    {39, "MXFP4", 32, 17},
};

static const type_info *find_type(uint32_t id) {
    for (size_t i = 0; i < sizeof type_table / sizeof *type_table; i++)
        if (type_table[i].id == id)
            return &type_table[i];
    return NULL;
}

const char *pp_ggml_type_name(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->name : NULL;
}

void pp_ggml_type_block(uint32_t type, uint32_t *elements, uint32_t *bytes) {
    const type_info *t = find_type(type);
    *elements = t ? t->block_elements : 0;
    *bytes = t ? t->block_bytes : 0;
}

int pp_ggml_type_supported(uint32_t type) {
    switch (type) {
    case PP_GGML_F32:
    case PP_GGML_F16:
    case PP_GGML_BF16:
    case PP_GGML_Q8_0:
    case PP_GGML_Q4_0:
    case PP_GGML_Q4_K:
    case PP_GGML_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* ---- Parsing --------------------------------------------------------------- */

static int parse_header(cursor *c, pp_gguf *file, char *err, size_t err_size) {
    const uint8_t *magic;
    if (c->size < 24) {
        set_error(err, err_size,
                  "file is %llu bytes, too short for a GGUF header (24 bytes)",
                  (unsigned long long)c->size);
        return -1;
    }
    (void)take(c, 4, &magic);
    if (memcmp(magic, GGUF_MAGIC, 4) != 0) {
        set_error(err, err_size,
                  "not a GGUF file: the first bytes are %02x %02x %02x %02x, "
                  "expected \"GGUF\"",
                  magic[0], magic[1], magic[2], magic[3]);
        return -1;
    }
    (void)take_u32(c, &file->version);
    (void)take_u64(c, &file->n_tensors);
    (void)take_u64(c, &file->n_kv);

    /* A big-endian file stores the version byte-swapped. */
    if (file->version == 0x02000000u || file->version == 0x03000000u) {
        set_error(err, err_size,
                  "big-endian GGUF files are not supported; convert the "
                  "model on a little-endian machine");
        return -1;
    }
    if (file->version != 2 && file->version != 3) {
        set_error(err, err_size,
                  "GGUF version %u is not supported (only versions 2 and 3); "
                  "re-export the model with a current llama.cpp",
                  file->version);
        return -1;
    }

    const uint64_t remaining = c->size - c->offset;
    if (file->n_kv > remaining / GGUF_MIN_KV_BYTES) {
        set_error(err, err_size,
                  "metadata count %llu cannot fit in a file of %llu bytes",
                  (unsigned long long)file->n_kv,
                  (unsigned long long)c->size);
        return -1;
    }
    if (file->n_tensors > remaining / GGUF_MIN_TENSOR_BYTES) {
        set_error(err, err_size,
                  "tensor count %llu cannot fit in a file of %llu bytes",
                  (unsigned long long)file->n_tensors,
                  (unsigned long long)c->size);
        return -1;
    }
    return 0;
}

static int parse_metadata(cursor *c, pp_gguf *file, char *err,
                          size_t err_size) {
    char key[96];
    file->kv = calloc(file->n_kv ? (size_t)file->n_kv : 1, sizeof *file->kv);
    if (!file->kv) {
        set_error(err, err_size, "out of memory for %llu metadata entries",
                  (unsigned long long)file->n_kv);
        return -1;
    }

    for (uint64_t i = 0; i < file->n_kv; i++) {
        pp_gguf_kv *kv = &file->kv[i];
        if (take_string(c, &kv->key) != 0) {
            set_error(err, err_size,
                      "metadata entry %llu of %llu: key runs past the end of "
                      "the file",
                      (unsigned long long)i, (unsigned long long)file->n_kv);
            return -1;
        }
        printable(kv->key, key, sizeof key);
        if (kv->key.length == 0 || kv->key.length > GGUF_MAX_KEY_LENGTH ||
            memchr(kv->key.data, '\0', (size_t)kv->key.length)) {
            set_error(err, err_size,
                      "metadata entry %llu: invalid key '%s' of %llu bytes "
                      "(expected 1 to %u bytes without NUL)",
                      (unsigned long long)i, key,
                      (unsigned long long)kv->key.length, GGUF_MAX_KEY_LENGTH);
            return -1;
        }
        if (take_u32(c, &kv->type) != 0) {
            set_error(err, err_size,
                      "metadata key '%s': type runs past the end of the file",
                      key);
            return -1;
        }
        if (value_type_size(kv->type) < 0) {
            set_error(err, err_size, "metadata key '%s': unknown value type %u",
                      key, kv->type);
            return -1;
        }
        if (take_value(c, kv, key, err, err_size) != 0)
            return -1;
    }

    int failed;
    const pp_gguf_string *duplicate =
        find_duplicate(&file->kv[0].key, file->n_kv, sizeof *file->kv, &failed);
    if (failed) {
        set_error(err, err_size, "out of memory checking metadata keys");
        return -1;
    }
    if (duplicate) {
        set_error(err, err_size, "metadata key '%s' appears more than once",
                  printable(*duplicate, key, sizeof key));
        return -1;
    }
    return 0;
}

static int parse_alignment(pp_gguf *file, char *err, size_t err_size) {
    uint64_t alignment = GGUF_DEFAULT_ALIGNMENT;
    const int found = pp_gguf_get_uint(file, "general.alignment",
                                       GGUF_MAX_ALIGNMENT, &alignment, err,
                                       err_size);
    if (found < 0)
        return -1;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        set_error(err, err_size,
                  "metadata key 'general.alignment': %llu is not a power of "
                  "two",
                  (unsigned long long)alignment);
        return -1;
    }
    file->alignment = alignment;
    return 0;
}

/* Reads one tensor description. Its data range is checked later, once the
 * data section's start is known. */
static int parse_tensor_info(cursor *c, pp_gguf *file, uint64_t index,
                             char *err, size_t err_size) {
    pp_gguf_tensor *t = &file->tensors[index];
    char name[96];

    if (take_string(c, &t->name) != 0) {
        set_error(err, err_size,
                  "tensor %llu of %llu: name runs past the end of the file",
                  (unsigned long long)index,
                  (unsigned long long)file->n_tensors);
        return -1;
    }
    printable(t->name, name, sizeof name);
    if (t->name.length == 0 || t->name.length > GGUF_MAX_NAME_LENGTH) {
        set_error(err, err_size,
                  "tensor %llu: invalid name '%s' of %llu bytes (expected 1 "
                  "to %u)",
                  (unsigned long long)index, name,
                  (unsigned long long)t->name.length, GGUF_MAX_NAME_LENGTH);
        return -1;
    }
    if (take_u32(c, &t->n_dims) != 0) {
        set_error(err, err_size,
                  "tensor '%s': dimension count runs past the end of the file",
                  name);
        return -1;
    }
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS) {
        set_error(err, err_size,
                  "tensor '%s': %u dimensions (expected 1 to %u)", name,
                  t->n_dims, GGUF_MAX_DIMS);
        return -1;
    }

    uint64_t elements = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (take_u64(c, &t->ne[d]) != 0) {
            set_error(err, err_size,
                      "tensor '%s': dimensions run past the end of the file",
                      name);
            return -1;
        }
        if (t->ne[d] == 0 || t->ne[d] > GGUF_MAX_ELEMENTS / elements) {
            set_error(err, err_size,
                      "tensor '%s': dimension %u is %llu, which is zero or "
                      "makes the tensor larger than 2^62 elements",
                      name, d, (unsigned long long)t->ne[d]);
            return -1;
        }
        elements *= t->ne[d];
    }

    uint64_t relative_offset;
    if (take_u32(c, &t->type) != 0 || take_u64(c, &relative_offset) != 0) {
        set_error(err, err_size,
                  "tensor '%s': type or offset runs past the end of the file",
                  name);
        return -1;
    }
    const type_info *type = find_type(t->type);
    if (!type) {
        set_error(err, err_size, "tensor '%s': unknown tensor type %u", name,
                  t->type);
        return -1;
    }
    if (t->ne[0] % type->block_elements != 0) {
        set_error(err, err_size,
                  "tensor '%s': row length %llu is not a multiple of the %s "
                  "block size %u",
                  name, (unsigned long long)t->ne[0], type->name,
                  type->block_elements);
        return -1;
    }
    /* Bytes per element are at most 8, so this stays below 2^65 / 8. */
    t->row_bytes = t->ne[0] / type->block_elements * type->block_bytes;
    t->rows = elements / t->ne[0];
    if (t->rows > UINT64_MAX / t->row_bytes) {
        set_error(err, err_size, "tensor '%s': size overflows", name);
        return -1;
    }
    t->bytes = t->rows * t->row_bytes;
    t->offset = relative_offset; /* made absolute in check_tensor_data */
    return 0;
}

static int check_tensor_data(pp_gguf *file, char *err, size_t err_size) {
    char name[96];
    for (uint64_t i = 0; i < file->n_tensors; i++) {
        pp_gguf_tensor *t = &file->tensors[i];
        printable(t->name, name, sizeof name);
        if (t->offset % file->alignment != 0) {
            set_error(err, err_size,
                      "tensor '%s': data offset %llu is not a multiple of the "
                      "alignment %llu",
                      name, (unsigned long long)t->offset,
                      (unsigned long long)file->alignment);
            return -1;
        }
        const uint64_t available = file->size - file->data_offset;
        if (t->offset > available || t->bytes > available - t->offset) {
            set_error(err, err_size,
                      "tensor '%s': data [%llu, +%llu) extends past the end "
                      "of the file (the data section has %llu bytes); the "
                      "file is truncated or corrupt",
                      name, (unsigned long long)t->offset,
                      (unsigned long long)t->bytes,
                      (unsigned long long)available);
            return -1;
        }
        t->offset += file->data_offset;
    }
    return 0;
}

int pp_gguf_parse(const uint8_t *data, size_t size, pp_gguf *file, char *err,
                  size_t err_size) {
    memset(file, 0, sizeof *file);
    if (!data && size != 0) {
        set_error(err, err_size, "no data");
        return -1;
    }
    file->data = data;
    file->size = size;
    cursor c = {data, size, 0};

    if (parse_header(&c, file, err, err_size) != 0 ||
        parse_metadata(&c, file, err, err_size) != 0 ||
        parse_alignment(file, err, err_size) != 0)
        goto fail;

    file->tensors = calloc(file->n_tensors ? (size_t)file->n_tensors : 1,
                           sizeof *file->tensors);
    if (!file->tensors) {
        set_error(err, err_size, "out of memory for %llu tensors",
                  (unsigned long long)file->n_tensors);
        goto fail;
    }
    for (uint64_t i = 0; i < file->n_tensors; i++)
        if (parse_tensor_info(&c, file, i, err, err_size) != 0)
            goto fail;

    int failed;
    const pp_gguf_string *duplicate = find_duplicate(
        &file->tensors[0].name, file->n_tensors, sizeof *file->tensors, &failed);
    if (failed) {
        set_error(err, err_size, "out of memory checking tensor names");
        goto fail;
    }
    if (duplicate) {
        char name[96];
        set_error(err, err_size, "tensor name '%s' appears more than once",
                  printable(*duplicate, name, sizeof name));
        goto fail;
    }

    /* The data section starts at the next multiple of the alignment. A
     * file without tensors may end before it. */
    const uint64_t padding = (file->alignment - c.offset % file->alignment) %
                             file->alignment;
    file->data_offset = c.offset + padding;
    if (file->data_offset > file->size) {
        if (file->n_tensors > 0) {
            set_error(err, err_size,
                      "the file ends at byte %llu, before its tensor data "
                      "section starts at byte %llu",
                      (unsigned long long)file->size,
                      (unsigned long long)file->data_offset);
            goto fail;
        }
        file->data_offset = file->size;
    }
    if (check_tensor_data(file, err, err_size) != 0)
        goto fail;
    return 0;

fail:
    pp_gguf_free(file);
    return -1;
}

void pp_gguf_free(pp_gguf *file) {
    free(file->kv);
    free(file->tensors);
    memset(file, 0, sizeof *file);
}

/* ---- Lookup ---------------------------------------------------------------- */

const pp_gguf_kv *pp_gguf_find_kv(const pp_gguf *file, const char *key) {
    for (uint64_t i = 0; i < file->n_kv; i++)
        if (pp_gguf_string_equals(file->kv[i].key, key))
            return &file->kv[i];
    return NULL;
}

const pp_gguf_tensor *pp_gguf_find_tensor(const pp_gguf *file,
                                          const char *name) {
    for (uint64_t i = 0; i < file->n_tensors; i++)
        if (pp_gguf_string_equals(file->tensors[i].name, name))
            return &file->tensors[i];
    return NULL;
}

static int wrong_type(const pp_gguf_kv *kv, const char *key,
                      const char *expected, char *err, size_t err_size) {
    if (kv->type == PP_GGUF_ARRAY)
        set_error(err, err_size,
                  "metadata key '%s' is an array of %s, expected %s", key,
                  value_type_name(kv->element_type), expected);
    else
        set_error(err, err_size, "metadata key '%s' is %s, expected %s", key,
                  value_type_name(kv->type), expected);
    return -1;
}

int pp_gguf_get_uint(const pp_gguf *file, const char *key, uint64_t max,
                     uint64_t *value, char *err, size_t err_size) {
    const pp_gguf_kv *kv = pp_gguf_find_kv(file, key);
    if (!kv)
        return 0;

    const uint8_t *p = kv->value;
    int negative = 0;
    uint64_t v;
    switch (kv->type) {
    case PP_GGUF_UINT8: v = p[0]; break;
    case PP_GGUF_UINT16: v = (uint64_t)p[0] | (uint64_t)p[1] << 8; break;
    case PP_GGUF_UINT32: v = pp_get_u32(p); break;
    case PP_GGUF_UINT64: v = pp_get_u64(p); break;
    case PP_GGUF_INT8: {
        const int8_t s = (int8_t)p[0];
        negative = s < 0;
        v = (uint64_t)(int64_t)s;
        break;
    }
    case PP_GGUF_INT16: {
        const int16_t s = (int16_t)(uint16_t)((unsigned)p[0] | (unsigned)p[1] << 8);
        negative = s < 0;
        v = (uint64_t)(int64_t)s;
        break;
    }
    case PP_GGUF_INT32: {
        const int32_t s = (int32_t)pp_get_u32(p);
        negative = s < 0;
        v = (uint64_t)(int64_t)s;
        break;
    }
    case PP_GGUF_INT64: {
        const int64_t s = (int64_t)pp_get_u64(p);
        negative = s < 0;
        v = (uint64_t)s;
        break;
    }
    default:
        return wrong_type(kv, key, "an integer", err, err_size);
    }
    if (negative || v > max) {
        if (negative)
            set_error(err, err_size,
                      "metadata key '%s' is negative (expected 0 to %llu)",
                      key, (unsigned long long)max);
        else
            set_error(err, err_size,
                      "metadata key '%s' is %llu, above the maximum %llu", key,
                      (unsigned long long)v, (unsigned long long)max);
        return -1;
    }
    *value = v;
    return 1;
}

int pp_gguf_get_float(const pp_gguf *file, const char *key, double *value,
                      char *err, size_t err_size) {
    const pp_gguf_kv *kv = pp_gguf_find_kv(file, key);
    if (!kv)
        return 0;
    double v;
    if (kv->type == PP_GGUF_FLOAT32) {
        const uint32_t bits = pp_get_u32(kv->value);
        float f;
        memcpy(&f, &bits, sizeof f);
        v = f;
    } else if (kv->type == PP_GGUF_FLOAT64) {
        const uint64_t bits = pp_get_u64(kv->value);
        memcpy(&v, &bits, sizeof v);
    } else {
        return wrong_type(kv, key, "float32 or float64", err, err_size);
    }
    if (!isfinite(v)) {
        set_error(err, err_size, "metadata key '%s' is not a finite number",
                  key);
        return -1;
    }
    *value = v;
    return 1;
}

int pp_gguf_get_string(const pp_gguf *file, const char *key,
                       pp_gguf_string *value, char *err, size_t err_size) {
    const pp_gguf_kv *kv = pp_gguf_find_kv(file, key);
    if (!kv)
        return 0;
    if (kv->type != PP_GGUF_STRING)
        return wrong_type(kv, key, "a string", err, err_size);
    const uint8_t *p = kv->value;
    *value = pp_gguf_next_string(&p);
    return 1;
}

int pp_gguf_get_bool(const pp_gguf *file, const char *key, int *value,
                     char *err, size_t err_size) {
    const pp_gguf_kv *kv = pp_gguf_find_kv(file, key);
    if (!kv)
        return 0;
    if (kv->type != PP_GGUF_BOOL)
        return wrong_type(kv, key, "a bool", err, err_size);
    *value = kv->value[0] != 0;
    return 1;
}

/* ---- Dequantization -------------------------------------------------------- */

/* IEEE 754 binary16 to binary32, exact for every input including
 * subnormals, infinities and NaN. */
static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    uint32_t bits;

    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | mantissa << 13;
    } else if (exponent != 0) {
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        /* Subnormal: normalize the mantissa. */
        uint32_t e = 113;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            e--;
        }
        bits = sign | e << 23 | (mantissa & 0x3FFu) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float read_half(const uint8_t *p) {
    return half_to_float((uint16_t)((unsigned)p[0] | (unsigned)p[1] << 8));
}

static float read_bf16(const uint8_t *p) {
    const uint32_t bits = ((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Q8_0: blocks of 32 values as an f16 scale d and 32 int8 q, with
 * x = d * q. */
static void dequantize_q8_0(const uint8_t *src, uint64_t n, float *dst) {
    for (uint64_t b = 0; b < n / 32; b++, src += 34) {
        const float d = read_half(src);
        for (int i = 0; i < 32; i++)
            dst[b * 32 + (uint64_t)i] = d * (float)(int8_t)src[2 + i];
    }
}

/* Q4_0: blocks of 32 values as an f16 scale d and 16 bytes of 4-bit q.
 * Element i < 16 is the low nibble of byte i and element i + 16 its high
 * nibble, with x = d * (q - 8). */
static void dequantize_q4_0(const uint8_t *src, uint64_t n, float *dst) {
    for (uint64_t b = 0; b < n / 32; b++, src += 18) {
        const float d = read_half(src);
        float *out = dst + b * 32;
        for (int i = 0; i < 16; i++) {
            out[i] = d * (float)((int)(src[2 + i] & 0x0F) - 8);
            out[i + 16] = d * (float)((int)(src[2 + i] >> 4) - 8);
        }
    }
}

/* The 6-bit scale and min of sub-block j of a Q4_K block, packed as ggml
 * packs them. Sub-blocks 0-3 use the low 6 bits of bytes 0-7. Sub-blocks
 * 4-7 are split over the nibbles of bytes 8-11 and the top 2 bits of
 * bytes 0-7. */
static void q4_k_scale_min(int j, const uint8_t *scales, int *scale,
                           int *min) {
    if (j < 4) {
        *scale = scales[j] & 63;
        *min = scales[j + 4] & 63;
    } else {
        *scale = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
        *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

/* Q4_K: super-blocks of 256 as f16 d, f16 dmin, 12 bytes of packed 6-bit
 * scales and mins for 8 sub-blocks of 32, then 128 bytes of 4-bit q. Each
 * 32 bytes of q hold two sub-blocks: low nibbles, then high nibbles.
 * x = d * scale * q - dmin * min. */
static void dequantize_q4_k(const uint8_t *src, uint64_t n, float *dst) {
    for (uint64_t b = 0; b < n / 256; b++, src += 144) {
        const float d = read_half(src);
        const float dmin = read_half(src + 2);
        const uint8_t *scales = src + 4;
        const uint8_t *q = src + 16;
        float *out = dst + b * 256;

        for (int pair = 0; pair < 4; pair++, q += 32, out += 64) {
            int scale, min;
            q4_k_scale_min(2 * pair, scales, &scale, &min);
            const float d_low = d * (float)scale, m_low = dmin * (float)min;
            q4_k_scale_min(2 * pair + 1, scales, &scale, &min);
            const float d_high = d * (float)scale, m_high = dmin * (float)min;
            for (int i = 0; i < 32; i++) {
                out[i] = d_low * (float)(q[i] & 0x0F) - m_low;
                out[i + 32] = d_high * (float)(q[i] >> 4) - m_high;
            }
        }
    }
}

/* Q6_K: super-blocks of 256 as 128 bytes of low 4 bits (ql), 64 bytes of
 * high 2 bits (qh), 16 int8 sub-block scales (one per 16 values) and an f16
 * d. Each half of 128 values uses 64 bytes of ql and 32 of qh, and
 * x = d * scale * (q - 32). */
static void dequantize_q6_k(const uint8_t *src, uint64_t n, float *dst) {
    for (uint64_t b = 0; b < n / 256; b++, src += 210) {
        const uint8_t *ql = src;
        const uint8_t *qh = src + 128;
        const int8_t *scales = (const int8_t *)(src + 192);
        const float d = read_half(src + 208);
        float *out = dst + b * 256;

        for (int half = 0; half < 2; half++, ql += 64, qh += 32, scales += 8,
                 out += 128) {
            for (int i = 0; i < 32; i++) {
                const int s = i / 16;
                const int q0 = ((ql[i] & 0x0F) | ((qh[i] & 3) << 4)) - 32;
                const int q1 =
                    ((ql[i + 32] & 0x0F) | (((qh[i] >> 2) & 3) << 4)) - 32;
                const int q2 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) - 32;
                const int q3 =
                    ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) - 32;
                out[i] = d * (float)scales[s] * (float)q0;
                out[i + 32] = d * (float)scales[s + 2] * (float)q1;
                out[i + 64] = d * (float)scales[s + 4] * (float)q2;
                out[i + 96] = d * (float)scales[s + 6] * (float)q3;
            }
        }
    }
}

void pp_ggml_dequantize_row(uint32_t type, const uint8_t *src, uint64_t n,
                            float *dst) {
    switch (type) {
    case PP_GGML_F32:
        for (uint64_t i = 0; i < n; i++) {
            const uint32_t bits = pp_get_u32(src + 4 * i);
            memcpy(&dst[i], &bits, sizeof bits);
        }
        break;
    case PP_GGML_F16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = read_half(src + 2 * i);
        break;
    case PP_GGML_BF16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = read_bf16(src + 2 * i);
        break;
    case PP_GGML_Q8_0: dequantize_q8_0(src, n, dst); break;
    case PP_GGML_Q4_0: dequantize_q4_0(src, n, dst); break;
    case PP_GGML_Q4_K: dequantize_q4_k(src, n, dst); break;
    case PP_GGML_Q6_K: dequantize_q6_k(src, n, dst); break;
    default:
        /* Callers check pp_ggml_type_supported first. */
        for (uint64_t i = 0; i < n; i++)
            dst[i] = NAN;
        break;
    }
}
