/* pprt generate: text from a prompt, with pruning carried into decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: pprt generate -m MODEL.ppm -p PROMPT [options]\n"
    "  -m FILE          pprt model\n"
    "  -p TEXT          prompt\n"
    "  -n N             tokens to generate (default 256)\n"
    "  --temp T         sampling temperature, 0 = greedy (default 0.8)\n"
    "  --top-p P        nucleus sampling mass in (0, 1] (default 0.9)\n"
    "  --seed S         random seed (default 42)\n"
    "  --reprobe N      re-probe every N generated tokens from the last N tokens\n"
    "                   (default 0: keep the prompt's kept set)\n"
    "  --json           print one JSON object instead of streaming text\n";

int pp_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL;
    int n_generate = 256, json = 0, reprobe = 0;
    float temperature = 0.8f, top_p = 0.9f;
    unsigned long long seed = 42;
    pp_prune_options prune;
    pp_prune_options_init(&prune);

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
        } else if (strcmp(a, "-p") == 0 && v) {
            prompt = v;
        } else if (strcmp(a, "-n") == 0) {
            n_generate = (int)pp_arg_int(a, v, 0, 1 << 20);
        } else if (strcmp(a, "--temp") == 0) {
            temperature = (float)pp_arg_float(a, v, 0.0, 100.0, 1);
        } else if (strcmp(a, "--top-p") == 0) {
            top_p = (float)pp_arg_float(a, v, 1e-6, 1.0, 1);
        } else if (strcmp(a, "--seed") == 0) {
            seed = (unsigned long long)pp_arg_int(a, v, 0, 0x7fffffffL);
        } else if (strcmp(a, "--reprobe") == 0) {
            reprobe = (int)pp_arg_int(a, v, 0, 1 << 20);
        } else {
            pp_die("unknown or incomplete option '%s' for generate; see "
                   "`pprt generate --help`", a);
        }
        i++;
    }
    if (!model || !prompt)
        pp_die("generate needs -m MODEL.ppm and -p PROMPT; see `pprt generate --help`");

    /* Calibration batches have the evaluation shape, 8 x 128. */
    const int calib_S = 128, calib_B = 8;
    const size_t prompt_len = strlen(prompt);
    const int max_prompt = (int)prompt_len + 3;
    int max_tokens = max_prompt > calib_S ? max_prompt : calib_S;
    if (reprobe > max_tokens)
        max_tokens = reprobe;
    pp_session s;
    pp_session_open(&s, model, prune.weights, prune.threads,
                    prune.calib ? calib_B : 1, max_tokens, 0);

    int32_t *tokens = malloc(((size_t)max_prompt + (size_t)n_generate + 1) * sizeof(int32_t));
    float *logits = malloc((size_t)s.info.vocab_size * sizeof(float));
    void *scratch = malloc((size_t)s.info.vocab_size * 8);
    if (!tokens || !logits || !scratch)
        pp_die("out of memory");
    int32_t n_prompt = 0;
    pp_status st = pp_tokenize(s.ctx, prompt, prompt_len, 1, tokens, max_prompt, &n_prompt);
    if (st != PP_OK)
        pp_die("cannot tokenize the prompt: %s", pp_status_string(st));
    if (n_prompt + n_generate > s.info.max_seq_len) {
        n_generate = s.info.max_seq_len - n_prompt;
        if (n_generate < 0)
            pp_die("the prompt is %d tokens, longer than the model's context of %d",
                   n_prompt, s.info.max_seq_len);
        fprintf(stderr, "pprt: -n cut to %d to fit the context of %d tokens\n",
                n_generate, s.info.max_seq_len);
    }

    if (prune.whole_tiles < 0)
        prune.whole_tiles = 1;  /* decoding reads less with whole tiles */
    pp_prune_apply(&s, &prune, calib_S, calib_B, json);
    pp_stats_reset(s.ctx);

    pp_sampler sampler;
    pp_sampler_init(&sampler, temperature, top_p, seed);
    size_t text_cap = 4096, text_len = 0;
    char *text = malloc(text_cap);
    if (!text)
        pp_die("out of memory");

    const double t0 = pp_now();
    st = pp_forward(s.ctx, tokens, 1, n_prompt, 0, PP_PROBE | PP_LAST_LOGITS, logits);
    if (st != PP_OK)
        pp_die("prefill failed: %s", pp_status_string(st));
    const double t_prefill = pp_now() - t0;
    double heads_kept, channels_kept;
    pp_kept_fractions(&s, &heads_kept, &channels_kept);

    if (!json)
        fputs(prompt, stdout);
    int n = n_prompt, generated = 0;
    while (generated < n_generate) {
        const int32_t next = pp_sample(&sampler, logits, s.info.vocab_size, scratch);
        if (next == s.info.eos_id || next == s.info.bos_id)
            break;
        size_t len;
        const char *piece = pp_token_text(s.ctx, tokens[n - 1], next, &len);
        if (text_len + len + 1 > text_cap) {
            text_cap = 2 * (text_len + len + 1);
            text = realloc(text, text_cap);
            if (!text)
                pp_die("out of memory");
        }
        memcpy(text + text_len, piece, len);
        text_len += len;
        if (!json) {
            fwrite(piece, 1, len, stdout);
            fflush(stdout);
        }
        tokens[n++] = next;
        generated++;
        if (generated == n_generate)
            break;

        if (reprobe > 0 && generated % reprobe == 0) {
            /* Re-probe: replay the last `reprobe` tokens as a probed batch. */
            const int first = n - reprobe;
            st = pp_forward(s.ctx, tokens + first, 1, reprobe, first,
                            PP_PROBE | PP_LAST_LOGITS, logits);
        } else {
            st = pp_forward(s.ctx, tokens + n - 1, 1, 1, n - 1, PP_LAST_LOGITS, logits);
        }
        if (st != PP_OK)
            pp_die("decoding failed at token %d: %s", n, pp_status_string(st));
    }
    const double seconds = pp_now() - t0;
    if (!json)
        fputc('\n', stdout);

    pp_stats stats;
    pp_stats_get(s.ctx, &stats);
    const double read_fraction =
        stats.weight_bytes_dense ? (double)stats.weight_bytes_read / (double)stats.weight_bytes_dense : 1.0;
    const double decode_seconds = seconds - t_prefill;
    if (json) {
        printf("{\"text\": ");
        pp_json_string(stdout, text, text_len);
        printf(", \"tokens\": %d, \"prompt_tokens\": %d, \"method\": \"%s\", "
               "\"prune_ratio\": %g, \"kept_heads\": %.4f, \"kept_channels\": %.4f, "
               "\"weight_bytes_read\": %llu, \"weight_bytes_dense\": %llu, "
               "\"backing_bytes_read\": %llu, \"cache_hit_rate\": %.4f, "
               "\"seconds\": %.4f, \"prefill_seconds\": %.4f, "
               "\"decode_tokens_per_second\": %.2f, \"isa\": \"%s\", "
               "\"threads\": %d, \"synthetic_weights\": %s}\n",
               generated, n_prompt, pp_method_name(prune.method),
               prune.method == PP_METHOD_DENSE ? 0.0 : (double)prune.ratio,
               heads_kept, channels_kept,
               (unsigned long long)stats.weight_bytes_read,
               (unsigned long long)stats.weight_bytes_dense,
               (unsigned long long)stats.backing_bytes_read,
               stats.cache_hits + stats.cache_misses
                   ? (double)stats.cache_hits / (double)(stats.cache_hits + stats.cache_misses)
                   : 1.0, seconds, t_prefill,
               decode_seconds > 0 ? (generated - 1) / decode_seconds : 0.0,
               pp_isa(s.ctx), prune.threads, s.info.synthetic ? "true" : "false");
    } else {
        fprintf(stderr,
                "\n%s at %.2f: kept %.0f%% of heads and %.0f%% of MLP channels; "
                "read %.2f MB of weights, %.1f%% of the %.2f MB a dense run reads\n"
                "%d prompt + %d generated tokens in %.3f s (%s kernels, %d thread%s)\n",
                pp_method_name(prune.method),
                prune.method == PP_METHOD_DENSE ? 0.0 : (double)prune.ratio,
                100 * heads_kept, 100 * channels_kept,
                (double)stats.weight_bytes_read / 1e6, 100 * read_fraction,
                (double)stats.weight_bytes_dense / 1e6, n_prompt, generated,
                seconds, pp_isa(s.ctx), prune.threads, prune.threads > 1 ? "s" : "");
    }
    free(text);
    free(tokens);
    free(logits);
    free(scratch);
    pp_session_close(&s);
    return 0;
}
