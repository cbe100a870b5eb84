/*
 * perplexity.h - the scoring loops of `pprt perplexity`, shared with the
 * tests so that they measure what the command reports.
 *
 * Two conventions:
 *   pprt       the evaluation protocol of text.h: stories split at blank
 *              lines, each with its own BOS; windows of S tokens in batches
 *              of B; every position scored.
 *   llama.cpp  the convention of llama.cpp's llama-perplexity: the whole
 *              file is one text with one leading BOS, cut into chunks of
 *              n_ctx tokens whose first token is replaced by BOS; only the
 *              second half of each chunk is scored.
 */
#ifndef PP_PERPLEXITY_H
#define PP_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

#include "pprt.h"
#include "text.h"

/* Negative log-likelihood summed over scored predictions. */
typedef struct pp_nll_total {
    double nll;    /* sum of -log p(target), in nats */
    size_t count;  /* predictions scored */
} pp_nll_total;

/* Called after each batch with the batches done, the batches planned and
 * the running total. */
typedef void (*pp_progress_fn)(void *user, size_t done, size_t total,
                               const pp_nll_total *running);

/* How the pprt convention runs the windows. */
typedef struct pp_window_plan {
    int seq_len;      /* S: tokens per window */
    int batch;        /* B: windows per forward call */
    size_t batches;   /* batches to score, each complete */
    int generate;     /* 0: one probed forward per batch; 1: a probed prompt
                         of prompt_len tokens, then one decode step per token */
    int prompt_len;   /* generate: 1 <= prompt_len < seq_len */
    int reprobe;      /* generate: re-probe every N decoded tokens, 0: never */
} pp_window_plan;

/*
 * Scores the first plan->batches batches of `stream` (pprt convention) on
 * `ctx`, whose max_batch and max_tokens must cover B and S. Adds to *total.
 * Returns 0, or -1 with a message in err when the stream has fewer batches,
 * the prompt length is invalid or a forward call fails.
 */
int pp_score_windows(pp_context *ctx, const pp_token_stream *stream,
                     const pp_window_plan *plan, pp_nll_total *total,
                     pp_progress_fn progress, void *user, char *err,
                     size_t err_size);

/*
 * Tokenizes a whole file the way llama-perplexity does: one text, BOS
 * first, the dummy-prefix space, and one trailing newline removed. Fills
 * `stream` (malloc'd ids). Returns 0, or -1 with a message in err.
 */
int pp_tokenize_whole_text(pp_context *ctx, const char *text, size_t size,
                           pp_token_stream *stream, char *err, size_t err_size);

/* Returns the number of complete chunks of n_ctx tokens in n_tokens; a
 * partial last chunk is not scored. */
size_t pp_llamacpp_chunks(size_t n_tokens, int n_ctx);

/*
 * Scores the first `chunks` chunks of `stream` (llama.cpp convention),
 * `batch` chunks per forward call (the last call may hold fewer). In each
 * chunk, position j for j from n_ctx / 2 to n_ctx - 2 predicts token j + 1.
 * `ctx` must cover `batch` sequences of n_ctx tokens. Adds to *total.
 * Returns 0, or -1 with a message in err.
 */
int pp_score_llamacpp(pp_context *ctx, const pp_token_stream *stream,
                      int n_ctx, int batch, size_t chunks, pp_nll_total *total,
                      pp_progress_fn progress, void *user, char *err,
                      size_t err_size);

#endif /* PP_PERPLEXITY_H */
