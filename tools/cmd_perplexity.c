/*
 * pprt perplexity: the evaluation protocol on a text file.
 *
 * Batch mode: every batch of B windows of S tokens runs as one forward
 * call (probed when the method is dynamic), and every position is scored.
 * Generation mode: each window's first P tokens run as a probed prompt; the
 * rest are fed one decode step at a time with the kept set fixed, re-probing
 * every N generated tokens from the last N tokens.
 *
 * --scoring llama.cpp scores the way llama.cpp's llama-perplexity does, so
 * that pprt's numbers can be compared with a GGUF of the same model:
 *   - The file is read whole, one trailing '\n' is removed, and the text is
 *     tokenized once with special tokens on. For a SentencePiece (llama)
 *     vocabulary that means one BOS and a space before the first word,
 *     which is pprt's dummy-prefix space.
 *   - n_chunk = n_tokens / n_ctx. The tokens after the last complete chunk
 *     are not scored, and fewer than 2 * n_ctx tokens is an error.
 *   - Each chunk runs as a fresh sequence at positions 0..n_ctx-1 with its
 *     first token replaced by BOS. Only the second half is scored: with
 *     first = n_ctx / 2, position j for j = first .. n_ctx - 2 predicts
 *     token j + 1, so each chunk gives n_ctx - 1 - first predictions.
 *   - PPL = exp(sum of NLL / count) over all chunks.
 * NOTE: these rules are llama.cpp's perplexity example and -f option as
 * recalled, not checked against its source or a llama.cpp run here. Its
 * SentencePiece merges also work on text, so a code point missing from
 * the vocabulary may merge there while pprt keeps it as byte tokens.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "perplexity.h"
#include "text.h"

static const char *help =
    "usage: pprt perplexity -m MODEL.ppm -f TEXT [options]\n"
    "  -f FILE            evaluation text (stories separated by blank lines)\n"
    "  --ctx S            tokens per window (default 128)\n"
    "  --batch B          windows per batch (default 8)\n"
    "  --batches N        evaluate the first N batches (default: all)\n"
    "  --mode batch|generate\n"
    "                     score windows in one pass (default), or as a prompt\n"
    "                     of --prompt-len tokens followed by decode steps\n"
    "  --prompt-len P     prompt tokens in generate mode (default 32)\n"
    "  --reprobe N        generate mode: re-probe every N decoded tokens\n"
    "                     (default 0: never)\n"
    "  --scoring pprt|llama.cpp\n"
    "                     pprt (default): per-story BOS, every position scored;\n"
    "                     llama.cpp: llama-perplexity's convention, the file as\n"
    "                     one text cut into chunks of --ctx tokens, each\n"
    "                     starting with BOS, second half scored (batch mode\n"
    "                     only; --batches N scores the first N * B chunks)\n"
    "  --json             print one JSON object on stdout\n";

/* Returns -log softmax(row)[target] for one row of `vocab` logits. */
static double token_nll(const float *row, int vocab, int32_t target) {
    float max = row[0];
    for (int v = 1; v < vocab; v++)
        if (row[v] > max)
            max = row[v];
    double sum = 0.0;
    for (int v = 0; v < vocab; v++)
        sum += exp((double)row[v] - max);
    return log(sum) + max - row[target];
}

/* Adds the NLL of n rows of logits against targets[j * target_stride]. */
static void add_nll(const float *logits, const int32_t *targets, size_t n,
                    int vocab, size_t target_stride, pp_nll_total *total) {
    for (size_t j = 0; j < n; j++)
        total->nll += token_nll(logits + j * (size_t)vocab, vocab,
                                targets[j * target_stride]);
    total->count += n;
}

/* ---- The pprt convention ------------------------------------------------- */

/* Runs one batch as a probed prompt followed by decode steps. `inputs` is
 * [B][S], `batch` the same windows with their last target, [B][S + 1]. */
