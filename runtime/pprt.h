/*
 * pprt.h - the public interface of pprt, a C runtime for LLaMA-family models
 * on small CPUs with Probe Pruning (Le et al., "Probe Pruning: Accelerating
 * LLMs through Dynamic Pruning via Model-Probing", ICLR 2025).
 *
 * Model files are pprt's own tiled int8 format (written by `pprt convert`).
 * Every prunable unit (an MLP tile of channels, a query head) is one
 * contiguous tile in the file, so a pruned unit is never read.
 *
 * Memory: the library never allocates. The caller asks pp_arena_size() how
 * many bytes a configuration needs and passes one buffer of at least that
 * size to pp_init(). The context, the KV cache, the pruning statistics and
 * all scratch space live in that buffer, which the caller owns and must keep
 * alive (and unmoved) until it stops using the context.
 *
 * Errors: every function that can fail returns a pp_status. On failure the
 * context is left as it was before the call unless the function says
 * otherwise. Nothing here prints or exits; a port may install a log hook
 * with pp_set_log().
 *
 * Threads: one context must not be used from two threads at once. The
 * context may run its own work on the worker pool given in pp_options.
 */
#ifndef PPRT_H
#define PPRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pp_status {
    PP_OK = 0,
    PP_ERR_INVALID_ARGUMENT,  /* a NULL pointer, a count or value out of range */
    PP_ERR_BAD_MAGIC,         /* not a pprt model file */
    PP_ERR_VERSION,           /* a pprt file of an unsupported version */
    PP_ERR_TRUNCATED,         /* the file is shorter than its header says */
    PP_ERR_CORRUPT,           /* inconsistent sizes, offsets or dimensions */
    PP_ERR_CHECKSUM,          /* a section's CRC-32 does not match */
    PP_ERR_NON_FINITE,        /* NaN or Inf in weights or activations */
    PP_ERR_ARENA_TOO_SMALL,   /* the arena is smaller than pp_arena_size() */
    PP_ERR_CAPACITY,          /* more sequences, tokens or context than planned */
    PP_ERR_IO,                /* the weight source failed to read */
    PP_ERR_UNSUPPORTED,       /* valid input that this build cannot run */
    PP_ERR_STATE,             /* a call out of order (e.g. decode before prefill) */
} pp_status;

/* Returns a short English description of a status; never NULL. */
const char *pp_status_string(pp_status status);

/* ---- Weight sources ---------------------------------------------------- */

/*
 * Where the model file's bytes come from. Either `data` points at the whole
 * file in addressable memory (RAM, a const array linked into firmware, XIP
 * flash, an mmap), or `read` copies `length` bytes at `offset` into `dst`
 * (pread, an SPI flash driver). The source must outlive the context.
 */
typedef struct pp_source {
    const void *data;  /* the whole file, 4-byte aligned (64 is best), or
                          NULL to use `read` */
    uint64_t size;     /* file size in bytes */
    pp_status (*read)(void *user, uint64_t offset, void *dst, size_t length);
    void *user;        /* passed to `read` */
} pp_source;

/* ---- Model information ------------------------------------------------- */

typedef struct pp_model_info {
    int32_t dim;          /* residual width */
    int32_t hidden_dim;   /* MLP width (channels) */
    int32_t n_layers;
    int32_t n_heads;      /* query heads */
    int32_t n_kv_heads;   /* key/value heads; divides n_heads */
    int32_t head_dim;     /* dim / n_heads */
    int32_t vocab_size;
    int32_t max_seq_len;  /* context length the model was trained for */
    int32_t tile;         /* MLP channels per tile in the file */
    int32_t group;        /* int8 quantization group (values per scale) */
    int32_t alignment;    /* tile alignment in bytes */
    int32_t bos_id, eos_id;
    int32_t shared_classifier;  /* 1: the classifier is the embedding */
    int32_t synthetic;          /* 1: random weights from `pprt synth` */
    float rope_theta;
    float norm_eps;
    uint64_t weight_bytes;      /* bytes of all int8 weights and scales */
} pp_model_info;

