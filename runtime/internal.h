/*
 * internal.h - the context structure and the functions the runtime's files
 * share. Not installed; tools and tests may include it for white-box checks.
 */
#ifndef PP_INTERNAL_H
#define PP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "format.h"
#include "kernels.h"
#include "pprt.h"
#include "tokenizer.h"

/* Weight access: a tile pointer plus its size, counted once per call. */
typedef struct pp_weights {
    const uint8_t *data;        /* the whole file (memory or mmap source) */
    uint64_t *part_offset;      /* [n_layers][parts_per_layer] */
    uint32_t *part_stamp;       /* [n_layers][parts_per_layer] call id of
                                   the last read of each part, for counting
                                   it once per call */
    uint64_t embedding_offset, classifier_offset;
    uint64_t vocab_bytes;  /* of the embedding and of the classifier */
    uint64_t layer_bytes;       /* all parts of one layer */
} pp_weights;

/* Calibration statistics for the static baselines (per layer, per input
 * channel of the attention output and MLP down projections). */
typedef struct pp_calibration {
    double *attn_sum, *attn_sumsq;  /* [n_layers][dim] */
    double *mlp_sum, *mlp_sumsq;    /* [n_layers][hidden] */
    uint64_t tokens;                /* calibration tokens seen */
    uint64_t *slot_count;           /* [history_len] windows seen per slot */
} pp_calibration;

/* Fixed ranges of units that a decode column product sums apart (forward.c). */
#define PP_COLUMN_PARTITIONS 4

/* Tile cache for read sources (tile_cache.c): one pool per kind of part,
 * numbered as pp_part (format.h), then one for classifier row blocks. */
enum {
    PP_POOL_Q = PP_PART_Q,
    PP_POOL_KV = PP_PART_KV,
    PP_POOL_O = PP_PART_O,
    PP_POOL_GATE_UP = PP_PART_GATE_UP,
    PP_POOL_DOWN = PP_PART_DOWN,
    PP_POOL_CLASSIFIER,
    PP_POOL_COUNT
};

typedef struct pp_cache_pool {
    uint8_t *slots;        /* [n_slots][slot_bytes] */
    uint64_t slot_bytes;
    int32_t n_slots, n_items;
    int32_t *slot_item;    /* [n_slots] item in the slot, or -1 */
    uint32_t *slot_used;   /* [n_slots] clock of the last use */
    uint32_t *slot_pin;    /* [n_slots] epoch that pinned it */
    int32_t *item_slot;    /* [n_items] slot of the item, or -1 */
    int32_t stream_slots;  /* misses one run may pin (see tile_cache.c) */
    int32_t run_misses;    /* misses pinned in epoch run_epoch */
    uint32_t run_epoch;
} pp_cache_pool;

/* A planned read of one part into a reserved slot. */
typedef struct pp_prefetch {
    int pool;
    int32_t slot;
    uint64_t offset, bytes;
    pp_status status;
} pp_prefetch;

typedef struct pp_tile_cache {
    int enabled;
    pp_cache_pool pool[PP_POOL_COUNT];
    uint32_t clock, epoch;
    uint64_t hits, misses, backing_bytes, prefetched;
    pp_prefetch *prefetch;  /* [one layer's parts] planned reads */
    int n_prefetch;
} pp_tile_cache;

/* A byte range of the file and where it goes in a cache slot. */
typedef struct pp_cache_span {
    uint64_t offset;
    size_t length, at;
} pp_cache_span;

void pp_cache_allocate(pp_context *c, pp_arena *a, uint64_t budget);
void pp_cache_reset(pp_context *c);
/* Ends the current operation: its parts may be evicted again. */
void pp_cache_unpin(pp_context *c);
/* Returns the slot holding `item` of pool `p`, reading the spans into it on
 * a miss; NULL when every slot is pinned (c->io_status stays PP_OK) or a
 * read failed (c->io_status tells why). */
const uint8_t *pp_cache_get(pp_context *c, int p, int32_t item,
                            const pp_cache_span *spans, int n_spans);
size_t pp_classifier_block_rows(void);
/* Reads from the context's read source, retrying transient PP_ERR_IO. */
pp_status pp_read_weights(pp_context *c, uint64_t offset, void *dst,
                          size_t length);

/* Prefetch of a layer's kept parts during the next heavy parallel run. */
void pp_cache_plan_prefetch(pp_context *c, int layer);
void pp_cache_prefetch_read(pp_context *c, size_t index);
void pp_cache_finish_prefetch(pp_context *c);

