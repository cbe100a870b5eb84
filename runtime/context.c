/*
 * context.c - building a context in the caller's arena.
 *
 * pp_arena_size() and pp_init() run the same allocation sequence
 * (allocate_context), the first on a measuring arena, so the size it
 * reports is exact. Everything a forward call needs is allocated here, for
 * the maximum batch, tokens and context given in pp_options; forward calls
 * never allocate.
 */
#include <math.h>
#include <string.h>

#include "dispatch.h"
#include "internal.h"
#include "model.h"

#define DEFAULT_HISTORY_LEN 128

static pp_log_fn log_fn;
static void *log_user;

void pp_set_log(pp_log_fn fn, void *user) {
    log_fn = fn;
    log_user = user;
}

void pp_log(const char *message) {
    if (log_fn)
        log_fn(log_user, message);
}

const char *pp_status_string(pp_status status) {
    switch (status) {
    case PP_OK: return "success";
    case PP_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PP_ERR_BAD_MAGIC: return "not a pprt model file (bad magic)";
    case PP_ERR_VERSION: return "unsupported pprt file version (convert the model again with this pprt)";
    case PP_ERR_TRUNCATED: return "file is truncated";
    case PP_ERR_CORRUPT: return "file is corrupt (inconsistent header, sizes or offsets)";
    case PP_ERR_CHECKSUM: return "checksum mismatch";
    case PP_ERR_NON_FINITE: return "NaN or Inf in weights or activations";
    case PP_ERR_ARENA_TOO_SMALL: return "arena too small";
    case PP_ERR_CAPACITY: return "more sequences, tokens or context than planned";
    case PP_ERR_IO: return "weight source read failed";
    case PP_ERR_UNSUPPORTED: return "not supported by this build";
    case PP_ERR_STATE: return "call out of order";
    }
    return "unknown status";
}