/*
 * Reads and validates the file header, section table and tile directory
 * (not the weights) and fills `info`. Needs no arena. Returns PP_ERR_* for a
 * file that is not a valid pprt model.
 */
pp_status pp_model_probe(const pp_source *source, pp_model_info *info);

/* pp_model_probe, then the CRC-32 of every weight section (reads the whole
 * file once). PP_ERR_CHECKSUM names damaged weights. */
pp_status pp_model_verify(const pp_source *source, pp_model_info *info);

/* ---- Context ----------------------------------------------------------- */

/*
 * A pool of worker threads that the context may run work on. `run` calls
 * task(arg, i) for every i in [0, n_tasks), in any order and on any
 * thread, and returns when all calls have returned. Results never depend on
 * how tasks are spread over threads. NULL runs everything on the caller.
 */
typedef struct pp_workers {
    void (*run)(void *pool, size_t n_tasks,
                void (*task)(void *arg, size_t index), void *arg);
    void *pool;
    int n_threads;  /* threads `run` may use, >= 1; sizes per-thread scratch */
} pp_workers;

/* Flags for pp_options.flags. */
enum {
    PP_VERIFY_WEIGHTS = 1 << 0,  /* check the CRC-32 of the weight sections
                                    at init (reads the whole file once) */
};

typedef struct pp_options {
    int32_t max_batch;      /* sequences per forward call, >= 1 */
    int32_t max_tokens;     /* tokens per sequence per forward call, >= 1 */
    int32_t max_context;    /* KV cache positions per sequence, >= max_tokens;
                               0: the model's max_seq_len */
    int32_t history_len;    /* positions of Probe Pruning history; positions
                               at or past it share the last slot. 0: 128 */
    uint32_t flags;         /* PP_VERIFY_WEIGHTS */
    uint64_t tile_cache_bytes; /* tile cache for a source without `data`
                                  (ignored otherwise), in bytes; at least a
                                  few tiles, best the kept set of a decode
                                  step (about (1 - ratio) of the weights) */
    const char *isa;        /* kernel variant: NULL for the best this CPU
                               runs, or "scalar", "avx2", "vnni", "neon",
                               "dotprod"; init fails with PP_ERR_UNSUPPORTED
                               if the CPU lacks it */
    pp_workers workers;     /* n_threads 0 is treated as 1 */
} pp_options;

typedef struct pp_context pp_context;

/*
 * Computes the exact arena size for `options` on the model in `source`, in
 * bytes. pp_init() succeeds with exactly this many bytes and fails with
 * PP_ERR_ARENA_TOO_SMALL with one byte less.
 */
pp_status pp_arena_size(const pp_source *source, const pp_options *options,
                        size_t *bytes);

/*
 * Loads and validates the model and builds a context in `arena`, which
 * must be 16-byte aligned (PP_ERR_INVALID_ARGUMENT otherwise). The arena
 * belongs to the context until the caller stops using it; there is no free
 * function.
 */
pp_status pp_init(pp_context **context, void *arena, size_t arena_bytes,
                  const pp_source *source, const pp_options *options);

const pp_model_info *pp_info(const pp_context *context);

/* The kernel variant in use, e.g. "scalar", "avx2", "neon". */
const char *pp_isa(const pp_context *context);

/* Arena bytes in use after init (equal to the size pp_arena_size reported). */
size_t pp_arena_used(const pp_context *context);

/* ---- Pruning ----------------------------------------------------------- */

typedef enum pp_method {
    PP_METHOD_DENSE = 0,  /* every weight runs */
    PP_METHOD_PP,         /* Probe Pruning: probe, score, prune per batch */
    PP_METHOD_FULLPROBE,  /* the whole batch is the probe, no history */
    PP_METHOD_WANDASP,    /* static: sum_d |W[d,c]| * rms(x_c) */
    PP_METHOD_FLAP,       /* static: fluctuation, global ratio, bias */
    PP_METHOD_PP_GLOBAL,  /* Probe Pruning with per-layer budgets from a
                             global ranking and bias compensation */
} pp_method;

