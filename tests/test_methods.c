/*
 * test_methods.c - the pruning methods on the real stories260K model,
 * against the independent NumPy reference (float32 weights), and the
 * llama.cpp scoring convention against llama.cpp's own number.
 *
 * Protocol: the eval text split into stories, windows of 128 tokens in
 * batches of 8, calibration on the first 16 batches of wikitext-2-test.raw.
 * All runs use a pool of 2 threads; results do not depend on the thread
 * count, and test_model checks that.
 */
#include <math.h>

#include "internal.h"
#include "model_fixture.h"
#include "perplexity.h"
#include "text.h"

enum { SEQ = 128, BATCH = 8, CALIB_BATCHES = 16, EVAL_BATCHES = 40 };

static fixture_model model;
static int have_model;
static pp_pool *pool;

/* One calibrated context shared by the tests, with a copy of its initial
 * Probe Pruning history. Each PP run moves the history by its EMA, so every
 * run restores the copy first. */
static struct {
    pp_context *ctx;
    void *arena;
    float *attn_history, *mlp_history;
    size_t attn_floats, mlp_floats;
    pp_token_stream eval;
    int setup_failed;  /* 1: building the context failed once */
} shared;

static char *read_shared_text(const char *relative, size_t *size) {
    const char *path = check_shared(relative);
    if (!check_require_file(path))
        return NULL;
    char err[256];
    char *text = pp_read_text_file(path, size, err, sizeof err);
    CHECKF(text != NULL, "%s", err);
    return text;
}

/* Tokenizes the first `batches` batches of a text by the story rules. */
static int story_stream(pp_context *ctx, const char *relative, size_t batches,
                        pp_token_stream *stream) {
    size_t size;
    char *text = read_shared_text(relative, &size);
    if (!text)
        return 0;
    char err[256];
    const size_t want = batches * BATCH * SEQ + 1;
    const int rc = pp_tokenize_stories(ctx, text, size, want, stream, err, sizeof err);
    free(text);
    CHECKF(rc == 0, "%s: %s", relative, err);
    if (rc != 0)
        return 0;
    CHECKF(pp_stream_batches(stream, SEQ, BATCH) >= batches,
           "%s gives %zu batches, expected at least %zu", relative,
           pp_stream_batches(stream, SEQ, BATCH), batches);
    return pp_stream_batches(stream, SEQ, BATCH) >= batches;
}

/*
 * Calibrates on the first 16 wikitext batches. The windows must equal the
 * reference's calibration tokens, so both sides calibrate on the same data.
 */
static int calibrate(pp_context *ctx) {
    pp_token_stream stream;
    if (!story_stream(ctx, "data/wikitext-2-test.raw", CALIB_BATCHES, &stream))
        return 0;
    size_t n_ref;
    int32_t *ref = fixture_reference("reference/c_calib_tokens.i32", &n_ref);
    int ok = ref != NULL;
    CHECK(!ref || n_ref == (size_t)CALIB_BATCHES * BATCH * (SEQ + 1));

    int32_t batch[BATCH * (SEQ + 1)], inputs[BATCH * SEQ];
    for (int i = 0; ok && i < CALIB_BATCHES; i++) {
        pp_stream_batch(&stream, SEQ, BATCH, (size_t)i, batch);
        CHECKF(memcmp(batch, ref + (size_t)i * BATCH * (SEQ + 1), sizeof batch) == 0,
               "calibration batch %d differs from the reference's tokens", i);
        for (int b = 0; b < BATCH; b++)
            memcpy(inputs + b * SEQ, batch + b * (SEQ + 1), SEQ * sizeof(int32_t));
        const pp_status st = pp_calibrate(ctx, inputs, BATCH, SEQ);
        CHECKF(st == PP_OK, "pp_calibrate: %s", pp_status_string(st));
        ok = st == PP_OK;
    }
    free(ref);
    free(stream.ids);
    return ok;
}

/* Returns the shared context, building it on the first call. Without it
 * (missing data or a failed setup) the calling test counts as skipped. */