static pp_status score_generated(pp_context *ctx, const pp_window_plan *plan,
                                 const int32_t *batch, const int32_t *inputs,
                                 int32_t *step, float *logits,
                                 pp_nll_total *total, int *failed_at) {
    const int S = plan->seq_len, B = plan->batch;
    const int P = plan->prompt_len, reprobe = plan->reprobe;
    const int vocab = pp_info(ctx)->vocab_size;

    /* The prompt: positions [0, P), scored from the prefill. */
    int32_t *prompt = step;
    for (int b = 0; b < B; b++)
        memcpy(prompt + (size_t)b * P, inputs + (size_t)b * S,
               (size_t)P * sizeof(int32_t));
    *failed_at = -1;
    pp_status st = pp_forward(ctx, prompt, B, P, 0, PP_PROBE, logits);
    if (st != PP_OK)
        return st;
    for (int b = 0; b < B; b++)
        add_nll(logits + (size_t)b * P * vocab, batch + (size_t)b * (S + 1) + 1,
                (size_t)P, vocab, 1, total);

    /* Decode steps: position p predicts p + 1. */
    for (int p = P; p < S; p++) {
        const int decoded = p - P + 1;
        if (reprobe > 0 && decoded % reprobe == 0 && p + 1 >= reprobe) {
            const int first = p + 1 - reprobe;
            for (int b = 0; b < B; b++)
                memcpy(step + (size_t)b * reprobe, inputs + (size_t)b * S + first,
                       (size_t)reprobe * sizeof(int32_t));
            st = pp_forward(ctx, step, B, reprobe, first,
                            PP_PROBE | PP_LAST_LOGITS, logits);
        } else {
            for (int b = 0; b < B; b++)
                step[b] = inputs[(size_t)b * S + p];
            st = pp_forward(ctx, step, B, 1, p, PP_LAST_LOGITS, logits);
        }
        if (st != PP_OK) {
            *failed_at = p;
            return st;
        }
        add_nll(logits, batch + p + 1, (size_t)B, vocab, (size_t)S + 1, total);
    }
    return PP_OK;
}

int pp_score_windows(pp_context *ctx, const pp_token_stream *stream,
                     const pp_window_plan *plan, pp_nll_total *total,
                     pp_progress_fn progress, void *user, char *err,
                     size_t err_size) {
    const int S = plan->seq_len, B = plan->batch;
    const int vocab = pp_info(ctx)->vocab_size;
    int rc = -1;

    if (plan->batches > pp_stream_batches(stream, S, B)) {
        snprintf(err, err_size, "%zu batches requested but the text has %zu",
                 plan->batches, pp_stream_batches(stream, S, B));
        return -1;
    }
    if (plan->generate && (plan->prompt_len < 1 || plan->prompt_len >= S)) {
        snprintf(err, err_size, "invalid prompt length %d: must be in [1, %d)",
                 plan->prompt_len, S);
        return -1;
    }

    int32_t *batch = malloc((size_t)B * (S + 1) * sizeof(int32_t));
    int32_t *inputs = malloc((size_t)B * S * sizeof(int32_t));
    int32_t *step = malloc((size_t)B * (S + 1) * sizeof(int32_t));
    float *logits = malloc((size_t)B * S * (size_t)vocab * sizeof(float));
    if (!batch || !inputs || !step || !logits) {
        snprintf(err, err_size, "out of memory for %d x %d logits", B, S);
        goto done;
    }

    for (size_t i = 0; i < plan->batches; i++) {
        pp_stream_batch(stream, S, B, i, batch);
        for (int b = 0; b < B; b++)
            memcpy(inputs + (size_t)b * S, batch + (size_t)b * (S + 1),
                   (size_t)S * sizeof(int32_t));

        if (!plan->generate) {
            const pp_status st = pp_forward(ctx, inputs, B, S, 0, PP_PROBE, logits);
            if (st != PP_OK) {
                snprintf(err, err_size, "batch %zu failed: %s", i + 1,
                         pp_status_string(st));
                goto done;
            }
            for (int b = 0; b < B; b++)
                add_nll(logits + (size_t)b * S * vocab,
                        batch + (size_t)b * (S + 1) + 1, (size_t)S, vocab, 1,
                        total);
        } else {
            int failed_at;
            const pp_status st = score_generated(ctx, plan, batch, inputs, step,
                                                 logits, total, &failed_at);
            if (st != PP_OK && failed_at < 0) {
                snprintf(err, err_size, "batch %zu prompt failed: %s", i + 1,
                         pp_status_string(st));
                goto done;
            }
            if (st != PP_OK) {
                snprintf(err, err_size, "batch %zu step %d failed: %s", i + 1,
                         failed_at, pp_status_string(st));
                goto done;
            }
        }
        if (progress)
            progress(user, i + 1, plan->batches, total);
    }
    rc = 0;

done:
    free(batch);
    free(inputs);
    free(step);
    free(logits);
    return rc;
}

