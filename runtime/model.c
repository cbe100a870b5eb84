/*
 * model.c - validation of a pprt model file before any of it is used.
 *
 * The file may come from anywhere (a download, a flash chip with bit rot, a
 * fuzzer), so every field is checked against fixed limits and every size
 * and offset against the file length, with overflow-safe arithmetic, before
 * the runtime reads through it. Sections are checked in one streaming pass
 * with a small stack buffer, so validation needs no memory of its own.
 */
#include <math.h>
#include <string.h>

#include "model.h"
#include "tokenizer.h"

/* Limits far above any real LLaMA-family model; they keep size arithmetic
 * far from 64-bit overflow (the largest product below is < 2^62). */
#define MAX_DIM (1u << 16)
#define MAX_HIDDEN (1u << 18)
#define MAX_LAYERS 1024u
#define MAX_VOCAB (1u << 22)
#define MAX_SEQ_LEN (1u << 20)
#define MAX_GROUP (1u << 16)
#define MIN_ALIGNMENT 64u
#define MAX_ALIGNMENT (1u << 16)
/* The tokenizer section is copied into the arena; 256 MiB is far above the
 * largest vocabularies in use. */
#define MAX_TOKENIZER_BYTES (256u << 20)

pp_status pp_source_read(const pp_source *source, uint64_t offset, void *dst,
                         size_t length) {
    if (offset > source->size || length > source->size - offset)
        return PP_ERR_TRUNCATED;
    if (length == 0)
        return PP_OK;
    if (source->data) {
        memcpy(dst, (const uint8_t *)source->data + offset, length);
        return PP_OK;
    }
    if (!source->read)
        return PP_ERR_INVALID_ARGUMENT;
    return source->read(source->user, offset, dst, length);
}

/* Checks a section's CRC-32, and optionally that its float32 values are
 * finite, reading it in pieces. */
static pp_status check_section(const pp_source *source, const pp_section *s,
                               int floats) {
    uint8_t buffer[4096];
    uint32_t crc = 0;

    for (uint64_t done = 0; done < s->size;) {
        const size_t n = s->size - done < sizeof buffer ? (size_t)(s->size - done)
                                                        : sizeof buffer;
        pp_status st = pp_source_read(source, s->offset + done, buffer, n);
        if (st != PP_OK)
            return st;
        crc = pp_crc32(crc, buffer, n);

        if (floats) {
            for (size_t i = 0; i + 4 <= n; i += 4) {
                uint32_t bits = pp_get_u32(buffer + i);
                if ((bits & 0x7F800000u) == 0x7F800000u)
                    return PP_ERR_NON_FINITE;
            }
        }
        done += n;
    }
    return crc == s->crc ? PP_OK : PP_ERR_CHECKSUM;
}

static int is_power_of_two(uint32_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}