static pp_context *calibrated_context(void) {
    if (shared.ctx)
        return shared.ctx;
    if (!have_model || shared.setup_failed) {
        check_skip_current = 1;
        return NULL;
    }
    pp_context *ctx = fixture_context(&model, BATCH, SEQ, pp_pool_workers(pool),
                                      NULL, &shared.arena);
    if (!ctx || !calibrate(ctx) ||
        !story_stream(ctx, "data/tinystories-valid-a.txt", EVAL_BATCHES, &shared.eval)) {
        shared.setup_failed = 1;
        return NULL;
    }

    const size_t slots = (size_t)ctx->info.n_layers * (size_t)ctx->history_len;
    shared.attn_floats = slots * (size_t)ctx->info.dim;
    shared.mlp_floats = slots * (size_t)ctx->info.hidden_dim;
    shared.attn_history = malloc(shared.attn_floats * sizeof(float));
    shared.mlp_history = malloc(shared.mlp_floats * sizeof(float));
    memcpy(shared.attn_history, ctx->pruning.attn_history,
           shared.attn_floats * sizeof(float));
    memcpy(shared.mlp_history, ctx->pruning.mlp_history,
           shared.mlp_floats * sizeof(float));
    shared.ctx = ctx;
    return ctx;
}

/* Sets a method on the shared context with the protocol's defaults and the
 * calibrated history. */
static int set_method(pp_context *ctx, pp_method method, float ratio) {
    memcpy(ctx->pruning.attn_history, shared.attn_history,
           shared.attn_floats * sizeof(float));
    memcpy(ctx->pruning.mlp_history, shared.mlp_history,
           shared.mlp_floats * sizeof(float));
    pp_prune_config cfg;
    pp_prune_defaults(pp_info(ctx), &cfg);
    cfg.method = method;
    cfg.ratio = ratio;
    CHECK(cfg.skip_layers == 1);
    const pp_status st = pp_set_pruning(ctx, &cfg);
    CHECKF(st == PP_OK, "pp_set_pruning(method %d, %.2f): %s", (int)method,
           (double)ratio, pp_status_string(st));
    return st == PP_OK;
}

static double window_ppl(pp_context *ctx, size_t batches) {
    const pp_window_plan plan = {SEQ, BATCH, batches, 0, 0, 0};
    pp_nll_total total = {0.0, 0};
    char err[256];
    const int rc = pp_score_windows(ctx, &shared.eval, &plan, &total, NULL, NULL,
                                    err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    CHECK(total.count == batches * BATCH * SEQ);
    return rc == 0 ? exp(total.nll / (double)total.count) : NAN;
}

/* ---- llama.cpp scoring --------------------------------------------------- */

/*
 * The whole-text tokenization drops one trailing newline and starts with
 * BOS. Only complete chunks count.
 */
static void llamacpp_tokens_and_chunks(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx)
        return;
    const char text[] = "Once upon a time\n";
    pp_token_stream with_newline, without;
    char err[256];
    CHECK(pp_tokenize_whole_text(ctx, text, strlen(text), &with_newline, err,
                                 sizeof err) == 0);
    CHECK(pp_tokenize_whole_text(ctx, text, strlen(text) - 1, &without, err,
                                 sizeof err) == 0);
    CHECK(with_newline.n == without.n);
    CHECK(with_newline.n > 1);
    CHECK(with_newline.ids[0] == pp_info(ctx)->bos_id);
    CHECK(memcmp(with_newline.ids, without.ids, without.n * sizeof(int32_t)) == 0);

    int32_t direct[64], n = 0;
    CHECK(pp_tokenize(ctx, text, strlen(text) - 1, 1, direct, 64, &n) == PP_OK);
    CHECK((size_t)n == without.n);
    CHECK(memcmp(direct, without.ids, (size_t)n * sizeof(int32_t)) == 0);
    free(with_newline.ids);
    free(without.ids);

    CHECK(pp_llamacpp_chunks(255, 128) == 1);
    CHECK(pp_llamacpp_chunks(256, 128) == 2);
    CHECK(pp_llamacpp_chunks(257, 128) == 2);
    CHECK(pp_llamacpp_chunks(127, 128) == 0);
}

/*
 * Scoring 11 chunks 4 at a time (calls of 4, 4 and 3) equals scoring each
 * chunk alone with BOS in front and positions 64..126 predicting 65..127.
 */