typedef struct pp_prune_config {
    pp_method method;
    float ratio;            /* mean fraction of prunable units removed, [0, 1) */
    int32_t skip_layers;    /* the first layers that are never pruned */
    float probe_positions;  /* fraction of positions in the probe, (0, 1] */
    float probe_rows;       /* fraction of sequences in the probe, (0, 1] */
    int32_t min_probe_positions;  /* at least this many positions (>= 1) */
    int32_t min_probe_rows;       /* at least this many sequences (>= 1) */
    float ema;              /* history momentum in [0, 1]; 1 freezes it */
    int32_t round_to;       /* MLP channels pruned per layer are a multiple
                               of this; 0: the file's tile */
    int32_t whole_tiles;    /* 1: choose whole MLP tiles (scored as the L2
                               norm of their channels) so pruned tiles are
                               never read; 0: choose single channels */
    int32_t use_history;    /* 0: fuse nothing, score the probe alone */
    float fix_ratio;        /* < 0: dynamic fusion weight p / (p + g);
                               otherwise this fixed weight in [0, 1] */

    /* PP_METHOD_PP_GLOBAL only; the other methods ignore these. Each
     * switches off one part of the method (see prune_adaptive.c). */
    int32_t global_budget;      /* 1: heads and MLP units pruned per layer
                                   from one ranking of z-scored history
                                   scores over all pruned layers, removing
                                   at most the parameters the uniform
                                   methods remove; 0: the uniform counts */
    int32_t bias_compensation;  /* 1: add the pruned channels' mean
                                   contribution to the o and down outputs,
                                   and score the variance about the mean */
    int32_t history_fill;       /* 1: the call's positions outside the probe
                                   add their history to the scores */
    float probe_share;          /* in (0, 1]: the probe is this share of the
                                   call's tokens, whole positions of one row
                                   first, then more rows (probe_positions,
                                   probe_rows and min_probe_positions are
                                   then unused); 0: pp's probe rules */
    int32_t probe_min_tokens;   /* with probe_share: at least this many
                                   probe tokens, or all of a smaller call */
    float history_rows;         /* >= 0: the history weighs as this many
                                   probe rows, w = R / (R + history_rows);
                                   < 0: w = p / (p + g) as in pp. A
                                   fix_ratio >= 0 overrides both */
} pp_prune_config;

/* Fills `config` with the defaults for `info` (Probe Pruning at ratio 0). */
void pp_prune_defaults(const pp_model_info *info, pp_prune_config *config);

/*
 * Sets the pruning method. Static methods and Probe Pruning's history need
 * calibration (pp_calibrate) first; PP without calibration runs as if
 * use_history were 0. Resets the kept set.
 */
pp_status pp_set_pruning(pp_context *context, const pp_prune_config *config);

/*
 * Runs a dense pass over `n_seq` x `n_tok` calibration tokens (row-major,
 * each row starting at position 0) and adds their activation statistics to
 * the history and to the static baselines' statistics. Call it for every
 * calibration batch, then pp_set_pruning(). Clears the KV cache.
 */
pp_status pp_calibrate(pp_context *context, const int32_t *tokens,
                       int32_t n_seq, int32_t n_tok);

/* Forgets all calibration statistics. */
void pp_calibration_reset(pp_context *context);

/* ---- Forward pass ------------------------------------------------------ */

/* Flags for pp_forward. */
enum {
    PP_PROBE = 1 << 0,      /* probe this batch and choose a new kept set
                               (dynamic methods); without it the current
                               kept set is reused */
    PP_NO_LOGITS = 1 << 1,  /* skip the classifier */
    PP_LAST_LOGITS = 1 << 2,/* logits of each sequence's last token only */
    PP_NO_HISTORY_UPDATE = 1 << 3, /* do not apply the EMA to the history */
};

/*
 * Runs `n_seq` sequences of `n_tok` tokens each (tokens row-major) starting
 * at position `pos` of every sequence, appending to the KV cache. Logits go
 * to `logits` (caller-owned): n_seq * n_tok * vocab floats, or n_seq * vocab
 * with PP_LAST_LOGITS, row-major by sequence then token. pos == 0 starts new
 * sequences. With a dynamic method, PP_PROBE chooses the kept set from this
 * batch; without it the kept set from the last probed call is used (all
 * units if there was none).
 */