static float get_f32(const uint8_t *p) {
    uint32_t bits = pp_get_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Fills and checks the configuration fields of the header. */
static pp_status parse_config(const uint8_t *h, pp_model_file *file) {
    pp_model_info *info = &file->info;
    const uint32_t dim = pp_get_u32(h + PP_H_DIM);
    const uint32_t hidden = pp_get_u32(h + PP_H_HIDDEN_DIM);
    const uint32_t layers = pp_get_u32(h + PP_H_N_LAYERS);
    const uint32_t heads = pp_get_u32(h + PP_H_N_HEADS);
    const uint32_t kv_heads = pp_get_u32(h + PP_H_N_KV_HEADS);
    const uint32_t vocab = pp_get_u32(h + PP_H_VOCAB_SIZE);
    const uint32_t seq_len = pp_get_u32(h + PP_H_MAX_SEQ_LEN);
    const uint32_t tile = pp_get_u32(h + PP_H_TILE);
    const uint32_t group = pp_get_u32(h + PP_H_GROUP);
    const uint32_t alignment = pp_get_u32(h + PP_H_ALIGNMENT);
    const uint32_t flags = pp_get_u32(h + PP_H_FLAGS);
    const uint32_t bos = pp_get_u32(h + PP_H_BOS_ID);
    const uint32_t eos = pp_get_u32(h + PP_H_EOS_ID);
    const float theta = get_f32(h + PP_H_ROPE_THETA);
    const float eps = get_f32(h + PP_H_NORM_EPS);

    if (dim == 0 || dim > MAX_DIM || hidden == 0 || hidden > MAX_HIDDEN ||
        layers == 0 || layers > MAX_LAYERS || heads == 0 || heads > dim ||
        dim % heads != 0 || (dim / heads) % 2 != 0 || kv_heads == 0 ||
        kv_heads > heads || heads % kv_heads != 0 || vocab == 0 ||
        vocab > MAX_VOCAB || seq_len == 0 || seq_len > MAX_SEQ_LEN ||
        tile == 0 || tile > hidden || group == 0 || group > MAX_GROUP ||
        !is_power_of_two(alignment) || alignment < MIN_ALIGNMENT ||
        alignment > MAX_ALIGNMENT || (flags & ~7u) != 0 || bos >= vocab ||
        eos >= vocab)
        return PP_ERR_CORRUPT;
    if (!isfinite(theta) || theta <= 0.0f || !isfinite(eps) || eps <= 0.0f ||
        eps >= 1.0f)
        return PP_ERR_CORRUPT;

    memset(info, 0, sizeof *info);
    info->dim = (int32_t)dim;
    info->hidden_dim = (int32_t)hidden;
    info->n_layers = (int32_t)layers;
    info->n_heads = (int32_t)heads;
    info->n_kv_heads = (int32_t)kv_heads;
    info->head_dim = (int32_t)(dim / heads);
    info->vocab_size = (int32_t)vocab;
    info->max_seq_len = (int32_t)seq_len;
    info->tile = (int32_t)tile;
    info->group = (int32_t)group;
    info->alignment = (int32_t)alignment;
    info->bos_id = (int32_t)bos;
    info->eos_id = (int32_t)eos;
    info->shared_classifier = (flags & PP_FLAG_SHARED_CLASSIFIER) != 0;
    info->synthetic = (flags & PP_FLAG_SYNTHETIC) != 0;
    file->tokenizer_kind = (flags & PP_FLAG_TOKENIZER_BPE) ? PP_TOKENIZER_BPE
                                                           : PP_TOKENIZER_LLAMA2C;
    info->rope_theta = theta;
    info->norm_eps = eps;

    pp_dims *d = &file->dims;
    d->dim = dim;
    d->hidden_dim = hidden;
    d->n_layers = layers;
    d->n_heads = heads;
    d->n_kv_heads = kv_heads;
    d->head_dim = dim / heads;
    d->vocab_size = vocab;
    d->tile = tile;
    d->group = group;
    d->alignment = alignment;
    return PP_OK;
}

/* Reads the section table; sections must be aligned, inside the file, after
 * the header and disjoint. */
static pp_status parse_sections(const uint8_t *h, uint64_t file_size,
                                pp_model_file *file) {
    const uint32_t count = pp_get_u32(h + PP_H_N_SECTIONS);
    if (count > PP_SECTION_TABLE_MAX)
        return PP_ERR_CORRUPT;

    memset(file->section, 0, sizeof file->section);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = h + PP_H_SECTIONS + i * PP_SECTION_ENTRY_BYTES;
        const uint32_t id = pp_get_u32(e);
        pp_section s = {.crc = pp_get_u32(e + 4), .offset = pp_get_u64(e + 8),
                        .size = pp_get_u64(e + 16), .present = 1};

        if (id == 0 || id >= PP_SECTION_COUNT_MAX || file->section[id].present)
            return PP_ERR_CORRUPT;
        if (s.offset < PP_HEADER_BYTES || s.offset % file->dims.alignment != 0)
            return PP_ERR_CORRUPT;
        if (s.offset > file_size || s.size > file_size - s.offset)
            return PP_ERR_TRUNCATED;
        file->section[id] = s;
    }

    /* Disjointness: at most 7 sections, so compare every pair. */
    for (int a = 1; a < PP_SECTION_COUNT_MAX; a++) {
        for (int b = a + 1; b < PP_SECTION_COUNT_MAX; b++) {
            const pp_section *x = &file->section[a], *y = &file->section[b];
            if (x->present && y->present && x->offset < y->offset + y->size &&
                y->offset < x->offset + x->size)
                return PP_ERR_CORRUPT;
        }
    }
    return PP_OK;
}