static void llamacpp_scores_second_halves(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx || !set_method(ctx, PP_METHOD_DENSE, 0.0f))
        return;
    const int chunks = 11, vocab = pp_info(ctx)->vocab_size;
    pp_token_stream stream = {shared.eval.ids + 5, (size_t)chunks * SEQ + 7};

    pp_nll_total batched = {0.0, 0};
    char err[256];
    CHECKF(pp_score_llamacpp(ctx, &stream, SEQ, 4, (size_t)chunks, &batched, NULL,
                             NULL, err, sizeof err) == 0, "%s", err);
    CHECK(batched.count == (size_t)chunks * (SEQ - 1 - SEQ / 2));
    CHECK(pp_score_llamacpp(ctx, &stream, SEQ, 4, (size_t)chunks + 1, &batched,
                            NULL, NULL, err, sizeof err) != 0);

    float *logits = malloc(sizeof(float) * SEQ * (size_t)vocab);
    double nll = 0.0;
    size_t count = 0;
    for (int i = 0; i < chunks; i++) {
        int32_t inputs[SEQ];
        memcpy(inputs, stream.ids + (size_t)i * SEQ, sizeof inputs);
        inputs[0] = pp_info(ctx)->bos_id;
        CHECK(pp_forward(ctx, inputs, 1, SEQ, 0, 0, logits) == PP_OK);
        for (int j = SEQ / 2; j <= SEQ - 2; j++) {
            const float *row = logits + (size_t)j * vocab;
            double max = row[0], sum = 0.0;
            for (int v = 1; v < vocab; v++)
                max = fmax(max, row[v]);
            for (int v = 0; v < vocab; v++)
                sum += exp(row[v] - max);
            nll += log(sum) + max - row[stream.ids[(size_t)i * SEQ + j + 1]];
            count++;
        }
    }
    CHECK(count == batched.count);
    CHECKF(fabs(nll - batched.nll) <= 1e-9 * fabs(nll),
           "batched NLL %.9f, one chunk at a time %.9f", batched.nll, nll);
    free(logits);
}

/*
 * llama.cpp's llama-perplexity -c 128 on this text reports 4.8186 for the
 * Q8_0 GGUF of stories260K (4.8117 for float32). Those runs were made
 * outside this repository, and their llama.cpp version was not recorded.
 * pprt's int8 model must land within 1% of the Q8_0 number.
 */
static void llamacpp_ppl_matches_llamacpp(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx || !set_method(ctx, PP_METHOD_DENSE, 0.0f))
        return;
    size_t size;
    char *text = read_shared_text("data/tinystories-valid-a.txt", &size);
    if (!text)
        return;
    pp_token_stream stream;
    char err[256];
    CHECKF(pp_tokenize_whole_text(ctx, text, size, &stream, err, sizeof err) == 0,
           "%s", err);
    free(text);

    const size_t chunks = pp_llamacpp_chunks(stream.n, SEQ);
    pp_nll_total total = {0.0, 0};
    CHECKF(pp_score_llamacpp(ctx, &stream, SEQ, BATCH, chunks, &total, NULL, NULL,
                             err, sizeof err) == 0, "%s", err);
    const double ppl = exp(total.nll / (double)total.count);
    const double llamacpp_q8 = 4.8186;
    CHECKF(fabs(ppl / llamacpp_q8 - 1.0) < 0.01,
           "llama.cpp-style PPL %.4f, llama.cpp Q8_0 %.4f", ppl, llamacpp_q8);
    printf("llama.cpp scoring: %zu tokens, %zu chunks, PPL %.4f (llama.cpp Q8_0 "
           "%.4f, %+.2f%%)\n", stream.n, chunks, ppl, llamacpp_q8,
           100.0 * (ppl / llamacpp_q8 - 1.0));
    free(stream.ids);
}

/* ---- Ratio 0 ------------------------------------------------------------- */

/* Every method at ratio 0 keeps every unit, so its logits are bitwise the
 * dense ones, over several batches (PP's history moves between them). */
static void ratio_zero_equals_dense(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx)
        return;
    const size_t n = (size_t)BATCH * SEQ * pp_info(ctx)->vocab_size;
    float *dense = malloc(3 * n * sizeof(float)), *logits = malloc(n * sizeof(float));
    int32_t batch[BATCH * (SEQ + 1)], inputs[BATCH * SEQ];

    const pp_method methods[] = {PP_METHOD_DENSE, PP_METHOD_PP, PP_METHOD_FULLPROBE,
                                 PP_METHOD_WANDASP, PP_METHOD_FLAP};
    for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
        if (!set_method(ctx, methods[m], 0.0f))
            continue;
        for (int i = 0; i < 3; i++) {
            pp_stream_batch(&shared.eval, SEQ, BATCH, (size_t)i, batch);
            for (int b = 0; b < BATCH; b++)
                memcpy(inputs + b * SEQ, batch + b * (SEQ + 1), SEQ * sizeof(int32_t));
            float *out = m == 0 ? dense + (size_t)i * n : logits;
            CHECK(pp_forward(ctx, inputs, BATCH, SEQ, 0, PP_PROBE, out) == PP_OK);
            if (m > 0)
                CHECKF(memcmp(out, dense + (size_t)i * n, n * sizeof(float)) == 0,
                       "method %d at ratio 0 differs from dense on batch %d",
                       (int)methods[m], i);
        }
    }
    free(dense);
    free(logits);
}