/* File offset and size of a tile part. */
void pp_tile_part_range(const pp_context *c, int layer, pp_part part, int index,
                        uint64_t *offset, uint64_t *bytes);

/* State of pp-global (prune_adaptive.c). */
typedef struct pp_global_state {
    double *attn_mean;          /* [n_layers][dim] mean of each o input channel */
    double *mlp_mean;           /* [n_layers][hidden] mean of each down input */
    double *attn_full_bias;     /* [n_layers][dim] W_o @ attn_mean, all heads */
    double *mlp_full_bias;      /* [n_layers][dim] W_down @ mlp_mean */
    int32_t *head_budget;       /* [n_layers] heads to prune */
    int32_t *mlp_budget;        /* [n_layers] MLP units (tiles or channels)
                                   to prune */
    double *unit_score;         /* [n_layers * (n_heads + hidden)] z-scores
                                   of the global ranking */
    int32_t *unit_order;        /* the same size: their ascending order */
} pp_global_state;

/* The Probe Pruning state. */
typedef struct pp_pruning {
    pp_prune_config config;
    int dynamic;                /* PP, full-batch probing or pp-global */
    int have_kept;              /* a kept set was chosen by a probe */
    uint8_t *head_kept;         /* [n_layers][n_heads] */
    uint8_t *channel_kept;      /* [n_layers][hidden] */
    uint8_t *tile_kept;         /* [n_layers][mlp tiles]: any channel kept */
    float *attn_history;        /* [n_layers][history_len][dim] */
    float *mlp_history;         /* [n_layers][history_len][hidden] */
    float *attn_bias;           /* [n_layers][dim] FLAP or pp-global
                                   compensation, or 0 */
    float *mlp_bias;            /* [n_layers][dim] */
    int have_bias;
    pp_global_state global;
} pp_pruning;

/* Scratch for one forward call of up to max_batch x max_tokens tokens. */
typedef struct pp_scratch {
    float *x;        /* [N][dim] residual stream */
    float *xb;       /* [N][dim] normalized input of a sublayer */
    float *q;        /* [N][dim] */
    float *k, *v;    /* [N][kv_dim] */
    float *att;      /* [N][dim] attention output, input of o */
    float *out;      /* [N][dim] output of o or down */
    float *hb;       /* [N][hidden] MLP activations silu(gate) * up */
    float *gate_up;  /* [N][2 hidden] tile t's gate then up outputs at
                        2 t T (T: the file's tile) */
    int8_t *xq;      /* [N][max(dim, hidden)] quantized activations */
    float *xs;       /* [N][max groups per row] their scales */
    float *partials; /* [PP_COLUMN_PARTITIONS][dim] partial sums of a decode
                        column product (forward.c) */
    uint8_t *embed_block;  /* one 8-row block of the embedding, read from a
                              read source */
    float *att_scores; /* [n_threads][max_context] */
    float *norms;    /* [N] token norms for probe selection */
    float *position_score; /* [max_tokens] */
    float *row_score;      /* [max_batch] */
    int32_t *positions;    /* [max_tokens] probe positions, sorted */
    int32_t *rows;         /* [max_batch] probe rows, sorted */
    int32_t *order;        /* [max(hidden, max_tokens, max_batch, n_heads)] */
    double *fused;         /* [max(dim, hidden)] F[c] */
    double *unit_score;    /* [max(hidden, n_heads)] */
    float *gathered;       /* [N][dim] probe tokens' residual */
    uint8_t *all_kept;     /* [max(n_heads, mlp tiles)] all ones */
    void *jobs;            /* work lists of the parallel products */
} pp_scratch;

struct pp_context {
    pp_model_info info;
    pp_dims dims;
    pp_kernels kernels;
    pp_workers workers;
    const pp_source *source;

    int32_t max_batch, max_tokens, max_context, history_len, n_threads;
    uint64_t tile_cache_bytes;
    size_t arena_used;

    /* Model data copied into the arena at init. */
    float *attn_norm;          /* [n_layers][dim] */
    float *mlp_norm;           /* [n_layers][dim] */
    float *final_norm;         /* [dim] */
    float *channel_stats;      /* CHANNEL_STATS section, see format.h */
    float *rope;               /* [max_context][head_dim] cos/sin pairs */
    pp_tokenizer tokenizer;
    pp_weights weights;

    float *key_cache, *value_cache;  /* [n_layers][max_batch][max_context][kv_dim] */
    int32_t cache_len;               /* positions filled in each sequence */

    pp_scratch scratch;
    pp_tile_cache cache;
    pp_status io_status;             /* first read error of the current call */
    pp_pruning pruning;
    pp_calibration calibration;
    pp_stats stats;
    uint32_t call_id;
};