/* Checks that the sections the configuration implies are there with the
 * sizes it implies. */
static pp_status check_section_sizes(pp_model_file *file) {
    const pp_dims *d = &file->dims;
    const pp_section *s = file->section;
    const uint64_t vocab_bytes =
        pp_matrix_bytes(d->vocab_size, d->dim, d->group);

    if (!s[PP_SECTION_TOKENIZER].present || !s[PP_SECTION_NORMS].present ||
        !s[PP_SECTION_CHANNEL_STATS].present ||
        !s[PP_SECTION_TILE_DIRECTORY].present ||
        !s[PP_SECTION_EMBEDDING].present || !s[PP_SECTION_LAYERS].present)
        return PP_ERR_CORRUPT;
    if (s[PP_SECTION_CLASSIFIER].present == file->info.shared_classifier)
        return PP_ERR_CORRUPT;

    if (s[PP_SECTION_NORMS].size != 4 * (2 * d->n_layers + 1) * d->dim ||
        s[PP_SECTION_CHANNEL_STATS].size !=
            4 * d->n_layers * 3 * (d->dim + d->hidden_dim) ||
        s[PP_SECTION_TILE_DIRECTORY].size !=
            8 * d->n_layers * pp_parts_per_layer(d) ||
        s[PP_SECTION_EMBEDDING].size != vocab_bytes ||
        (s[PP_SECTION_CLASSIFIER].present &&
         s[PP_SECTION_CLASSIFIER].size != vocab_bytes) ||
        s[PP_SECTION_TOKENIZER].size > MAX_TOKENIZER_BYTES)
        return PP_ERR_CORRUPT;
    return PP_OK;
}

/* Size of directory entry `entry` of a layer. */
static uint64_t entry_bytes(const pp_dims *d, uint64_t entry) {
    uint64_t index;
    const pp_part part = pp_part_of_entry(d, entry, &index);
    return pp_part_bytes(d, part, index);
}

/* Checks directory entry `entry` (counting from the first layer) at
 * `offset`: aligned, inside LAYERS, after the previous part, which ended
 * at *end_of_previous. */
static int entry_valid(const pp_model_file *file, uint64_t entry,
                       uint64_t offset, uint64_t *end_of_previous) {
    const pp_dims *d = &file->dims;
    const pp_section *layers = &file->section[PP_SECTION_LAYERS];
    const uint64_t bytes = entry_bytes(d, entry % pp_parts_per_layer(d));
    if (offset % d->alignment != 0 || offset < *end_of_previous ||
        offset > layers->offset + layers->size ||
        bytes > layers->offset + layers->size - offset)
        return 0;
    *end_of_previous = offset + bytes;
    return 1;
}

pp_status pp_model_check_directory(const pp_model_file *file,
                                   const uint64_t *offsets) {
    const pp_dims *d = &file->dims;
    uint64_t end_of_previous = file->section[PP_SECTION_LAYERS].offset;
    for (uint64_t i = 0; i < d->n_layers * pp_parts_per_layer(d); i++)
        if (!entry_valid(file, i, offsets[i], &end_of_previous))
            return PP_ERR_CORRUPT;
    return PP_OK;
}

/* Every part must be aligned, inside LAYERS, after the previous one. */
static pp_status check_directory(const pp_source *source,
                                 const pp_model_file *file) {
    const pp_dims *d = &file->dims;
    const pp_section *dir = &file->section[PP_SECTION_TILE_DIRECTORY];
    const uint64_t count = d->n_layers * pp_parts_per_layer(d);
    uint64_t end_of_previous = file->section[PP_SECTION_LAYERS].offset;
    uint8_t buffer[512];

    for (uint64_t i = 0; i < count; i += sizeof buffer / 8) {
        const uint64_t n = count - i < sizeof buffer / 8 ? count - i
                                                         : sizeof buffer / 8;
        pp_status st = pp_source_read(source, dir->offset + 8 * i, buffer,
                                      (size_t)(8 * n));
        if (st != PP_OK)
            return st;

        for (uint64_t j = 0; j < n; j++)
            if (!entry_valid(file, i + j, pp_get_u64(buffer + 8 * j),
                             &end_of_previous))
                return PP_ERR_CORRUPT;
    }
    return PP_OK;
}

