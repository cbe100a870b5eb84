/*
 * convert.c - the model writer and the llama2.c reader.
 *
 * The writer streams: it computes the layout from the configuration, writes
 * every section in one pass while computing its CRC-32 (the tiles are
 * quantized one at a time, so a model far larger than RAM can be written),
 * then seeks back and writes the header. Section order in the file:
 * TOKENIZER, NORMS, TILE_DIRECTORY, EMBEDDING, CLASSIFIER, LAYERS,
 * CHANNEL_STATS (last, because it is computed from the quantized tiles).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "format.h"
#include "kernels.h"

int pp_default_tile(int32_t hidden_dim, int32_t dim) {
    (void)hidden_dim;
    if (dim <= 256)
        return 4;
    /* Wider tiles run faster: decoding the synthetic stories110M shape
     * (dim 768) on one thread of a Zen 4 went from about 118 to 152
     * tokens/s with 32 channels per tile instead of 16. */
    if (dim < 768)
        return 16;
    return 32;
}

/* ---- Streaming output with CRC ------------------------------------------- */

typedef struct writer {
    FILE *f;
    uint64_t offset;
    uint32_t crc;
    int failed;
} writer;

static void put(writer *w, const void *data, size_t n) {
    if (w->failed || n == 0)
        return;
    if (fwrite(data, 1, n, w->f) != n)
        w->failed = 1;
    w->crc = pp_crc32(w->crc, data, n);
    w->offset += n;
}

static void pad_to(writer *w, uint64_t offset) {
    static const uint8_t zeros[4096];
    while (!w->failed && w->offset < offset) {
        const uint64_t n = offset - w->offset < sizeof zeros ? offset - w->offset
                                                             : sizeof zeros;
        put(w, zeros, (size_t)n);
    }
}

typedef struct section_record {
    uint32_t id, crc;
    uint64_t offset, size;
} section_record;

static void begin_section(writer *w, uint64_t alignment, section_record *s,
                          uint32_t id) {
    pad_to(w, pp_align_up(w->offset, alignment));
    s->id = id;
    s->offset = w->offset;
    w->crc = 0;
}

static void end_section(writer *w, section_record *s) {
    s->size = w->offset - s->offset;
    s->crc = w->crc;
}

/* ---- Quantized blocks ----------------------------------------------------- */

typedef struct block_buffers {
    float *f;      /* rows x cols floats */
    int8_t *q;
    float *s;
    size_t capacity;
    uint8_t *packed;  /* the matrix in the file's blocked layout */
    size_t packed_capacity;
} block_buffers;

static int reserve(block_buffers *b, size_t values) {
    if (values <= b->capacity)
        return 0;
    free(b->f);
    free(b->q);
    free(b->s);
    b->f = malloc(values * sizeof(float));
    b->q = malloc(values);
    b->s = malloc(values * sizeof(float));
    b->capacity = values;
    return b->f && b->q && b->s ? 0 : -1;
}

static int reserve_packed(block_buffers *b, size_t bytes) {
    if (bytes <= b->packed_capacity)
        return 0;
    free(b->packed);
    b->packed = malloc(bytes);
    b->packed_capacity = b->packed ? bytes : 0;
    return b->packed ? 0 : -1;
}

static const char *tensor_name(int tensor) {
    static const char *const names[] = {"embedding", "wq",   "wk", "wv",
                                        "wo",        "gate", "down", "up",
                                        "classifier"};
    return tensor >= 0 && tensor <= PP_T_CLASSIFIER ? names[tensor] : "?";
}

/* Reads rows [row0, row0+rows) x cols [col0, col0+cols) of `tensor` into
 * dst; fails on NaN or Inf. */
