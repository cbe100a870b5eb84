/*
 * pprt perplexity: the evaluation protocol on a text file.
 *
 * Batch mode: every batch of B windows of S tokens runs as one forward
 * call (probed when the method is dynamic), and every position is scored.
 * Generation mode: each window's first P tokens run as a probed prompt; the
 * rest are fed one decode step at a time with the kept set fixed, re-probing
 * every N generated tokens from the last N tokens.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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
    "  --json             print one JSON object on stdout\n";

/* Adds -log softmax(logits)[target] for n rows to *nll. */
static void add_nll(const float *logits, const int32_t *targets, size_t n,
                    int vocab, size_t target_stride, double *nll) {
    for (size_t j = 0; j < n; j++) {
        const float *row = logits + j * (size_t)vocab;
        float max = row[0];
        for (int v = 1; v < vocab; v++)
            if (row[v] > max)
                max = row[v];
        double sum = 0.0;
        for (int v = 0; v < vocab; v++)
            sum += exp((double)row[v] - max);
        *nll += log(sum) + max - row[targets[j * target_stride]];
    }
}

int pp_cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *path = NULL, *mode = "batch";
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
        } else {
            pp_die("unknown or incomplete option '%s' for perplexity; see "
                   "`pprt perplexity --help`", a);
        }
        i++;
    }
    if (!model || !path)
        pp_die("perplexity needs -m MODEL.ppm and -f TEXT; see `pprt perplexity --help`");
    const int generate = strcmp(mode, "generate") == 0;
    if (generate && prompt_len >= S)
        pp_die("invalid --prompt-len %d: must be below --ctx %d", prompt_len, S);

    pp_session s;
    pp_session_open(&s, model, prune.weights, prune.threads, B, S, S);
    if (s.info.synthetic)
        fprintf(stderr, "pprt: perplexity of synthetic weights means nothing\n");

    size_t size;
    char *text = pp_read_text_file(path, &size, err, sizeof err);
    if (!text)
        pp_die("%s", err);
    pp_token_stream stream;
    const size_t want = max_batches ? (size_t)max_batches * B * S + 1 : 0;
    if (pp_tokenize_stories(s.ctx, text, size, want, &stream, err, sizeof err) != 0)
        pp_die("%s: %s", path, err);
    free(text);
    size_t batches = pp_stream_batches(&stream, S, B);
    if (max_batches && batches > (size_t)max_batches)
        batches = (size_t)max_batches;
    if (batches == 0)
        pp_die("%s has %zu tokens: too few for one batch of %d windows of %d",
               path, stream.n, B, S + 1);

    pp_prune_apply(&s, &prune, S, B, json);
    pp_stats_reset(s.ctx);

    const int vocab = s.info.vocab_size;
    int32_t *batch = malloc((size_t)B * (S + 1) * sizeof(int32_t));
    int32_t *inputs = malloc((size_t)B * S * sizeof(int32_t));
    int32_t *step = malloc((size_t)B * (S + 1) * sizeof(int32_t));
    float *logits = malloc((size_t)B * S * (size_t)vocab * sizeof(float));
    if (!batch || !inputs || !step || !logits)
        pp_die("out of memory for %d x %d logits", B, S);

    double nll = 0.0;
    size_t scored = 0;
    const double t0 = pp_now();
    for (size_t i = 0; i < batches; i++) {
        pp_stream_batch(&stream, S, B, i, batch);
        for (int b = 0; b < B; b++)
            memcpy(inputs + (size_t)b * S, batch + (size_t)b * (S + 1),
                   (size_t)S * sizeof(int32_t));

        pp_status st;
        if (!generate) {
            st = pp_forward(s.ctx, inputs, B, S, 0, PP_PROBE, logits);
            if (st != PP_OK)
                pp_die("batch %zu failed: %s", i + 1, pp_status_string(st));
            for (int b = 0; b < B; b++)
                add_nll(logits + (size_t)b * S * vocab, batch + (size_t)b * (S + 1) + 1,
                        (size_t)S, vocab, 1, &nll);
            scored += (size_t)B * S;
        } else {
            /* The prompt: positions [0, P), scored from the prefill. */
            int32_t *prompt = step;
            for (int b = 0; b < B; b++)
                memcpy(prompt + (size_t)b * prompt_len, inputs + (size_t)b * S,
                       (size_t)prompt_len * sizeof(int32_t));
            st = pp_forward(s.ctx, prompt, B, prompt_len, 0, PP_PROBE, logits);
            if (st != PP_OK)
                pp_die("batch %zu prompt failed: %s", i + 1, pp_status_string(st));
            for (int b = 0; b < B; b++)
                add_nll(logits + (size_t)b * prompt_len * vocab,
                        batch + (size_t)b * (S + 1) + 1, (size_t)prompt_len, vocab,
                        1, &nll);
            scored += (size_t)B * prompt_len;

            /* Decode steps: position p predicts p + 1. */
            for (int p = prompt_len; p < S; p++) {
                const int decoded = p - prompt_len + 1;
                if (reprobe > 0 && decoded % reprobe == 0 && p + 1 >= reprobe) {
                    const int first = p + 1 - reprobe;
                    for (int b = 0; b < B; b++)
                        memcpy(step + (size_t)b * reprobe,
                               inputs + (size_t)b * S + first,
                               (size_t)reprobe * sizeof(int32_t));
                    st = pp_forward(s.ctx, step, B, reprobe, first,
                                    PP_PROBE | PP_LAST_LOGITS, logits);
                } else {
                    for (int b = 0; b < B; b++)
                        step[b] = inputs[(size_t)b * S + p];
                    st = pp_forward(s.ctx, step, B, 1, p, PP_LAST_LOGITS, logits);
                }
                if (st != PP_OK)
                    pp_die("batch %zu step %d failed: %s", i + 1, p,
                           pp_status_string(st));
                add_nll(logits, batch + p + 1, (size_t)B, vocab, (size_t)S + 1, &nll);
                scored += (size_t)B;
            }
        }
        if (!json)
            fprintf(stderr, "\rbatch %zu/%zu: running perplexity %.4f", i + 1,
                    batches, exp(nll / (double)scored));
    }
    const double seconds = pp_now() - t0;
    const double ppl = exp(nll / (double)scored);

    pp_stats stats;
    pp_stats_get(s.ctx, &stats);
    const double probe_share =
        stats.macs_dense ? (double)stats.macs_probe / (double)stats.macs_dense : 0.0;
    const double run_share =
        stats.macs_dense ? (double)stats.macs_run / (double)stats.macs_dense : 1.0;
    const double ratio = prune.method == PP_METHOD_DENSE ? 0.0 : (double)prune.ratio;
    if (json) {
        printf("{\"ppl\": %.6f, \"mean_nll\": %.8f, \"tokens\": %zu, \"batches\": %zu, "
               "\"method\": \"%s\", \"prune_ratio\": %g, \"mode\": \"%s\", "
               "\"prompt_len\": %d, \"reprobe\": %d, "
               "\"weight_bytes_read\": %llu, \"weight_bytes_dense\": %llu, "
               "\"macs_dense\": %llu, \"macs_probe\": %llu, \"macs_run\": %llu, "
               "\"probe_flops_share\": %.6f, \"run_flops_share\": %.6f, "
               "\"seconds\": %.4f, \"isa\": \"%s\", \"threads\": %d, "
               "\"calibration\": %s%s%s, \"synthetic_weights\": %s}\n",
               ppl, nll / (double)scored, scored, batches,
               pp_method_name(prune.method), ratio, mode,
               generate ? prompt_len : 0, generate ? reprobe : 0,
               (unsigned long long)stats.weight_bytes_read,
               (unsigned long long)stats.weight_bytes_dense,
               (unsigned long long)stats.macs_dense,
               (unsigned long long)stats.macs_probe,
               (unsigned long long)stats.macs_run, probe_share, run_share, seconds,
               pp_isa(s.ctx), prune.threads, prune.calib ? "\"" : "",
               prune.calib ? prune.calib : "null", prune.calib ? "\"" : "",
               s.info.synthetic ? "true" : "false");
    } else {
        fprintf(stderr, "\n");
        printf("perplexity %.4f over %zu tokens (%zu batches of %d x %d, %s mode)\n"
               "method %s at %.2f: weight bytes read %.2f MB of %.2f MB dense "
               "(%.1f%%); probe %.2f%% of dense MACs; %.2f s\n",
               ppl, scored, batches, B, S, mode, pp_method_name(prune.method), ratio,
               (double)stats.weight_bytes_read / 1e6,
               (double)stats.weight_bytes_dense / 1e6,
               100.0 * (double)stats.weight_bytes_read /
                   (double)(stats.weight_bytes_dense ? stats.weight_bytes_dense : 1),
               100 * probe_share, seconds);
    }
    free(batch);
    free(inputs);
    free(step);
    free(logits);
    free(stream.ids);
    pp_session_close(&s);
    return 0;
}