/* Checks the tokenizer section; it is small, so it is read in one piece
 * through a window of the source when the source is addressable, or in
 * streaming CRC pieces otherwise. */
static pp_status check_tokenizer(const pp_source *source, pp_model_file *file) {
    const pp_section *s = &file->section[PP_SECTION_TOKENIZER];
    pp_status st = check_section(source, s, 0);
    if (st != PP_OK)
        return st;
    /* NOTE: structural validation needs the bytes in one piece; with a read
     * source it happens at pp_init, once the section is in the arena. */
    if (!source->data)
        return PP_OK;
    return pp_tokenizer_validate_kind(
        (pp_tokenizer_kind)file->tokenizer_kind,
        (const uint8_t *)source->data + s->offset, (size_t)s->size,
        file->info.vocab_size, &file->tokenizer_text_bytes);
}

pp_status pp_model_parse(const pp_source *source, int verify_weights,
                         pp_model_file *file) {
    uint8_t h[PP_HEADER_BYTES];
    pp_status st;

    if (!source || !file || (!source->data && !source->read))
        return PP_ERR_INVALID_ARGUMENT;
    /* A short file that is not a pprt file at all gets BAD_MAGIC, not
     * TRUNCATED. */
    if (source->size < PP_HEADER_BYTES) {
        if (source->size < 8 || pp_source_read(source, 0, h, 8) != PP_OK ||
            memcmp(h, PP_MAGIC, 8) != 0)
            return PP_ERR_BAD_MAGIC;
        return PP_ERR_TRUNCATED;
    }
    if ((st = pp_source_read(source, 0, h, sizeof h)) != PP_OK)
        return st;

    if (memcmp(h + PP_H_MAGIC, PP_MAGIC, 8) != 0)
        return PP_ERR_BAD_MAGIC;
    if (pp_get_u32(h + PP_H_VERSION) != PP_VERSION)
        return PP_ERR_VERSION;
    if (pp_get_u32(h + PP_H_HEADER_BYTES) != PP_HEADER_BYTES)
        return PP_ERR_CORRUPT;
    if (pp_crc32(0, h, PP_H_CRC) != pp_get_u32(h + PP_H_CRC))
        return PP_ERR_CHECKSUM;

    memset(file, 0, sizeof *file);
    if ((st = parse_config(h, file)) != PP_OK ||
        (st = parse_sections(h, source->size, file)) != PP_OK ||
        (st = check_section_sizes(file)) != PP_OK)
        return st;

    if ((st = check_section(source, &file->section[PP_SECTION_TILE_DIRECTORY],
                            0)) != PP_OK ||
        (st = check_directory(source, file)) != PP_OK ||
        (st = check_section(source, &file->section[PP_SECTION_NORMS], 1)) !=
            PP_OK ||
        (st = check_section(source, &file->section[PP_SECTION_CHANNEL_STATS],
                            1)) != PP_OK ||
        (st = check_tokenizer(source, file)) != PP_OK)
        return st;

    if (verify_weights) {
        static const int weight_sections[] = {
            PP_SECTION_EMBEDDING, PP_SECTION_CLASSIFIER, PP_SECTION_LAYERS};
        for (size_t i = 0; i < sizeof weight_sections / sizeof *weight_sections;
             i++) {
            const pp_section *s = &file->section[weight_sections[i]];
            if (s->present && (st = check_section(source, s, 0)) != PP_OK)
                return st;
        }
    }

    /* An absent section has size 0. */
    file->info.weight_bytes = file->section[PP_SECTION_EMBEDDING].size +
                              file->section[PP_SECTION_CLASSIFIER].size +
                              file->section[PP_SECTION_LAYERS].size;
    return PP_OK;
}

pp_status pp_model_verify(const pp_source *source, pp_model_info *info) {
    pp_model_file file;
    pp_status st = pp_model_parse(source, 1, &file);
    if (st == PP_OK && info)
        *info = file.info;
    return st;
}

pp_status pp_model_probe(const pp_source *source, pp_model_info *info) {
    pp_model_file file;
    pp_status st = pp_model_parse(source, 0, &file);
    if (st == PP_OK && info)
        *info = file.info;
    return st;
}