static int fetch_rows(const pp_weight_provider *p, int tensor, int layer,
                      size_t row0, size_t rows, size_t col0, size_t cols,
                      float *dst, char *err, size_t err_size) {
    p->block(p->user, tensor, layer, row0, rows, col0, cols, dst);
    for (size_t i = 0; i < rows * cols; i++) {
        if (!isfinite(dst[i])) {
            snprintf(err, err_size, "%s of layer %d has a NaN or Inf at row %zu",
                     tensor_name(tensor), layer, row0 + i / cols);
            return -1;
        }
    }
    return 0;
}

/*
 * Writes one q8 matrix, 64-byte padded: rows [row0, row0+rows) x cols
 * [col0, col0+cols) of `tensor`, followed by the same rows of `second`
 * when it is not -1 (a tile's gate and up rows form one matrix). When
 * `stats` is set, adds per column the sums of |w|, w^2 and w^4 of the
 * dequantized values (stats[0..2][cols]).
 */
static int write_block(writer *w, const pp_weight_provider *p, int tensor,
                       int second, int layer, size_t row0, size_t rows,
                       size_t col0, size_t cols, size_t group,
                       block_buffers *b, double *stats, char *err,
                       size_t err_size) {
    const size_t groups = pp_group_count(cols, group);
    const size_t parts = second >= 0 ? 2 : 1;
    const size_t all_rows = parts * rows;
    const size_t packed_bytes = pp_q8_matrix_bytes(all_rows, cols, group);
    if (reserve(b, all_rows * cols) != 0 || reserve_packed(b, packed_bytes) != 0) {
        snprintf(err, err_size, "out of memory for a %zu x %zu block", all_rows,
                 cols);
        return -1;
    }
    if (fetch_rows(p, tensor, layer, row0, rows, col0, cols, b->f, err,
                   err_size) != 0 ||
        (second >= 0 && fetch_rows(p, second, layer, row0, rows, col0, cols,
                                   b->f + rows * cols, err, err_size) != 0))
        return -1;

    for (size_t r = 0; r < all_rows; r++)
        pp_quantize_q8_half(cols, group, b->f + r * cols, b->q + r * cols,
                            b->s + r * groups);
    size_t underflow = 0;
    for (size_t i = 0; i < all_rows * groups; i++) {
        const int part = second >= 0 && i >= rows * groups ? second : tensor;
        if (!isfinite(b->s[i])) {
            snprintf(err, err_size,
                     "%s of layer %d: a value near row %zu is too large for a "
                     "half-precision scale (|w| above 8e6)",
                     tensor_name(part), layer, row0 + i % (rows * groups) / groups);
            return -1;
        }
        /* A group below 2^-24 * 127 / 2 in magnitude quantizes to zeros. */
        if (b->s[i] == 0.0f) {
            const float *values = b->f + (i / groups) * cols + (i % groups) * group;
            const size_t length = cols - (i % groups) * group < group
                                      ? cols - (i % groups) * group
                                      : group;
            for (size_t c = 0; c < length; c++)
                if (values[c] != 0.0f) {
                    underflow++;
                    break;
                }
        }
    }
    if (underflow > 0)
        fprintf(stderr,
                "convert: warning: %zu groups of %s of layer %d have weights "
                "too small for a half-precision scale (below 4e-6) and were "
                "stored as zeros\n",
                underflow, tensor_name(tensor), layer);

    if (stats) {
        for (size_t r = 0; r < rows; r++) {
            for (size_t c = 0; c < cols; c++) {
                const double v = (double)b->q[r * cols + c] * b->s[r * groups + c / group];
                stats[c] += fabs(v);
                stats[cols + c] += v * v;
                stats[2 * cols + c] += v * v * v * v;
            }
        }
    }

    const uint64_t start = w->offset;
    pp_q8_pack(all_rows, cols, group, b->q, b->s, b->packed);
    put(w, b->packed, packed_bytes);
    pad_to(w, start + pp_matrix_bytes(all_rows, cols, group));
    return 0;
}

/* ---- The writer ----------------------------------------------------------- */