pp_status pp_forward(pp_context *context, const int32_t *tokens,
                     int32_t n_seq, int32_t n_tok, int32_t pos,
                     uint32_t flags, float *logits);

/* ---- Statistics -------------------------------------------------------- */

typedef struct pp_stats {
    uint64_t weight_bytes_read;   /* weight bytes the passes touched: each
                                     distinct tile once per layer and call,
                                     classifier, embedding rows, norms */
    uint64_t weight_bytes_dense;  /* the same for a dense run of that work */
    uint64_t macs_dense;          /* multiply-accumulates a dense run needs */
    uint64_t macs_probe;          /* spent on probes */
    uint64_t macs_run;            /* spent on the pruned passes */
    uint64_t backing_bytes_read;  /* bytes the read source delivered (tile
                                     cache misses); 0 for memory sources */
    uint64_t cache_hits, cache_misses;  /* tile parts found / read */
    uint64_t forward_calls;
    uint64_t tokens;
} pp_stats;

void pp_stats_get(const pp_context *context, pp_stats *stats);
void pp_stats_reset(pp_context *context);

/*
 * The current kept set of layer `layer`: head_kept[h] and channel_kept[c]
 * are 1 for kept heads / MLP channels, 0 for pruned ones. Either pointer may
 * be NULL. Arrays have n_heads and hidden_dim entries.
 */
pp_status pp_kept_get(const pp_context *context, int32_t layer,
                      uint8_t *head_kept, uint8_t *channel_kept);

/* ---- Tokenizer and sampler --------------------------------------------- */

/*
 * Encodes UTF-8 text with the model's tokenizer (llama2.c BPE: a leading
 * space, byte fallback, greedy merges by score). With `bos`, the first id
 * is BOS. `tokens` is also the working buffer, so `capacity` must be at
 * least length + 3 (one id per byte, the space and BOS); otherwise returns
 * PP_ERR_CAPACITY with *n_tokens = length + 3. Bytes that are not valid
 * UTF-8 become byte tokens. Models converted from a GGUF `gpt2` tokenizer
 * use byte-level BPE instead: no leading space, the text split by the
 * model's pre-tokenizer, every byte a token, merges by rank.
 */
pp_status pp_tokenize(pp_context *context, const char *text, size_t length,
                      int bos, int32_t *tokens, int32_t capacity,
                      int32_t *n_tokens);

/*
 * Returns the text of token `token` following `previous` (llama2.c rules: a
 * leading space after BOS is dropped, <0xNN> byte tokens become the byte;
 * a byte-level BPE token is its bytes, unchanged after BOS too).
 * Sets *length; the text is not NUL-terminated and lives in the context.
 * Returns NULL for an id out of range.
 */
const char *pp_token_text(const pp_context *context, int32_t previous,
                          int32_t token, size_t *length);

typedef struct pp_sampler {
    float temperature;  /* 0: greedy (argmax) */
    float top_p;        /* nucleus mass in (0, 1]; 1 samples from all */
    uint64_t state;     /* generator state; set from a seed with pp_sampler_init */
} pp_sampler;

void pp_sampler_init(pp_sampler *sampler, float temperature, float top_p,
                     uint64_t seed);

/*
 * Picks a token id from `logits` (n floats): the argmax (lowest index on
 * ties) when temperature is 0, else a sample from softmax(logits / T),
 * restricted to the smallest set of tokens whose mass reaches top_p when
 * 0 < top_p < 1. `scratch` (4-byte aligned, 8 * n bytes) is used only for
 * top-p. `logits` may be overwritten with probabilities. Returns -1 for a
 * NULL sampler or logits, n <= 0, or top-p without scratch.
 */
int32_t pp_sample(pp_sampler *sampler, float *logits, int32_t n,
                  void *scratch);

/* ---- Logging ----------------------------------------------------------- */

typedef void (*pp_log_fn)(void *user, const char *message);

/* Installs a process-wide log hook; NULL (the default) discards messages. */
void pp_set_log(pp_log_fn fn, void *user);

#ifdef __cplusplus
}
#endif

#endif /* PPRT_H */
