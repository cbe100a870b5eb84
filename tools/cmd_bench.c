/*
 * pprt bench: prefill and decode speed and bytes read per token.
 *
 * Prefill runs a prompt of --prompt tokens in one forward call (probed when
 * the method is dynamic); decode then feeds --decode tokens one at a time
 * with the prompt's kept set. The token ids are a fixed pattern, so runs are
 * comparable across methods and machines; on synthetic weights only the
 * speed and the bytes mean anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: pprt bench -m MODEL.ppm [options]\n"
    "  --prompt N     prompt tokens, run as one prefill call (default 128)\n"
    "  --decode N     tokens decoded one at a time after it (default 32)\n"
    "  --json         print one JSON object\n"
    "bench runs dense unless --method says otherwise.\n";

/* The 1-minute load average, or -1 where /proc/loadavg is missing. */
static double load_average(void) {
    double load = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1.0;
        fclose(f);
    }
    return load;
}

int pp_cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int n_prompt = 128, n_decode = 32, json = 0;
    pp_prune_options prune;
    pp_prune_options_init(&prune);
    prune.method = PP_METHOD_DENSE;

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
        } else if (strcmp(a, "--prompt") == 0) {
            n_prompt = (int)pp_arg_int(a, v, 1, 1 << 20);
        } else if (strcmp(a, "--decode") == 0) {
            n_decode = (int)pp_arg_int(a, v, 0, 1 << 20);
        } else {
            pp_die("unknown or incomplete option '%s' for bench; see `pprt bench --help`", a);
        }
        i++;
    }
    if (!model)
        pp_die("bench needs -m MODEL.ppm");

    pp_session s;
    const int calib = prune.calib != NULL;
    pp_session_open(&s, model, prune.weights, prune.threads, calib ? 8 : 1,
                    n_prompt > 128 || !calib ? n_prompt : 128, n_prompt + n_decode);
    if (n_prompt + n_decode > s.info.max_seq_len)
        pp_die("--prompt %d + --decode %d exceed the model's context of %d",
               n_prompt, n_decode, s.info.max_seq_len);
    if (prune.whole_tiles < 0)
        prune.whole_tiles = 1;  /* decoding reads less with whole tiles */
    pp_prune_apply(&s, &prune, 128, 8, json);

    const int vocab = s.info.vocab_size;
    int32_t *tokens = malloc(((size_t)n_prompt + n_decode) * sizeof(int32_t));
    float *logits = malloc((size_t)vocab * sizeof(float));
    if (!tokens || !logits)
        pp_die("out of memory");
    tokens[0] = s.info.bos_id;
    for (int i = 1; i < n_prompt + n_decode; i++)
        tokens[i] = (int32_t)(3 + (uint32_t)i * 7919u % (uint32_t)(vocab - 3));

    const double load_before = load_average();
    pp_stats_reset(s.ctx);
    double t0 = pp_now();
    pp_status st = pp_forward(s.ctx, tokens, 1, n_prompt, 0, PP_PROBE | PP_LAST_LOGITS, logits);
    const double prefill = pp_now() - t0;
    if (st != PP_OK)
        pp_die("prefill failed: %s", pp_status_string(st));
    pp_stats after_prefill;
    pp_stats_get(s.ctx, &after_prefill);
    pp_stats_reset(s.ctx);

    t0 = pp_now();
    for (int i = 0; i < n_decode; i++) {
        const int pos = n_prompt + i;
        st = pp_forward(s.ctx, tokens + pos, 1, 1, pos, PP_LAST_LOGITS, logits);
        if (st != PP_OK)
            pp_die("decode step %d failed: %s", i, pp_status_string(st));
    }
    const double decode = pp_now() - t0;
    pp_stats dec;
    pp_stats_get(s.ctx, &dec);
    const double load_after = load_average();

    double heads, channels;
    pp_kept_fractions(&s, &heads, &channels);
    const double ratio = prune.method == PP_METHOD_DENSE ? 0.0 : (double)prune.ratio;
    const double per_token = n_decode ? (double)dec.weight_bytes_read / n_decode : 0.0;
    const double dense_per_token = n_decode ? (double)dec.weight_bytes_dense / n_decode : 0.0;
    if (json) {
        printf("{\"model\": \"%s\", \"synthetic_weights\": %s, \"dim\": %d, "
               "\"n_layers\": %d, \"method\": \"%s\", \"prune_ratio\": %g, "
               "\"kept_heads\": %.4f, \"kept_channels\": %.4f, \"isa\": \"%s\", "
               "\"threads\": %d, \"weights\": \"%s\", \"prompt_tokens\": %d, "
               "\"decode_tokens\": %d, \"prefill_seconds\": %.6f, "
               "\"prefill_tokens_per_second\": %.3f, \"decode_seconds\": %.6f, "
               "\"decode_tokens_per_second\": %.3f, "
               "\"decode_weight_bytes_per_token\": %.0f, "
               "\"decode_dense_bytes_per_token\": %.0f, "
               "\"decode_backing_bytes_per_token\": %.0f, \"cache_hit_rate\": %.4f, "
               "\"prefill_weight_bytes_read\": %llu, \"prefill_weight_bytes_dense\": %llu, "
               "\"load_average_before\": %.2f, \"load_average_after\": %.2f}\n",
               model, s.info.synthetic ? "true" : "false", s.info.dim,
               s.info.n_layers, pp_method_name(prune.method), ratio, heads, channels,
               pp_isa(s.ctx), prune.threads, prune.weights ? prune.weights : "mmap",
               n_prompt, n_decode, prefill, n_prompt / prefill, decode,
               n_decode ? n_decode / decode : 0.0, per_token, dense_per_token,
               n_decode ? (double)dec.backing_bytes_read / n_decode : 0.0,
               dec.cache_hits + dec.cache_misses
                   ? (double)dec.cache_hits / (double)(dec.cache_hits + dec.cache_misses)
                   : 1.0,
               (unsigned long long)after_prefill.weight_bytes_read,
               (unsigned long long)after_prefill.weight_bytes_dense, load_before,
               load_after);
    } else {
        printf("%s (%s weights), %s at %.2f, %s kernels, %d thread%s\n"
               "prefill %d tokens: %.1f tokens/s\n"
               "decode %d tokens: %.2f tokens/s, %.2f MB of weights per token "
               "(%.1f%% of dense)\n"
               "load average %.2f before, %.2f after\n",
               model, s.info.synthetic ? "synthetic" : "real",
               pp_method_name(prune.method), ratio, pp_isa(s.ctx), prune.threads,
               prune.threads > 1 ? "s" : "", n_prompt, n_prompt / prefill,
               n_decode, n_decode ? n_decode / decode : 0.0, per_token / 1e6,
               dense_per_token > 0 ? 100 * per_token / dense_per_token : 100.0,
               load_before, load_after);
    }
    free(tokens);
    free(logits);
    pp_session_close(&s);
    return 0;
}