/* Per-layer channel statistics from the file (see format.h). */
static inline const float *pp_o_column_stats(const pp_context *c, int layer) {
    const size_t per_layer = 3 * (size_t)(c->info.dim + c->info.hidden_dim);
    return c->channel_stats + (size_t)layer * per_layer;  /* [3][dim] */
}
static inline const float *pp_down_column_stats(const pp_context *c, int layer) {
    return pp_o_column_stats(c, layer) + 3 * (size_t)c->info.dim;  /* [3][hidden] */
}


/*
 * Returns a pointer to `part` of tile `index` (a head, kv head or MLP tile
 * number) of `layer`, and adds the part's bytes to weight_bytes_read the
 * first time a forward call asks for it. With a read source the part comes
 * through the tile cache and stays pinned until pp_cache_unpin; NULL means
 * the cache is full of pinned parts (run the pending work, unpin, ask
 * again) or, with c->io_status set, that the read failed. Not thread-safe:
 * called while the work lists are built, before the workers run.
 */
const uint8_t *pp_tile_part(pp_context *c, int layer, pp_part part, int index);

/* Runs task(arg, i) for i < n on the context's workers. */
void pp_parallel(pp_context *c, size_t n, void (*task)(void *, size_t),
                 void *arg);
/* The same for a long run: planned prefetch reads ride along as extra
 * tasks, so a free worker reads while the others compute. */
void pp_parallel_heavy(pp_context *c, size_t n, void (*task)(void *, size_t),
                       void *arg);

/* Logs through the hook installed with pp_set_log. */
void pp_log(const char *message);

/* Kept units per layer for a ratio (uniform methods). */
int pp_heads_to_prune(const pp_context *c, float ratio_l);
int pp_channels_to_prune(const pp_context *c, float ratio_l);
float pp_layer_ratio(const pp_context *c);

/* Probe Pruning: chooses the kept heads (attention) or channels (MLP) of
 * `layer` from a probe of the current batch, residual stream in scratch.x. */
void pp_probe_attention(pp_context *c, int layer, int n_seq, int n_tok,
                        int pos);
void pp_probe_mlp(pp_context *c, int layer, int n_seq, int n_tok, int pos);

/* Applies the history EMA from the full pass's activations. */
void pp_history_update_attention(pp_context *c, int layer, int n_seq,
                                 int n_tok, int pos);
void pp_history_update_mlp(pp_context *c, int layer, int n_seq, int n_tok,
                           int pos);

/* The attention sublayer of the full pass: o input left in scratch.att,
 * output added to scratch.x. */
void pp_attention_block(pp_context *c, int layer, int n_seq, int n_tok, int pos);

/* The sublayers on `n` tokens; used by both the full pass and the probe. */
void pp_attention_qkv(pp_context *c, int layer, const float *input, int n,
                      const uint8_t *heads, float *q, float *k, float *v);
void pp_mlp_gate_up(pp_context *c, int layer, const float *input, int n,
                    const uint8_t *tiles, const uint8_t *channels);

/* Selection helpers shared by the pruning methods. */
void pp_sort_indices(const double *score, int n, int descending,
                     int32_t *order);
void pp_select_lowest(const double *score, int n, int n_prune, int32_t *order,
                      uint8_t *kept);
void pp_refresh_tile_kept(pp_context *c, int layer);
/* Standardizes n scores to zero mean and unit sample standard deviation
 * (all zeros when the scores do not vary). */
void pp_standardize(double *x, int n);

/* Static baselines (prune_static.c). */
pp_status pp_static_select(pp_context *c);

/* pp-global (prune_adaptive.c): buffers, set-up at pp_set_pruning, the
 * selection after a probe has run (its activations in scratch.att or
 * scratch.hb), and the mean updates after the pruned pass. */
void pp_global_allocate(pp_context *c, pp_arena *a, const pp_dims *d);
int pp_global_config_valid(const pp_context *c, const pp_prune_config *config);
void pp_global_probe_size(const pp_context *c, int n_seq, int n_tok, int *rows,
                          int *positions);
pp_status pp_global_setup(pp_context *c);
void pp_global_select_heads(pp_context *c, int layer, int n_tok, int R, int P,
                            int pos);
void pp_global_select_channels(pp_context *c, int layer, int n_tok, int R,
                               int P, int pos);
void pp_global_update_attention(pp_context *c, int layer, int n_seq, int n_tok);
void pp_global_update_mlp(pp_context *c, int layer, int n_seq, int n_tok);

#endif /* PP_INTERNAL_H */