/* ---- Generation mode ----------------------------------------------------- */

/*
 * A method whose kept set does not depend on the batch (dense, and the
 * static Wanda-sp) scores the same in generation mode, prompt then decode
 * steps over the KV cache, as in one pass per batch. Only the order of the
 * NLL sum differs, so the PPLs agree to rounding.
 */
static void generate_mode_equals_batch_mode(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx)
        return;
    const pp_method methods[] = {PP_METHOD_DENSE, PP_METHOD_WANDASP};
    const int reprobe[] = {0, 16};
    char err[256];

    for (int m = 0; m < 2; m++) {
        if (!set_method(ctx, methods[m], 0.4f))
            continue;
        const double batch_ppl = window_ppl(ctx, 2);
        for (int r = 0; r < 2; r++) {
            const pp_window_plan plan = {SEQ, BATCH, 2, 1, 32, reprobe[r]};
            pp_nll_total total = {0.0, 0};
            CHECKF(pp_score_windows(ctx, &shared.eval, &plan, &total, NULL, NULL,
                                    err, sizeof err) == 0, "%s", err);
            CHECK(total.count == 2 * BATCH * SEQ);
            const double ppl = exp(total.nll / (double)total.count);
            CHECKF(fabs(ppl / batch_ppl - 1.0) < 1e-9,
                   "method %d, re-probe %d: generation PPL %.9f, batch %.9f",
                   (int)methods[m], reprobe[r], ppl, batch_ppl);
        }
    }
}

/* ---- Fusion and EMA, white-box ------------------------------------------- */

/*
 * With a zero residual stream the probe's activations are zero (p = 0), so
 * the dynamic weight w = p / (p + g + 1e-6) is 0 and F[c] is the sum of
 * the history over the probe positions. All token norms tie, so the probe
 * is positions 0..63 of row 0. History g[slot][c] = slot + 1:
 *   pos 0:   F = 1 + 2 + ... + 64 = 2080
 *   pos 100: slots 100..127, then 36 positions share the last slot 127:
 *            F = (101 + ... + 128) + 36 * 128 = 3206 + 4608 = 7814
 */
static void fusion_sums_history_by_slot(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx || !set_method(ctx, PP_METHOD_PP, 0.4f))
        return;
    const int layer = 2, hidden = ctx->info.hidden_dim, dim = ctx->info.dim;
    CHECK(ctx->history_len == 128);
    float *g = ctx->pruning.mlp_history + (size_t)layer * 128 * hidden;
    float *ga = ctx->pruning.attn_history + (size_t)layer * 128 * dim;
    for (int s = 0; s < 128; s++) {
        for (int c = 0; c < hidden; c++)
            g[s * hidden + c] = (float)(s + 1);
        for (int c = 0; c < dim; c++)
            ga[s * dim + c] = (float)(s + 1);
    }
    memset(ctx->scratch.x, 0, sizeof(float) * BATCH * SEQ * (size_t)dim);

    const int positions[] = {0, 100};
    const double expected[] = {2080.0, 7814.0};
    for (int k = 0; k < 2; k++) {
        pp_probe_mlp(ctx, layer, BATCH, SEQ, positions[k]);
        CHECK(ctx->scratch.rows[0] == 0);
        for (int i = 0; i < 64; i++)
            CHECK(ctx->scratch.positions[i] == i);
        for (int c = 0; c < hidden; c++)
            CHECKF(ctx->scratch.fused[c] == expected[k],
                   "MLP F[%d] = %.3f at pos %d, expected %.0f", c,
                   ctx->scratch.fused[c], positions[k], expected[k]);
    }

    /* The attention probe attends over cached positions before pos; at
     * pos 0 there are none. */
    pp_probe_attention(ctx, layer, BATCH, SEQ, 0);
    for (int c = 0; c < dim; c++)
        CHECKF(ctx->scratch.fused[c] == 2080.0, "attention F[%d] = %.3f", c,
               ctx->scratch.fused[c]);
}