static void header_put_section(uint8_t *h, int index, const section_record *s) {
    uint8_t *e = h + PP_H_SECTIONS + (size_t)index * PP_SECTION_ENTRY_BYTES;
    pp_put_u32(e, s->id);
    pp_put_u32(e + 4, s->crc);
    pp_put_u64(e + 8, s->offset);
    pp_put_u64(e + 16, s->size);
}

static void put_f32_header(uint8_t *p, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    pp_put_u32(p, bits);
}

static int check_config(const pp_weight_provider *p, const pp_write_options *o,
                        char *err, size_t err_size) {
    if (p->dim <= 0 || p->hidden_dim <= 0 || p->n_layers <= 0 ||
        p->n_heads <= 0 || p->n_kv_heads <= 0 || p->vocab_size <= 0 ||
        p->max_seq_len <= 0 || p->dim % p->n_heads != 0 ||
        (p->dim / p->n_heads) % 2 != 0 || p->n_heads % p->n_kv_heads != 0) {
        snprintf(err, err_size,
                 "invalid model configuration: dim %d, hidden_dim %d, layers %d, "
                 "heads %d, kv_heads %d, vocab %d, seq_len %d",
                 p->dim, p->hidden_dim, p->n_layers, p->n_heads, p->n_kv_heads,
                 p->vocab_size, p->max_seq_len);
        return -1;
    }
    const int32_t bos = p->special_ids_set ? p->bos_id : 1;
    const int32_t eos = p->special_ids_set ? p->eos_id : 2;
    if (bos < 0 || bos >= p->vocab_size || eos < 0 || eos >= p->vocab_size) {
        snprintf(err, err_size,
                 "invalid BOS id %d or EOS id %d: must be below the vocabulary "
                 "size %d",
                 bos, eos, p->vocab_size);
        return -1;
    }
    if (o->tile < 1 || o->tile > p->hidden_dim) {
        snprintf(err, err_size, "invalid --tile %d: must be 1..%d (hidden_dim)",
                 o->tile, p->hidden_dim);
        return -1;
    }
    if (o->group < 1 || o->group > 65536) {
        snprintf(err, err_size, "invalid --group %d: must be 1..65536", o->group);
        return -1;
    }
    if (o->alignment < 64 || (o->alignment & (o->alignment - 1)) != 0 ||
        o->alignment > 65536) {
        snprintf(err, err_size,
                 "invalid alignment %d: must be a power of two from 64 to 65536",
                 o->alignment);
        return -1;
    }
    return 0;
}