/* ---- The llama.cpp convention -------------------------------------------- */

int pp_tokenize_whole_text(pp_context *ctx, const char *text, size_t size,
                           pp_token_stream *stream, char *err, size_t err_size) {
    memset(stream, 0, sizeof *stream);

    /* llama.cpp's -f drops one trailing newline of the file. */
    if (size > 0 && text[size - 1] == '\n')
        size--;
    if (size > (size_t)INT32_MAX - 3) {
        snprintf(err, err_size, "the text has %zu bytes; at most %d fit one "
                 "tokenizer call", size, INT32_MAX - 3);
        return -1;
    }

    const int32_t capacity = (int32_t)size + 3;
    int32_t *ids = malloc((size_t)capacity * sizeof(int32_t));
    if (!ids) {
        snprintf(err, err_size, "out of memory for %d token ids", capacity);
        return -1;
    }
    int32_t n = 0;
    const pp_status st = pp_tokenize(ctx, text, size, 1, ids, capacity, &n);
    if (st != PP_OK) {
        snprintf(err, err_size, "tokenizing the text failed: %s",
                 pp_status_string(st));
        free(ids);
        return -1;
    }

    int32_t *shrunk = realloc(ids, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    stream->ids = shrunk ? shrunk : ids;
    stream->n = (size_t)n;
    return 0;
}

size_t pp_llamacpp_chunks(size_t n_tokens, int n_ctx) {
    return n_ctx > 0 ? n_tokens / (size_t)n_ctx : 0;
}

int pp_score_llamacpp(pp_context *ctx, const pp_token_stream *stream,
                      int n_ctx, int batch, size_t chunks, pp_nll_total *total,
                      pp_progress_fn progress, void *user, char *err,
                      size_t err_size) {
    const int vocab = pp_info(ctx)->vocab_size;
    const int32_t bos = pp_info(ctx)->bos_id;
    const int first = n_ctx / 2;
    int rc = -1;

    if (n_ctx < 2 || batch < 1) {
        snprintf(err, err_size, "invalid chunk size %d or batch %d", n_ctx, batch);
        return -1;
    }
    if (chunks > pp_llamacpp_chunks(stream->n, n_ctx)) {
        snprintf(err, err_size, "%zu chunks requested but the text has %zu",
                 chunks, pp_llamacpp_chunks(stream->n, n_ctx));
        return -1;
    }

    int32_t *inputs = malloc((size_t)batch * n_ctx * sizeof(int32_t));
    float *logits = malloc((size_t)batch * n_ctx * (size_t)vocab * sizeof(float));
    if (!inputs || !logits) {
        snprintf(err, err_size, "out of memory for %d x %d logits", batch, n_ctx);
        goto done;
    }

    const size_t calls = (chunks + (size_t)batch - 1) / (size_t)batch;
    for (size_t call = 0; call < calls; call++) {
        const size_t begin = call * (size_t)batch;
        const int n_seq = (int)(chunks - begin < (size_t)batch ? chunks - begin
                                                               : (size_t)batch);
        for (int b = 0; b < n_seq; b++) {
            int32_t *row = inputs + (size_t)b * n_ctx;
            memcpy(row, stream->ids + (begin + (size_t)b) * (size_t)n_ctx,
                   (size_t)n_ctx * sizeof(int32_t));
            row[0] = bos;
        }

        const pp_status st = pp_forward(ctx, inputs, n_seq, n_ctx, 0, PP_PROBE,
                                        logits);
        if (st != PP_OK) {
            snprintf(err, err_size, "chunks %zu-%zu failed: %s", begin + 1,
                     begin + (size_t)n_seq, pp_status_string(st));
            goto done;
        }

        /* Targets come from the stream, so a replaced first token is never
         * a target (first >= 1). */
        for (int b = 0; b < n_seq; b++) {
            const int32_t *chunk = stream->ids + (begin + (size_t)b) * (size_t)n_ctx;
            add_nll(logits + ((size_t)b * n_ctx + (size_t)first) * vocab,
                    chunk + first + 1, (size_t)(n_ctx - 1 - first), vocab, 1,
                    total);
        }
        if (progress)
            progress(user, call + 1, calls, total);
    }
    rc = 0;

done:
    free(inputs);
    free(logits);
    return rc;
}

/* ---- The command --------------------------------------------------------- */

static void print_progress(void *user, size_t done, size_t total,
                           const pp_nll_total *running) {
    (void)user;
    fprintf(stderr, "\rbatch %zu/%zu: running perplexity %.4f", done, total,
            exp(running->nll / (double)running->count));
}

int pp_cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *path = NULL, *mode = "batch", *scoring = "pprt";
    int S = 128, B = 8, json = 0, prompt_len = 32, reprobe = 0;
    long max_batches = 0;
    pp_prune_options prune;
    pp_prune_options_init(&prune);
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (pp_prune_option(&prune, argc, argv, &i))
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            fputs(pp_prune_help, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        } else if (strcmp(a, "-m") == 0 && v) {
            model = v;
        } else if (strcmp(a, "-f") == 0 && v) {
            path = v;
        } else if (strcmp(a, "--ctx") == 0) {
            S = (int)pp_arg_int(a, v, 2, 1 << 16);
        } else if (strcmp(a, "--batch") == 0) {
            B = (int)pp_arg_int(a, v, 1, 4096);
        } else if (strcmp(a, "--batches") == 0) {
            max_batches = pp_arg_int(a, v, 0, 1L << 30);
        } else if (strcmp(a, "--mode") == 0 && v) {
            if (strcmp(v, "batch") != 0 && strcmp(v, "generate") != 0)
                pp_die("invalid --mode '%s': expected batch or generate", v);
            mode = v;
        } else if (strcmp(a, "--prompt-len") == 0) {
            prompt_len = (int)pp_arg_int(a, v, 1, 1 << 16);
        } else if (strcmp(a, "--reprobe") == 0) {
            reprobe = (int)pp_arg_int(a, v, 0, 1 << 16);
        } else if (strcmp(a, "--scoring") == 0 && v) {
            if (strcmp(v, "pprt") != 0 && strcmp(v, "llama.cpp") != 0)
                pp_die("invalid --scoring '%s': expected pprt or llama.cpp", v);
            scoring = v;
        } else {
            pp_die("unknown or incomplete option '%s' for perplexity; see "
                   "`pprt perplexity --help`", a);
        }
        i++;
    }
    if (!model || !path)
        pp_die("perplexity needs -m MODEL.ppm and -f TEXT; see `pprt perplexity --help`");
    const int generate = strcmp(mode, "generate") == 0;
    const int llamacpp = strcmp(scoring, "llama.cpp") == 0;
    if (generate && prompt_len >= S)
        pp_die("invalid --prompt-len %d: must be below --ctx %d", prompt_len, S);
    if (generate && llamacpp)
        pp_die("--scoring llama.cpp scores whole chunks in one pass; use it "
               "without --mode generate");

    pp_session s;
    pp_session_open(&s, model, prune.weights, prune.threads, B, S, S);
    if (s.info.synthetic)
        fprintf(stderr, "pprt: perplexity of synthetic weights means nothing\n");

    size_t size;
    char *text = pp_read_text_file(path, &size, err, sizeof err);
    if (!text)
        pp_die("%s", err);
    pp_token_stream stream;
    size_t batches, chunks = 0;
    if (llamacpp) {
        if (pp_tokenize_whole_text(s.ctx, text, size, &stream, err, sizeof err) != 0)
            pp_die("%s: %s", path, err);
        if (stream.n < 2 * (size_t)S)
            pp_die("%s has %zu tokens: --scoring llama.cpp needs at least "
                   "2 * --ctx = %d", path, stream.n, 2 * S);
        chunks = pp_llamacpp_chunks(stream.n, S);
        if (max_batches && chunks > (size_t)max_batches * (size_t)B)
            chunks = (size_t)max_batches * (size_t)B;
        batches = (chunks + (size_t)B - 1) / (size_t)B;
    } else {
        const size_t want = max_batches ? (size_t)max_batches * B * S + 1 : 0;
        if (pp_tokenize_stories(s.ctx, text, size, want, &stream, err, sizeof err) != 0)
            pp_die("%s: %s", path, err);
        batches = pp_stream_batches(&stream, S, B);
        if (max_batches && batches > (size_t)max_batches)
            batches = (size_t)max_batches;
        if (batches == 0)
            pp_die("%s has %zu tokens: too few for one batch of %d windows of %d",
                   path, stream.n, B, S + 1);
    }
    free(text);

    pp_prune_apply(&s, &prune, S, B, json);
    pp_stats_reset(s.ctx);

    pp_nll_total total = {0.0, 0};
    const double t0 = pp_now();
    const clock_t cpu0 = clock();
    int rc;
    if (llamacpp) {
        rc = pp_score_llamacpp(s.ctx, &stream, S, B, chunks, &total,
                               json ? NULL : print_progress, NULL, err, sizeof err);
    } else {
        const pp_window_plan plan = {S, B, batches, generate, prompt_len, reprobe};
        rc = pp_score_windows(s.ctx, &stream, &plan, &total,
                              json ? NULL : print_progress, NULL, err, sizeof err);
    }
    if (rc != 0)
        pp_die("%s", err);
    const double seconds = pp_now() - t0;
    /* Process CPU time (all threads): less sensitive than wall time to other
     * jobs on the machine. */
    const double cpu_seconds = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
    const double mean_nll = total.nll / (double)total.count;
    const double ppl = exp(mean_nll);

    pp_stats stats;
    pp_stats_get(s.ctx, &stats);
    const double probe_share =
        stats.macs_dense ? (double)stats.macs_probe / (double)stats.macs_dense : 0.0;
    const double run_share =
        stats.macs_dense ? (double)stats.macs_run / (double)stats.macs_dense : 1.0;
    const double ratio = prune.method == PP_METHOD_DENSE ? 0.0 : (double)prune.ratio;
    if (json) {
        printf("{\"ppl\": %.6f, \"mean_nll\": %.8f, \"tokens\": %zu, \"batches\": %zu, "
               "\"scoring\": \"%s\", \"chunks\": %zu, \"ctx\": %d, \"batch\": %d, "
               "\"method\": \"%s\", \"prune_ratio\": %g, \"mode\": \"%s\", "
               "\"prompt_len\": %d, \"reprobe\": %d, "
               "\"weight_bytes_read\": %llu, \"weight_bytes_dense\": %llu, "
               "\"backing_bytes_read\": %llu, \"cache_hit_rate\": %.4f, "
               "\"macs_dense\": %llu, \"macs_probe\": %llu, \"macs_run\": %llu, "
               "\"probe_flops_share\": %.6f, \"run_flops_share\": %.6f, "
               "\"seconds\": %.4f, \"cpu_seconds\": %.4f, \"isa\": \"%s\", "
               "\"threads\": %d, "
               "\"calibration\": %s%s%s, \"synthetic_weights\": %s}\n",
               ppl, mean_nll, total.count, batches, scoring, chunks, S, B,
               pp_method_name(prune.method), ratio, mode,
               generate ? prompt_len : 0, generate ? reprobe : 0,
               (unsigned long long)stats.weight_bytes_read,
               (unsigned long long)stats.weight_bytes_dense,
               (unsigned long long)stats.backing_bytes_read,
               stats.cache_hits + stats.cache_misses
                   ? (double)stats.cache_hits / (double)(stats.cache_hits + stats.cache_misses)
                   : 1.0,
               (unsigned long long)stats.macs_dense,
               (unsigned long long)stats.macs_probe,
               (unsigned long long)stats.macs_run, probe_share, run_share, seconds,
               cpu_seconds, pp_isa(s.ctx), prune.threads, prune.calib ? "\"" : "",
               prune.calib ? prune.calib : "null", prune.calib ? "\"" : "",
               s.info.synthetic ? "true" : "false");
    } else {
        fprintf(stderr, "\n");
        if (llamacpp)
            printf("perplexity %.4f over %zu tokens (llama.cpp scoring: %zu chunks "
                   "of %d, second halves)\n", ppl, total.count, chunks, S);
        else
            printf("perplexity %.4f over %zu tokens (%zu batches of %d x %d, %s mode)\n",
                   ppl, total.count, batches, B, S, mode);
        printf("method %s at %.2f: weight bytes read %.2f MB of %.2f MB dense "
               "(%.1f%%); probe %.2f%% of dense MACs; %.2f s\n",
               pp_method_name(prune.method), ratio,
               (double)stats.weight_bytes_read / 1e6,
               (double)stats.weight_bytes_dense / 1e6,
               100.0 * (double)stats.weight_bytes_read /
                   (double)(stats.weight_bytes_dense ? stats.weight_bytes_dense : 1),
               100 * probe_share, seconds);
    }
    free(stream.ids);
    pp_session_close(&s);
    return 0;
}