/*
 * On real activations (the residual after a dense pass of batch 0), F from
 * pp_probe_mlp equals the fusion formula recomputed here from the probe's
 * own activations (left in scratch.hb as [rows][positions][hidden]):
 * p = mean over rows of act^2, w = p / (p + g + 1e-6), F = sum (1-w)g + wp.
 * A fixed weight of 0 gives the history alone, 1 the probe alone.
 */
static void fusion_matches_formula(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx || !set_method(ctx, PP_METHOD_PP, 0.4f))
        return;
    const int layer = 3, hidden = ctx->info.hidden_dim;
    int32_t batch[BATCH * (SEQ + 1)], inputs[BATCH * SEQ];
    pp_stream_batch(&shared.eval, SEQ, BATCH, 0, batch);
    for (int b = 0; b < BATCH; b++)
        memcpy(inputs + b * SEQ, batch + b * (SEQ + 1), SEQ * sizeof(int32_t));
    CHECK(pp_forward(ctx, inputs, BATCH, SEQ, 0, PP_NO_LOGITS, NULL) == PP_OK);

    const float *g = ctx->pruning.mlp_history + (size_t)layer * 128 * hidden;
    const float fixed[] = {-1.0f, 0.0f, 1.0f};
    for (int k = 0; k < 3; k++) {
        ctx->pruning.config.fix_ratio = fixed[k];
        pp_probe_mlp(ctx, layer, BATCH, SEQ, 0);
        const int P = 64, R = 1;
        double worst = 0.0;
        for (int c = 0; c < hidden; c++) {
            double F = 0.0;
            for (int i = 0; i < P; i++) {
                double p = 0.0;
                for (int r = 0; r < R; r++) {
                    const double a = ctx->scratch.hb[((size_t)r * P + i) * hidden + c];
                    p += a * a;
                }
                p /= R;
                const double h = g[(size_t)ctx->scratch.positions[i] * hidden + c];
                const double w = fixed[k] < 0 ? p / (p + h + 1e-6) : fixed[k];
                F += (1.0 - w) * h + w * p;
            }
            worst = fmax(worst, fabs(ctx->scratch.fused[c] - F) / fmax(F, 1e-30));
        }
        CHECKF(worst < 1e-12, "fix_ratio %.0f: F differs from the formula by "
               "%.3g relative", (double)fixed[k], worst);
    }
}

/*
 * EMA after the pruned pass, on hand-set activations: g = 0.99 g + 0.01 *
 * mean over sequences of act^2, at kept units only. Two sequences of two
 * tokens at pos 127, so the second token shares the last slot:
 *   MLP channel c kept, g = 2, acts 1 and 3 (mean square 5): 2.03
 *   then the second token at the same slot, acts 2 and 4 (mean 10):
 *   0.99 * 2.03 + 0.01 * 10 = 2.1097
 *   pruned channel: stays 2.
 */