int pp_write_model(const char *path, const pp_weight_provider *p,
                   const uint8_t *tokenizer, size_t tokenizer_size,
                   const pp_write_options *options, char *err, size_t err_size) {
    pp_write_options o = *options;
    if (o.tile == 0)
        o.tile = pp_default_tile(p->hidden_dim, p->dim);
    if (o.group == 0)
        o.group = 32;
    if (o.alignment == 0)
        o.alignment = 64;
    if (check_config(p, &o, err, err_size) != 0)
        return -1;

    const pp_dims d = {
        (uint64_t)p->dim, (uint64_t)p->hidden_dim, (uint64_t)p->n_layers,
        (uint64_t)p->n_heads, (uint64_t)p->n_kv_heads,
        (uint64_t)(p->dim / p->n_heads), (uint64_t)p->vocab_size,
        (uint64_t)o.tile, (uint64_t)o.group, (uint64_t)o.alignment};
    const uint64_t per_layer = pp_parts_per_layer(&d);
    const size_t dim = d.dim, hidden = d.hidden_dim, hd = d.head_dim;
    const size_t group = d.group;

    /* Part offsets relative to the LAYERS section start, in order. */
    uint64_t *directory = malloc(8 * d.n_layers * per_layer);
    double *stats = calloc(d.n_layers * 3 * (dim + hidden), sizeof(double));
    block_buffers b = {0};
    writer w = {0};
    section_record sec[PP_SECTION_TABLE_MAX];
    int n_sec = 0, rc = -1;

    if (!directory || !stats) {
        snprintf(err, err_size, "out of memory");
        goto done;
    }
    uint64_t at = 0;
    for (uint64_t l = 0; l < d.n_layers; l++) {
        for (uint64_t i = 0; i < per_layer; i++) {
            uint64_t index;
            const pp_part part = pp_part_of_entry(&d, i, &index);
            at = pp_align_up(at, d.alignment);
            directory[l * per_layer + i] = at;
            at += pp_part_bytes(&d, part, index);
        }
    }

    w.f = fopen(path, "wb");
    if (!w.f) {
        snprintf(err, err_size, "cannot create %s", path);
        goto done;
    }
    uint8_t header[PP_HEADER_BYTES] = {0};
    put(&w, header, sizeof header);

    begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_TOKENIZER);
    put(&w, tokenizer, tokenizer_size);
    end_section(&w, &sec[n_sec++]);

    const float *norm_arrays[3] = {p->attn_norm, p->mlp_norm, p->final_norm};
    const uint64_t norm_counts[3] = {d.n_layers * dim, d.n_layers * dim, dim};
    static const char *norm_names[3] = {"attention", "MLP", "final"};
    for (int k = 0; k < 3; k++) {
        for (uint64_t i = 0; i < norm_counts[k]; i++) {
            if (!isfinite(norm_arrays[k][i])) {
                snprintf(err, err_size, "%s norm weight %llu is NaN or Inf",
                         norm_names[k], (unsigned long long)i);
                goto done;
            }
        }
    }
    begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_NORMS);
    put(&w, p->attn_norm, 4 * d.n_layers * dim);
    put(&w, p->mlp_norm, 4 * d.n_layers * dim);
    put(&w, p->final_norm, 4 * dim);
    end_section(&w, &sec[n_sec++]);

    /* The directory needs the LAYERS offset, which follows the vocabulary
     * matrices; compute it before writing. */
    const uint64_t vocab_bytes = pp_matrix_bytes(d.vocab_size, dim, group);
    uint64_t layers_offset = pp_align_up(w.offset, d.alignment) + 8 * d.n_layers * per_layer;
    layers_offset = pp_align_up(layers_offset, d.alignment) + vocab_bytes;
    if (!p->shared_classifier)
        layers_offset = pp_align_up(layers_offset, d.alignment) + vocab_bytes;
    layers_offset = pp_align_up(layers_offset, d.alignment);

    begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_TILE_DIRECTORY);
    for (uint64_t i = 0; i < d.n_layers * per_layer; i++) {
        uint8_t e[8];
        pp_put_u64(e, layers_offset + directory[i]);
        put(&w, e, 8);
    }
    end_section(&w, &sec[n_sec++]);

    begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_EMBEDDING);
    if (write_block(&w, p, PP_T_EMBEDDING, -1, 0, 0, d.vocab_size, 0, dim, group, &b,
                    NULL, err, err_size) != 0)
        goto done;
    end_section(&w, &sec[n_sec++]);

    if (!p->shared_classifier) {
        begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_CLASSIFIER);
        if (write_block(&w, p, PP_T_CLASSIFIER, -1, 0, 0, d.vocab_size, 0, dim,
                        group, &b, NULL, err, err_size) != 0)
            goto done;
        end_section(&w, &sec[n_sec++]);
    }

    begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_LAYERS);
    if (w.offset != layers_offset) {
        snprintf(err, err_size, "internal error: layer offset %llu != %llu",
                 (unsigned long long)w.offset, (unsigned long long)layers_offset);
        goto done;
    }
    for (uint64_t l = 0; l < d.n_layers; l++) {
        const int layer = (int)l;
        double *o_stats = stats + l * 3 * (dim + hidden);
        double *down_stats = o_stats + 3 * dim;
        double col[3 * 1024];

        if (o.verbose)
            pp_progress((size_t)layer + 1, (size_t)p->n_layers, "convert: layer %d/%d",
                        layer + 1, p->n_layers);
        for (uint64_t i = 0; i < per_layer; i++) {
            uint64_t index;
            const pp_part part = pp_part_of_entry(&d, i, &index);
            const size_t width = part >= PP_PART_GATE_UP
                                     ? (size_t)pp_mlp_tile_width(&d, index)
                                     : hd;
            const size_t first = part >= PP_PART_GATE_UP ? index * d.tile
                                                         : index * hd;
            pad_to(&w, layers_offset + directory[l * per_layer + i]);
            int failed = 0;
            memset(col, 0, sizeof col);
            /* Per-column sums of o and down; no tile is that wide in
             * practice, and a wider one is left out of scoring. */
            double *col_stats = width <= 1024 ? col : NULL;
            double *out_stats = part == PP_PART_O ? o_stats : down_stats;
            const size_t out_stride = part == PP_PART_O ? dim : hidden;
            switch (part) {
            case PP_PART_Q:
                failed = write_block(&w, p, PP_T_WQ, -1, layer, first, hd, 0,
                                     dim, group, &b, NULL, err, err_size);
                break;
            case PP_PART_KV:
                failed = write_block(&w, p, PP_T_WK, -1, layer, first, hd, 0,
                                     dim, group, &b, NULL, err, err_size) ||
                         write_block(&w, p, PP_T_WV, -1, layer, first, hd, 0,
                                     dim, group, &b, NULL, err, err_size);
                break;
            case PP_PART_O:
            case PP_PART_DOWN:
                failed = write_block(&w, p, part == PP_PART_O ? PP_T_WO : PP_T_DOWN,
                                     -1, layer, 0, dim, first, width, group, &b,
                                     col_stats, err, err_size);
                for (size_t c = 0; !failed && col_stats && c < width; c++)
                    for (int k = 0; k < 3; k++)
                        out_stats[k * out_stride + first + c] = col[k * width + c];
                break;
            case PP_PART_GATE_UP:
                failed = write_block(&w, p, PP_T_GATE, PP_T_UP, layer, first,
                                     width, 0, dim, group, &b, NULL, err,
                                     err_size);
                break;
            }
            if (failed)
                goto done;
        }
    }
    end_section(&w, &sec[n_sec++]);

    begin_section(&w, d.alignment, &sec[n_sec], PP_SECTION_CHANNEL_STATS);
    for (uint64_t i = 0; i < d.n_layers * 3 * (dim + hidden); i++) {
        /* sum w^4 overflows float for weights above about 1e9; such a
         * model would score every channel Inf, so it is rejected. */
        const float v = (float)stats[i];
        if (!isfinite(v)) {
            snprintf(err, err_size,
                     "weights of layer %llu are too large for int8 scoring "
                     "(a channel's sum of w^4 overflows float32)",
                     (unsigned long long)(i / (3 * (dim + hidden))));
            goto done;
        }
        put(&w, &v, 4);
    }
    end_section(&w, &sec[n_sec++]);

    memcpy(header + PP_H_MAGIC, PP_MAGIC, 8);
    pp_put_u32(header + PP_H_VERSION, PP_VERSION);
    pp_put_u32(header + PP_H_HEADER_BYTES, PP_HEADER_BYTES);
    pp_put_u32(header + PP_H_DIM, (uint32_t)p->dim);
    pp_put_u32(header + PP_H_HIDDEN_DIM, (uint32_t)p->hidden_dim);
    pp_put_u32(header + PP_H_N_LAYERS, (uint32_t)p->n_layers);
    pp_put_u32(header + PP_H_N_HEADS, (uint32_t)p->n_heads);
    pp_put_u32(header + PP_H_N_KV_HEADS, (uint32_t)p->n_kv_heads);
    pp_put_u32(header + PP_H_VOCAB_SIZE, (uint32_t)p->vocab_size);
    pp_put_u32(header + PP_H_MAX_SEQ_LEN, (uint32_t)p->max_seq_len);
    pp_put_u32(header + PP_H_TILE, (uint32_t)o.tile);
    pp_put_u32(header + PP_H_GROUP, (uint32_t)o.group);
    pp_put_u32(header + PP_H_ALIGNMENT, (uint32_t)o.alignment);
    pp_put_u32(header + PP_H_FLAGS,
               (p->shared_classifier ? PP_FLAG_SHARED_CLASSIFIER : 0u) |
                   (p->synthetic ? PP_FLAG_SYNTHETIC : 0u) |
                   (p->tokenizer_bpe ? PP_FLAG_TOKENIZER_BPE : 0u));
    put_f32_header(header + PP_H_ROPE_THETA, p->rope_theta);
    put_f32_header(header + PP_H_NORM_EPS, p->norm_eps);
    pp_put_u32(header + PP_H_BOS_ID, p->special_ids_set ? (uint32_t)p->bos_id : 1u);
    pp_put_u32(header + PP_H_EOS_ID, p->special_ids_set ? (uint32_t)p->eos_id : 2u);
    pp_put_u32(header + PP_H_N_SECTIONS, (uint32_t)n_sec);
    for (int i = 0; i < n_sec; i++)
        header_put_section(header, i, &sec[i]);
    pp_put_u32(header + PP_H_CRC, pp_crc32(0, header, PP_H_CRC));

    if (w.failed || fseek(w.f, 0, SEEK_SET) != 0 ||
        fwrite(header, 1, sizeof header, w.f) != sizeof header) {
        snprintf(err, err_size, "write to %s failed (disk full?)", path);
        goto done;
    }
    rc = 0;