/* Options with defaults applied, checked against the model. */
static pp_status resolve_options(const pp_model_info *info,
                                 const pp_options *in, pp_options *out) {
    if (!in)
        return PP_ERR_INVALID_ARGUMENT;
    *out = *in;
    if (out->max_context == 0)
        out->max_context = info->max_seq_len;
    if (out->history_len == 0)
        out->history_len = DEFAULT_HISTORY_LEN;
    if (out->isa && !*out->isa)
        out->isa = NULL;
    if (out->workers.n_threads < 1)
        out->workers.n_threads = 1;
    if (out->max_batch < 1 || out->max_tokens < 1 || out->max_context < 1 ||
        out->max_tokens > out->max_context || out->history_len < 1 ||
        out->max_batch > (1 << 16) || out->max_context > (1 << 24) ||
        out->history_len > (1 << 24) || out->workers.n_threads > 1024)
        return PP_ERR_INVALID_ARGUMENT;

    /* The largest buffers, in 64-bit arithmetic: a plan whose sizes do not
     * fit size_t (a 32-bit target) cannot be allocated. */
    const uint64_t layers = (uint64_t)info->n_layers;
    const uint64_t batch = (uint64_t)out->max_batch;
    const uint64_t tokens = batch * (uint64_t)out->max_tokens;
    const uint64_t ctx = (uint64_t)out->max_context;
    const uint64_t wide = (uint64_t)(info->dim > info->hidden_dim ? info->dim
                                                                  : info->hidden_dim);
    const uint64_t largest[] = {
        layers * batch * ctx * (uint64_t)(info->n_kv_heads * info->head_dim),
        batch * (uint64_t)info->n_heads * ctx,
        tokens * wide,
        layers * (uint64_t)out->history_len * (uint64_t)(info->dim + info->hidden_dim),
        out->tile_cache_bytes,
    };
    for (size_t i = 0; i < sizeof largest / sizeof *largest; i++)
        if (largest[i] > (uint64_t)(SIZE_MAX / 16))
            return PP_ERR_CAPACITY;
    return PP_OK;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Converts a dimension or count of the model. The loader bounds each one
 * (dim at most 2^16, vocabulary 2^22, ...) and the size query rejects a
 * plan whose buffers do not fit size_t, so the value fits even on a 32-bit
 * target. */
static size_t to_size(uint64_t value) { return (size_t)value; }

/*
 * Reserves every buffer of the context. With a measuring arena the pointers
 * stay NULL; the sequence of calls must not depend on whether it measures.
 */
static void allocate_context(pp_context *c, pp_arena *a,
                             const pp_model_file *file) {
    const pp_dims *d = &file->dims;
    const size_t dim = to_size(d->dim), hidden = to_size(d->hidden_dim);
    const size_t layers = to_size(d->n_layers), heads = to_size(d->n_heads);
    const size_t kv_dim = to_size(d->n_kv_heads * d->head_dim);
    const size_t head_dim = to_size(d->head_dim), group = to_size(d->group);
    const size_t tiles = to_size(pp_mlp_tile_count(d));
    const size_t per_layer = to_size(pp_parts_per_layer(d));
    const size_t batch = (size_t)c->max_batch, seq = (size_t)c->max_tokens;
    const size_t n = batch * seq;
    const size_t ctx = (size_t)c->max_context, hist = (size_t)c->history_len;
    const size_t wide = max_size(dim, hidden);
    /* Scale groups per quantized row: a whole row of dim, per-head chunks,
     * or per-tile chunks of the MLP activations. */
    const size_t groups = max_size(
        max_size(pp_group_count(dim, group),
                 heads * pp_group_count(head_dim, group)),
        tiles * pp_group_count(to_size(d->tile), group));
    const size_t F = sizeof(float);

    c->attn_norm = pp_arena_alloc(a, layers * dim, F, 64);
    c->mlp_norm = pp_arena_alloc(a, layers * dim, F, 64);
    c->final_norm = pp_arena_alloc(a, dim, F, 64);
    c->channel_stats = pp_arena_alloc(a, layers * 3 * (dim + hidden), F, 64);
    c->rope = pp_arena_alloc(a, ctx * head_dim, F, 64);
    c->weights.part_offset = pp_arena_alloc(a, layers * per_layer, 8, 8);
    c->weights.part_stamp = pp_arena_alloc(a, layers * per_layer, 4, 4);

    c->key_cache = pp_arena_alloc(a, layers * batch * ctx * kv_dim, F, 64);
    c->value_cache = pp_arena_alloc(a, layers * batch * ctx * kv_dim, F, 64);

    pp_scratch *s = &c->scratch;
    s->x = pp_arena_alloc(a, n * dim, F, 64);
    s->xb = pp_arena_alloc(a, n * dim, F, 64);
    s->q = pp_arena_alloc(a, n * dim, F, 64);
    s->k = pp_arena_alloc(a, n * kv_dim, F, 64);
    s->v = pp_arena_alloc(a, n * kv_dim, F, 64);
    s->att = pp_arena_alloc(a, n * dim, F, 64);
    s->out = pp_arena_alloc(a, n * dim, F, 64);
    s->hb = pp_arena_alloc(a, n * hidden, F, 64);
    s->gate_up = pp_arena_alloc(a, n * 2 * hidden, F, 64);
    s->xq = pp_arena_alloc(a, n * wide, 1, 64);
    s->xs = pp_arena_alloc(a, n * groups, F, 64);
    s->partials = pp_arena_alloc(a, PP_COLUMN_PARTITIONS * dim, F, 64);
    s->embed_block = pp_arena_alloc(a, pp_q8_block_bytes(dim, group), 1, 64);
    s->att_scores = pp_arena_alloc(a, batch * heads * ctx, F, 64);
    s->norms = pp_arena_alloc(a, n, F, 64);
    s->position_score = pp_arena_alloc(a, seq, F, 64);
    s->row_score = pp_arena_alloc(a, batch, F, 64);
    s->positions = pp_arena_alloc(a, seq, 4, 64);
    s->rows = pp_arena_alloc(a, batch, 4, 64);
    s->order = pp_arena_alloc(a, max_size(max_size(hidden, seq),
                                          max_size(batch, heads)), 4, 64);
    (void)wide;
    /* Also scores positions and rows when the probe is chosen. */
    const size_t scores = max_size(max_size(wide, heads), max_size(seq, batch));
    s->fused = pp_arena_alloc(a, scores, sizeof(double), 64);
    s->unit_score = pp_arena_alloc(a, scores, sizeof(double), 64);
    s->gathered = pp_arena_alloc(a, n * dim, F, 64);
    s->all_kept = pp_arena_alloc(a, max_size(heads, tiles), 1, 64);
    /* Job lists: per head or kv matrix, per MLP gate/up matrix, per
     * classifier slice of 256 rows; 64 bytes covers either job type. */
    const size_t jobs = max_size(heads + 2 * to_size(d->n_kv_heads),
                                 max_size(2 * tiles, to_size(d->vocab_size / 256 + 1)));
    s->jobs = pp_arena_alloc(a, jobs, 64, 64);

    pp_pruning *p = &c->pruning;
    p->head_kept = pp_arena_alloc(a, layers * heads, 1, 64);
    p->channel_kept = pp_arena_alloc(a, layers * hidden, 1, 64);
    p->tile_kept = pp_arena_alloc(a, layers * tiles, 1, 64);
    p->attn_history = pp_arena_alloc(a, layers * hist * dim, F, 64);
    p->mlp_history = pp_arena_alloc(a, layers * hist * hidden, F, 64);
    p->attn_bias = pp_arena_alloc(a, layers * dim, F, 64);
    p->mlp_bias = pp_arena_alloc(a, layers * dim, F, 64);
    pp_global_allocate(c, a, d);

    pp_calibration *cal = &c->calibration;
    cal->attn_sum = pp_arena_alloc(a, layers * dim, sizeof(double), 64);
    cal->attn_sumsq = pp_arena_alloc(a, layers * dim, sizeof(double), 64);
    cal->mlp_sum = pp_arena_alloc(a, layers * hidden, sizeof(double), 64);
    cal->mlp_sumsq = pp_arena_alloc(a, layers * hidden, sizeof(double), 64);
    cal->slot_count = pp_arena_alloc(a, hist, 8, 64);

    /* Read sources stream tiles through the cache; memory sources need none. */
    c->cache.enabled = !c->source->data;
    if (c->cache.enabled) {
        pp_cache_allocate(c, a, c->tile_cache_bytes);
        c->cache.prefetch = pp_arena_alloc(a, 2 * heads + to_size(d->n_kv_heads) + 2 * tiles,
                                           sizeof(pp_prefetch), 64);
    }
}

/* The context struct itself comes first; the tokenizer reserves its part
 * last because its size depends on the tokenizer section. */
static pp_status plan(pp_arena *a, pp_context *c, const pp_model_file *file,
                      const pp_source *source) {
    allocate_context(c, a, file);

    const pp_section *tok = &file->section[PP_SECTION_TOKENIZER];
    uint8_t *tok_copy = pp_arena_alloc(a, to_size(tok->size), 1, 16);
    if (a->failed)
        return PP_ERR_ARENA_TOO_SMALL;
    if (!a->base) {
        /* Measuring: the tokenizer sizes its tables from the section size. */
        pp_tokenizer measured;
        return pp_tokenizer_load_kind((pp_tokenizer_kind)file->tokenizer_kind,
                                 &measured, a,
                                 source->data ? (const uint8_t *)source->data + tok->offset
                                              : NULL,
                                 (size_t)tok->size, file->info.vocab_size,
                                 file->info.bos_id, file->info.eos_id);
    }
    {
        pp_status st = pp_source_read(source, tok->offset, tok_copy,
                                      (size_t)tok->size);
        if (st != PP_OK)
            return st;
    }
    pp_status st = pp_tokenizer_load_kind((pp_tokenizer_kind)file->tokenizer_kind,
                                     &c->tokenizer, a, tok_copy,
                                     (size_t)tok->size, file->info.vocab_size,
                                     file->info.bos_id, file->info.eos_id);
    if (a->failed)
        return PP_ERR_ARENA_TOO_SMALL;
    return st;
}

static pp_status parse_for(const pp_source *source, const pp_options *options,
                           pp_model_file *file, pp_options *resolved) {
    if (!source || !options)
        return PP_ERR_INVALID_ARGUMENT;
    pp_status st = pp_model_parse(source, 0, file);
    if (st != PP_OK)
        return st;
    return resolve_options(&file->info, options, resolved);
}

static void apply_options(pp_context *c, const pp_options *o,
                          const pp_source *source) {
    c->source = source;
    c->tile_cache_bytes = o->tile_cache_bytes;
    c->max_batch = o->max_batch;
    c->max_tokens = o->max_tokens;
    c->max_context = o->max_context;
    c->history_len = o->history_len;
    c->n_threads = o->workers.n_threads;
    c->workers = o->workers;
}

pp_status pp_arena_size(const pp_source *source, const pp_options *options,
                        size_t *bytes) {
    pp_model_file file;
    pp_options o;
    pp_status st = parse_for(source, options, &file, &o);
    if (st != PP_OK)
        return st;
    if (!bytes)
        return PP_ERR_INVALID_ARGUMENT;

    pp_arena a;
    pp_arena_init(&a, NULL, 0);
    pp_arena_alloc(&a, 1, sizeof(pp_context), 64);
    pp_context scratch_context;
    memset(&scratch_context, 0, sizeof scratch_context);
    apply_options(&scratch_context, &o, source);
    scratch_context.dims = file.dims;
    scratch_context.info = file.info;
    st = plan(&a, &scratch_context, &file, source);
    if (st != PP_OK)
        return st;
    *bytes = a.used;
    return PP_OK;
}

static void fill_rope(pp_context *c) {
    const int hd = c->info.head_dim;
    for (int pos = 0; pos < c->max_context; pos++) {
        float *row = c->rope + (size_t)pos * hd;
        for (int i = 0; i < hd; i += 2) {
            /* float arithmetic as in llama2.c's run.c, so angles match it */
            const float freq = 1.0f / powf(c->info.rope_theta, (float)i / (float)hd);
            const float angle = (float)pos * freq;
            row[i] = cosf(angle);
            row[i + 1] = sinf(angle);
        }
    }
}

/* Copies the small sections into the arena and records the weight layout. */
static pp_status load_model(pp_context *c, const pp_model_file *file,
                            const pp_source *source) {
    const pp_dims *d = &file->dims;
    const size_t dim = to_size(d->dim), layers = to_size(d->n_layers);
    const pp_section *norms = &file->section[PP_SECTION_NORMS];
    pp_status st;

    if ((st = pp_source_read(source, norms->offset, c->attn_norm,
                             4 * layers * dim)) != PP_OK ||
        (st = pp_source_read(source, norms->offset + 4 * layers * dim,
                             c->mlp_norm, 4 * layers * dim)) != PP_OK ||
        (st = pp_source_read(source, norms->offset + 8 * layers * dim,
                             c->final_norm, 4 * dim)) != PP_OK)
        return st;

    const pp_section *stats = &file->section[PP_SECTION_CHANNEL_STATS];
    if ((st = pp_source_read(source, stats->offset, c->channel_stats,
                             (size_t)stats->size)) != PP_OK)
        return st;

    /* The directory was validated; on a big-endian host this would need a
     * byte swap, which pp_get_u64 does. */
    const pp_section *dir = &file->section[PP_SECTION_TILE_DIRECTORY];
    const size_t per_layer = to_size(pp_parts_per_layer(d));
    const size_t count = layers * per_layer;
    if ((st = pp_source_read(source, dir->offset, c->weights.part_offset,
                             8 * count)) != PP_OK)
        return st;
    for (size_t i = 0; i < count; i++)
        c->weights.part_offset[i] =
            pp_get_u64((const uint8_t *)&c->weights.part_offset[i]);
    if ((st = pp_model_check_directory(file, c->weights.part_offset)) != PP_OK)
        return st;
    memset(c->weights.part_stamp, 0, 4 * count);

    pp_weights *w = &c->weights;
    w->data = source->data;
    w->layer_bytes = 0;
    for (size_t entry = 0; entry < per_layer; entry++) {
        uint64_t index;
        const pp_part part = pp_part_of_entry(d, entry, &index);
        w->layer_bytes += pp_part_bytes(d, part, index);
    }
    w->embedding_offset = file->section[PP_SECTION_EMBEDDING].offset;
    w->classifier_offset = file->info.shared_classifier
                               ? w->embedding_offset
                               : file->section[PP_SECTION_CLASSIFIER].offset;
    w->vocab_bytes = pp_matrix_bytes(d->vocab_size, d->dim, d->group);
    return PP_OK;
}

pp_status pp_init(pp_context **context, void *arena, size_t arena_bytes,
                  const pp_source *source, const pp_options *options) {
    pp_model_file file;
    pp_options o;
    pp_status st;

    if (!context || !arena)
        return PP_ERR_INVALID_ARGUMENT;
    if ((uintptr_t)arena % PP_ARENA_ALIGN != 0)
        return PP_ERR_INVALID_ARGUMENT;
    /* The file must be 4-byte aligned in memory, as pprt.h documents, so
     * that a word load from it cannot fault (it does on Cortex-M). */
    if (source && source->data && (uintptr_t)source->data % 4 != 0)
        return PP_ERR_INVALID_ARGUMENT;
    if ((st = parse_for(source, options, &file, &o)) != PP_OK)
        return st;
    if (options->flags & PP_VERIFY_WEIGHTS) {
        if ((st = pp_model_parse(source, 1, &file)) != PP_OK)
            return st;
    }

    pp_arena a;
    pp_arena_init(&a, arena, arena_bytes);
    pp_context *c = pp_arena_alloc(&a, 1, sizeof(pp_context), 64);
    if (!c)
        return PP_ERR_ARENA_TOO_SMALL;
    memset(c, 0, sizeof *c);
    c->info = file.info;
    c->dims = file.dims;
    apply_options(c, &o, source);

    if ((st = plan(&a, c, &file, source)) != PP_OK)
        return st;
    c->arena_used = a.used;

    if ((st = load_model(c, &file, source)) != PP_OK)
        return st;
    fill_rope(c);
    if (c->cache.enabled)
        pp_cache_reset(c);
    memset(c->scratch.all_kept, 1,
           max_size((size_t)c->info.n_heads, to_size(pp_mlp_tile_count(&c->dims))));
    char message[160];
    if (pp_kernels_select(o.isa, &c->kernels, message, sizeof message) != 0) {
        pp_log(message);
        return PP_ERR_UNSUPPORTED;
    }
    pp_calibration_reset(c);

    pp_prune_config defaults;
    pp_prune_defaults(&c->info, &defaults);
    defaults.method = PP_METHOD_DENSE;
    if ((st = pp_set_pruning(c, &defaults)) != PP_OK)
        return st;

    *context = c;
    return PP_OK;
}

const pp_model_info *pp_info(const pp_context *c) { return &c->info; }

const char *pp_isa(const pp_context *c) { return c->kernels.isa; }

size_t pp_arena_used(const pp_context *c) { return c->arena_used; }

void pp_stats_get(const pp_context *c, pp_stats *stats) {
    *stats = c->stats;
    stats->backing_bytes_read = c->cache.backing_bytes;
    stats->cache_hits = c->cache.hits;
    stats->cache_misses = c->cache.misses;
}

void pp_stats_reset(pp_context *c) {
    memset(&c->stats, 0, sizeof c->stats);
    c->cache.backing_bytes = 0;
    c->cache.hits = 0;
    c->cache.misses = 0;
}

/* Index of a part in part_offset and part_stamp. */
static size_t part_slot(const pp_context *c, int layer, pp_part part,
                        int index) {
    return (size_t)layer * to_size(pp_parts_per_layer(&c->dims)) +
           to_size(pp_part_entry(&c->dims, part, (uint64_t)index));
}

void pp_tile_part_range(const pp_context *c, int layer, pp_part part, int index,
                        uint64_t *file_offset, uint64_t *bytes) {
    *file_offset = c->weights.part_offset[part_slot(c, layer, part, index)];
    *bytes = pp_part_bytes(&c->dims, part, (uint64_t)index);
}

const uint8_t *pp_tile_part(pp_context *c, int layer, pp_part part, int index) {
    const pp_dims *d = &c->dims;
    uint64_t file_offset, bytes;
    pp_tile_part_range(c, layer, part, index, &file_offset, &bytes);

    const uint8_t *p;
    if (c->cache.enabled) {
        const uint64_t per_layer = pp_part_count(d, part);
        const pp_cache_span span = {file_offset, (size_t)bytes, 0};
        p = pp_cache_get(c, (int)part,
                         (int32_t)((uint64_t)layer * per_layer + (uint64_t)index),
                         &span, 1);
        if (!p)
            return NULL;
    } else {
        p = c->weights.data + file_offset;
    }

    /* Count each part once per call. */
    uint32_t *stamp = &c->weights.part_stamp[part_slot(c, layer, part, index)];
    if (*stamp != c->call_id) {
        *stamp = c->call_id;
        c->stats.weight_bytes_read += bytes;
    }
    return p;
}

void pp_parallel(pp_context *c, size_t n, void (*task)(void *, size_t),
                 void *arg) {
    if (c->workers.run && c->n_threads > 1 && n > 1) {
        c->workers.run(c->workers.pool, n, task, arg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        task(arg, i);
}

typedef struct heavy_run {
    pp_context *c;
    void (*task)(void *, size_t);
    void *arg;
    size_t reads;
} heavy_run;

/* Reads first, so that they start on some worker before the compute. */
static void heavy_task(void *arg, size_t index) {
    const heavy_run *h = arg;
    if (index < h->reads)
        pp_cache_prefetch_read(h->c, index);
    else
        h->task(h->arg, index - h->reads);
}

void pp_parallel_heavy(pp_context *c, size_t n, void (*task)(void *, size_t),
                       void *arg) {
    if (c->cache.n_prefetch == 0) {
        pp_parallel(c, n, task, arg);
        return;
    }
    heavy_run h = {c, task, arg, (size_t)c->cache.n_prefetch};
    pp_parallel(c, h.reads + n, heavy_task, &h);
    pp_cache_finish_prefetch(c);
}

pp_status pp_kept_get(const pp_context *c, int32_t layer, uint8_t *head_kept,
                      uint8_t *channel_kept) {
    if (!c || layer < 0 || layer >= c->info.n_layers)
        return PP_ERR_INVALID_ARGUMENT;
    if (head_kept)
        memcpy(head_kept, c->pruning.head_kept + (size_t)layer * c->info.n_heads,
               (size_t)c->info.n_heads);
    if (channel_kept)
        memcpy(channel_kept,
               c->pruning.channel_kept + (size_t)layer * c->info.hidden_dim,
               (size_t)c->info.hidden_dim);
    return PP_OK;
}

pp_status pp_tokenize(pp_context *c, const char *text, size_t length, int bos,
                      int32_t *tokens, int32_t capacity, int32_t *n_tokens) {
    if (!c || (!text && length) || !tokens || !n_tokens || capacity < 0)
        return PP_ERR_INVALID_ARGUMENT;
    return pp_tokenizer_encode(&c->tokenizer, text ? text : "", length, bos,
                               tokens, capacity, n_tokens);
}

const char *pp_token_text(const pp_context *c, int32_t previous, int32_t token,
                          size_t *length) {
    return pp_tokenizer_decode(&c->tokenizer, previous, token, length);
}