static void ema_updates_kept_units(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx || !set_method(ctx, PP_METHOD_PP, 0.4f))
        return;
    const int layer = 1, hidden = ctx->info.hidden_dim, dim = ctx->info.dim;
    const int hd = ctx->info.head_dim, n_seq = 2, n_tok = 2;
    float *g = ctx->pruning.mlp_history + (size_t)layer * 128 * hidden;
    float *ga = ctx->pruning.attn_history + (size_t)layer * 128 * dim;
    uint8_t *channel_kept = ctx->pruning.channel_kept + (size_t)layer * hidden;
    uint8_t *head_kept = ctx->pruning.head_kept + (size_t)layer * ctx->info.n_heads;

    /* act[b][s][c]: token 0 of the two sequences 1 and 3, token 1 2 and 4. */
    const float act[2][2] = {{1.0f, 2.0f}, {3.0f, 4.0f}};
    for (int b = 0; b < n_seq; b++)
        for (int s = 0; s < n_tok; s++) {
            for (int c = 0; c < hidden; c++)
                ctx->scratch.hb[((size_t)b * n_tok + s) * hidden + c] = act[b][s];
            for (int c = 0; c < dim; c++)
                ctx->scratch.att[((size_t)b * n_tok + s) * dim + c] = act[b][s];
        }
    for (int c = 0; c < hidden; c++) {
        g[126 * hidden + c] = 5.0f;
        g[127 * hidden + c] = 2.0f;
        channel_kept[c] = c % 3 != 0;
    }
    for (int c = 0; c < dim; c++)
        ga[127 * dim + c] = 2.0f;
    for (int h = 0; h < ctx->info.n_heads; h++)
        head_kept[h] = h != 1;

    pp_history_update_mlp(ctx, layer, n_seq, n_tok, 127);
    pp_history_update_attention(ctx, layer, n_seq, n_tok, 127);
    for (int c = 0; c < hidden; c++) {
        const float want = c % 3 != 0 ? 2.1097f : 2.0f;
        CHECKF(fabsf(g[127 * hidden + c] - want) < 2e-6f,
               "MLP g[127][%d] = %.7f, expected %.4f", c, (double)g[127 * hidden + c],
               (double)want);
        CHECK(g[126 * hidden + c] == 5.0f);
    }
    for (int c = 0; c < dim; c++) {
        const float want = c / hd != 1 ? 2.1097f : 2.0f;
        CHECKF(fabsf(ga[127 * dim + c] - want) < 2e-6f,
               "attention g[127][%d] = %.7f, expected %.4f", c,
               (double)ga[127 * dim + c], (double)want);
    }
}

/* ---- Static baselines ---------------------------------------------------- */

typedef struct kept_counts {
    int heads[8], channels[8];  /* per layer, first 5 used */
} kept_counts;

static kept_counts count_kept(const pp_context *ctx) {
    kept_counts k;
    memset(&k, 0, sizeof k);
    for (int l = 0; l < ctx->info.n_layers; l++) {
        uint8_t heads[8], channels[172];
        CHECK(pp_kept_get(ctx, l, heads, channels) == PP_OK);
        for (int h = 0; h < ctx->info.n_heads; h++)
            k.heads[l] += heads[h];
        for (int c = 0; c < ctx->info.hidden_dim; c++)
            k.channels[l] += channels[c];
    }
    return k;
}

/*
 * FLAP removes heads and channels across the pruned layers until the
 * removed parameters reach ratio_l times the prunable total (ratio_l =
 * ratio * 5 / 4): a head costs 2 * dim * head_dim = 1024 parameters, a
 * channel 3 * dim = 192. It stops at the first unit that reaches the
 * target, so it overshoots by less than one head.
 */
static void flap_reaches_global_target(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx)
        return;
    const pp_model_info *info = pp_info(ctx);
    const long head_cost = 2L * info->dim * info->head_dim;
    const long channel_cost = 3L * info->dim;
    const long total = 4 * (info->n_heads * head_cost + info->hidden_dim * channel_cost);
    const float ratios[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.6f};

    for (size_t i = 0; i < sizeof ratios / sizeof *ratios; i++) {
        if (!set_method(ctx, PP_METHOD_FLAP, ratios[i]))
            continue;
        const kept_counts k = count_kept(ctx);
        CHECK(k.heads[0] == info->n_heads);
        CHECK(k.channels[0] == info->hidden_dim);
        long removed = 0;
        for (int l = 1; l < info->n_layers; l++)
            removed += (info->n_heads - k.heads[l]) * head_cost +
                       (info->hidden_dim - k.channels[l]) * channel_cost;
        /* ratio_l is rounded to float like the ratio itself: 0.1f * 5 / 4
         * is exactly 0.125f, a target of exactly 20608. */
        const float ratio_l = (float)((double)ratios[i] * 5.0 / 4.0);
        const double target = (double)ratio_l * (double)total;
        CHECKF((double)removed >= target, "ratio %.1f: removed %ld of target %.0f",
               (double)ratios[i], removed, target);
        printf("flap %.1f: removed %ld parameters, target %.0f\n",
               (double)ratios[i], removed, target);
        CHECKF((double)removed - target < (double)head_cost,
               "ratio %.1f: removed %ld overshoots target %.0f by a head or more",
               (double)ratios[i], removed, target);
    }
}

/*
 * Kept counts per pruned layer at 0.4 against the reference. Wanda-sp uses
 * the uniform counts, so they match exactly: 4 of 8 heads, 88 of 172
 * channels. FLAP's global threshold falls where the standardized scores of
 * all layers interleave, so int8 rounding of the calibration activations
 * moves units near the threshold between layers. The bound is one head and
 * 6 channels per layer: a head swapped in or out shifts the budget by 1024
 * parameters, 5.3 channels. Measured: heads equal, channels within 1.
 */