done:
    if (w.f && fclose(w.f) != 0 && rc == 0) {
        snprintf(err, err_size, "write to %s failed (disk full?)", path);
        rc = -1;
    }
    if (rc != 0 && w.f)
        remove(path);  /* never leave a half-written model behind */
    free(directory);
    free(stats);
    free(b.f);
    free(b.q);
    free(b.s);
    free(b.packed);
    return rc;
}

/* ---- llama2.c checkpoints ------------------------------------------------- */

static void llama2c_block(void *user, int tensor, int layer, size_t row0,
                          size_t nrows, size_t col0, size_t ncols, float *out) {
    const pp_llama2c *m = user;
    const pp_weight_provider *p = &m->provider;
    const size_t dim = (size_t)p->dim, hidden = (size_t)p->hidden_dim;
    const size_t kv_dim = dim / (size_t)p->n_heads * (size_t)p->n_kv_heads;
    const float *base = NULL;
    size_t cols = dim;

    switch (tensor) {
    case PP_T_EMBEDDING: base = m->embedding; break;
    case PP_T_CLASSIFIER: base = m->classifier; break;
    case PP_T_WQ: base = m->wq + (size_t)layer * dim * dim; break;
    case PP_T_WK: base = m->wk + (size_t)layer * kv_dim * dim; break;
    case PP_T_WV: base = m->wv + (size_t)layer * kv_dim * dim; break;
    case PP_T_WO: base = m->wo + (size_t)layer * dim * dim; break;
    case PP_T_GATE: base = m->w1 + (size_t)layer * hidden * dim; break;
    case PP_T_UP: base = m->w3 + (size_t)layer * hidden * dim; break;
    case PP_T_DOWN: base = m->w2 + (size_t)layer * dim * hidden; cols = hidden; break;
    default: break;
    }
    for (size_t r = 0; r < nrows; r++)
        memcpy(out + r * ncols, base + (row0 + r) * cols + col0, ncols * sizeof(float));
}