static void static_kept_counts_match_reference(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx)
        return;
    const int ref_flap_heads[4] = {5, 4, 4, 4};
    const int ref_flap_channels[4] = {87, 81, 79, 91};

    if (set_method(ctx, PP_METHOD_WANDASP, 0.4f)) {
        const kept_counts k = count_kept(ctx);
        for (int l = 1; l < 5; l++) {
            CHECKF(k.heads[l] == 4, "wandasp layer %d keeps %d heads", l, k.heads[l]);
            CHECKF(k.channels[l] == 88, "wandasp layer %d keeps %d channels", l,
                   k.channels[l]);
        }
    }
    if (set_method(ctx, PP_METHOD_FLAP, 0.4f)) {
        const kept_counts k = count_kept(ctx);
        for (int l = 1; l < 5; l++) {
            printf("flap 0.4 layer %d: %d heads (reference %d), %d channels "
                   "(reference %d)\n", l, k.heads[l], ref_flap_heads[l - 1],
                   k.channels[l], ref_flap_channels[l - 1]);
            CHECKF(abs(k.heads[l] - ref_flap_heads[l - 1]) <= 1,
                   "flap layer %d keeps %d heads, reference %d", l, k.heads[l],
                   ref_flap_heads[l - 1]);
            CHECKF(abs(k.channels[l] - ref_flap_channels[l - 1]) <= 6,
                   "flap layer %d keeps %d channels, reference %d", l,
                   k.channels[l], ref_flap_channels[l - 1]);
        }
    }
}

/* ---- Perplexity against the reference ------------------------------------ */

/*
 * Every method at 0.2 and 0.4 over the full protocol (40 batches) within
 * 5% of the reference's PPL with wikitext calibration.
 */
static void methods_ppl_near_reference(void) {
    pp_context *ctx = calibrated_context();
    if (!ctx)
        return;
    static const struct {
        pp_method method;
        const char *name;
        float ratio;
        double reference;
    } cases[] = {
        {PP_METHOD_PP, "pp", 0.2f, 9.3279},
        {PP_METHOD_PP, "pp", 0.4f, 39.6439},
        {PP_METHOD_FULLPROBE, "fullprobe", 0.2f, 8.1914},
        {PP_METHOD_FULLPROBE, "fullprobe", 0.4f, 29.8674},
        {PP_METHOD_WANDASP, "wandasp", 0.2f, 9.1702},
        {PP_METHOD_WANDASP, "wandasp", 0.4f, 32.3934},
        {PP_METHOD_FLAP, "flap", 0.2f, 9.7331},
        {PP_METHOD_FLAP, "flap", 0.4f, 26.8992},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (!set_method(ctx, cases[i].method, cases[i].ratio))
            continue;
        const double ppl = window_ppl(ctx, EVAL_BATCHES);
        const double diff = ppl / cases[i].reference - 1.0;
        printf("%s at %.1f: PPL %.4f, reference %.4f (%+.1f%%)\n", cases[i].name,
               (double)cases[i].ratio, ppl, cases[i].reference, 100.0 * diff);
        CHECKF(fabs(diff) < 0.05, "%s at %.1f: PPL %.4f, reference %.4f",
               cases[i].name, (double)cases[i].ratio, ppl, cases[i].reference);
    }
}

static void real_model_converts(void) {
    have_model = fixture_load(&model, 0);
    CHECK(pp_pool_create(&pool, 2) == 0);
}

int main(void) {
    RUN(real_model_converts);
    RUN(llamacpp_tokens_and_chunks);
    RUN(llamacpp_scores_second_halves);
    RUN(llamacpp_ppl_matches_llamacpp);
    RUN(ratio_zero_equals_dense);
    RUN(generate_mode_equals_batch_mode);
    RUN(fusion_sums_history_by_slot);
    RUN(fusion_matches_formula);
    RUN(ema_updates_kept_units);
    RUN(flap_reaches_global_target);
    RUN(static_kept_counts_match_reference);
    RUN(methods_ppl_near_reference);

    free(shared.arena);
    free(shared.attn_history);
    free(shared.mlp_history);
    free(shared.eval.ids);
    pp_pool_destroy(pool);
    fixture_free(&model);
    return check_summary("test_methods");
}