static int32_t get_i32(const uint8_t *p) { return (int32_t)pp_get_u32(p); }

/* Copies n floats (little-endian) out of the file. */
static float *take_floats(const uint8_t **p, size_t n) {
    float *out = malloc(n * sizeof(float) + 1);
    if (out) {
        memcpy(out, *p, n * sizeof(float));
        *p += n * sizeof(float);
    }
    return out;
}

/* Dequantizes n int8 values with scales per group of gs (version-2 export). */
static int take_q80(const uint8_t **p, size_t n, size_t gs, float *out) {
    const int8_t *q = (const int8_t *)*p;
    const uint8_t *scales = *p + n;
    for (size_t i = 0; i < n; i++) {
        float s;
        memcpy(&s, scales + 4 * (i / gs), 4);
        out[i] = (float)q[i] * s;
    }
    *p += n + 4 * (n / gs);
    return 0;
}

int pp_llama2c_parse(const uint8_t *data, size_t size, pp_llama2c *m, char *err,
                     size_t err_size) {
    memset(m, 0, sizeof *m);
    pp_weight_provider *p = &m->provider;
    size_t header = 28, group = 0;

    if (size < 28) {
        snprintf(err, err_size, "file is %zu bytes, too short for a llama2.c header",
                 size);
        return -1;
    }
    int32_t cfg[7];
    if (pp_get_u32(data) == 0x616b3432u) {
        if (size < 256) {
            snprintf(err, err_size,
                     "llama2.c int8 export: file is %zu bytes, shorter than its "
                     "256-byte header", size);
            return -1;
        }
        if (get_i32(data + 4) != 2) {
            snprintf(err, err_size,
                     "llama2.c int8 export: unsupported version %d (expected 2)",
                     get_i32(data + 4));
            return -1;
        }
        for (int i = 0; i < 7; i++)
            cfg[i] = get_i32(data + 8 + 4 * i);
        p->shared_classifier = data[36] != 0;
        group = (size_t)get_i32(data + 37);
        header = 256;
        m->version = 2;
    } else {
        for (int i = 0; i < 7; i++)
            cfg[i] = get_i32(data + 4 * i);
        p->shared_classifier = cfg[5] > 0;
        /* INT32_MIN has no positive counterpart; it stays negative and is
         * rejected below. */
        if (cfg[5] < 0 && cfg[5] != INT32_MIN)
            cfg[5] = -cfg[5];
        m->version = 0;
    }

    p->dim = cfg[0];
    p->hidden_dim = cfg[1];
    p->n_layers = cfg[2];
    p->n_heads = cfg[3];
    p->n_kv_heads = cfg[4];
    p->vocab_size = cfg[5];
    p->max_seq_len = cfg[6];
    p->rope_theta = 10000.0f;
    p->norm_eps = 1e-5f;
    if (p->dim <= 0 || p->dim > 65536 || p->hidden_dim <= 0 ||
        p->hidden_dim > 262144 || p->n_layers <= 0 || p->n_layers > 1024 ||
        p->n_heads <= 0 || p->dim % p->n_heads != 0 || p->n_kv_heads <= 0 ||
        p->n_heads % p->n_kv_heads != 0 || p->vocab_size <= 0 ||
        p->vocab_size > (1 << 22) || p->max_seq_len <= 0 ||
        p->max_seq_len > (1 << 20) || (p->dim / p->n_heads) % 2 != 0) {
        snprintf(err, err_size,
                 "not a llama2.c checkpoint: header says dim %d, hidden_dim %d, "
                 "layers %d, heads %d, kv_heads %d, vocab %d, seq_len %d",
                 cfg[0], cfg[1], cfg[2], cfg[3], cfg[4], cfg[5], cfg[6]);
        return -1;
    }

    const uint64_t dim = (uint64_t)p->dim, hidden = (uint64_t)p->hidden_dim;
    const uint64_t L = (uint64_t)p->n_layers, vocab = (uint64_t)p->vocab_size;
    const uint64_t hs = dim / (uint64_t)p->n_heads;
    const uint64_t kv_dim = hs * (uint64_t)p->n_kv_heads;
    const uint64_t sizes[] = {vocab * dim, L * dim * dim, L * kv_dim * dim,
                              L * kv_dim * dim, L * dim * dim, L * hidden * dim,
                              L * dim * hidden, L * hidden * dim,
                              p->shared_classifier ? 0 : vocab * dim};
    const uint64_t norms = (2 * L + 1) * dim;
    uint64_t expected = header;
    if (m->version == 0) {
        expected += 4 * (norms + (uint64_t)p->max_seq_len * hs);  /* + rope tables */
        for (size_t i = 0; i < 9; i++)
            expected += 4 * sizes[i];
    } else {
        if (group == 0 || group > (1u << 20)) {
            snprintf(err, err_size, "llama2.c int8 export: invalid group size %zu", group);
            return -1;
        }
        expected += 4 * norms;
        for (size_t i = 0; i < 9; i++) {
            const uint64_t per = i == 0 || i == 8 ? sizes[i] : sizes[i] / L;
            if (per % group != 0) {
                snprintf(err, err_size,
                         "llama2.c int8 export: tensor of %llu values is not a "
                         "multiple of group size %zu",
                         (unsigned long long)per, group);
                return -1;
            }
            expected += sizes[i] + 4 * (sizes[i] / group);
        }
    }
    if (size != expected) {
        snprintf(err, err_size,
                 "llama2.c checkpoint is %zu bytes but its header implies %llu; "
                 "the file is truncated or not a llama2.c %s checkpoint",
                 size, (unsigned long long)expected,
                 m->version == 2 ? "int8 (version 2)" : "float32");
        return -1;
    }

    float **targets[] = {&m->embedding, &m->wq, &m->wk, &m->wv, &m->wo,
                         &m->w1, &m->w2, &m->w3, &m->classifier};
    const uint8_t *at = data + header;
    if (m->version == 0) {
        /* Legacy order: embedding, att norms, wq, wk, wv, wo, ffn norms, w1,
         * w2, w3, final norm, rope tables, classifier. */
        m->norms = malloc(4 * norms);
        if (!m->norms)
            goto oom;
        m->embedding = take_floats(&at, sizes[0]);
        memcpy(m->norms, at, 4 * L * dim);
        at += 4 * L * dim;
        for (int i = 1; i <= 4; i++)
            *targets[i] = take_floats(&at, sizes[i]);
        memcpy(m->norms + L * dim, at, 4 * L * dim);
        at += 4 * L * dim;
        for (int i = 5; i <= 7; i++)
            *targets[i] = take_floats(&at, sizes[i]);
        memcpy(m->norms + 2 * L * dim, at, 4 * dim);
        at += 4 * dim + 4 * (uint64_t)p->max_seq_len * hs;
        if (!p->shared_classifier)
            m->classifier = take_floats(&at, sizes[8]);
    } else {
        m->norms = take_floats(&at, norms);
        for (int i = 0; i < 9; i++) {
            if (sizes[i] == 0)
                continue;
            *targets[i] = malloc(sizes[i] * sizeof(float));
            if (!*targets[i])
                goto oom;
            const uint64_t parts = i == 0 || i == 8 ? 1 : L;
            for (uint64_t part = 0; part < parts; part++)
                take_q80(&at, sizes[i] / parts, group,
                         *targets[i] + part * (sizes[i] / parts));
        }
    }
    for (int i = 0; i < 9; i++)
        if (sizes[i] && !*targets[i])
            goto oom;
    if (!m->norms)
        goto oom;

    p->attn_norm = m->norms;
    p->mlp_norm = m->norms + L * dim;
    p->final_norm = m->norms + 2 * L * dim;
    p->block = llama2c_block;
    p->user = m;
    return 0;

oom:
    snprintf(err, err_size, "out of memory reading a %zu-byte checkpoint", size);
    pp_llama2c_free(m);
    return -1;
}

void pp_llama2c_free(pp_llama2c *m) {
    free(m->embedding);
    free(m->wq);
    free(m->wk);
    free(m->wv);
    free(m->wo);
    free(m->w1);
    free(m->w2);
    free(m->w3);
    free(m->classifier);
    free(m->norms);
    memset(m, 0, sizeof *m);
}
