/*
 * test_adaptive.c - pp-global (runtime/prune_adaptive.c): each part's
 * arithmetic on small hand-computed cases, then its contracts on the real
 * stories260K model.
 *
 * The hand-computed cases run on a tiny model written here: dim 8, 4 query
 * heads of 2 channels (2 kv heads), hidden 8 in tiles of 2, 3 layers with
 * layer 0 never pruned. Its o and down projections are identity matrices,
 * so every column has sum_d W[d,c]^2 = 1 (scores are sums of the fused
 * statistic F) and the bias W[:, pruned] @ mean[pruned] is the pruned
 * channels' means. The tests write the history, the means and the probe's
 * activations directly (white-box through internal.h) and call the
 * selection functions that probe.c calls after its probe has run.
 */
#include <math.h>

#include "convert.h"
#include "internal.h"
#include "model_fixture.h"
#include "perplexity.h"
#include "text.h"

enum { DIM = 8, HEADS = 4, KV_HEADS = 2, HIDDEN = 8, LAYERS = 3, VOCAB = 300,
       TILE = 2, HISTORY = 4, MAX_BATCH = 2, MAX_TOKENS = 4 };

static fixture_model tiny;
static int have_tiny;

/* o and down are identities; the other weights small and deterministic. */
static void tiny_block(void *user, int tensor, int layer, size_t row0,
                       size_t nrows, size_t col0, size_t ncols, float *out) {
    (void)user;
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const size_t row = row0 + r, col = col0 + c;
            if (tensor == PP_T_WO || tensor == PP_T_DOWN) {
                out[r * ncols + c] = row == col ? 1.0f : 0.0f;
                continue;
            }
            const unsigned h = (unsigned)(tensor * 131 + layer * 31) +
                               (unsigned)(row * 17 + col * 7);
            out[r * ncols + c] = (float)((int)(h % 11) - 5) * 0.02f;
        }
    }
}

static int write_tiny_model(fixture_model *m) {
    static float norms[(2 * LAYERS + 1) * DIM];
    for (size_t i = 0; i < sizeof norms / sizeof *norms; i++)
        norms[i] = 1.0f;
    pp_weight_provider p;
    memset(&p, 0, sizeof p);
    p.dim = DIM;
    p.hidden_dim = HIDDEN;
    p.n_layers = LAYERS;
    p.n_heads = HEADS;
    p.n_kv_heads = KV_HEADS;
    p.vocab_size = VOCAB;
    p.max_seq_len = 16;
    p.shared_classifier = 1;
    p.synthetic = 1;
    p.rope_theta = 10000.0f;
    p.norm_eps = 1e-5f;
    p.attn_norm = norms;
    p.mlp_norm = norms + LAYERS * DIM;
    p.final_norm = norms + 2 * LAYERS * DIM;
    p.block = tiny_block;

    return fixture_synthetic(m, &p, TILE);
}

/* A context on the tiny model with a 4-slot history. */
static pp_context *tiny_context(void **arena) {
    pp_options o;
    memset(&o, 0, sizeof o);
    o.max_batch = MAX_BATCH;
    o.max_tokens = MAX_TOKENS;
    o.history_len = HISTORY;
    size_t bytes = 0;
    pp_status st = pp_arena_size(&tiny.source, &o, &bytes);
    CHECKF(st == PP_OK, "pp_arena_size: %s", pp_status_string(st));
    *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    pp_context *ctx = NULL;
    st = pp_init(&ctx, *arena, bytes, &tiny.source, &o);
    CHECKF(st == PP_OK, "pp_init: %s", pp_status_string(st));
    return st == PP_OK ? ctx : NULL;
}

/*
 * Returns pp-global on the tiny model at ratio 0.25, with every part off. Layer 0
 * is skipped, so the per-layer ratio is 0.25 * 3 / 2 = 0.375: the uniform
 * counts prune 1 of 4 heads and floor(3) = 3 channels rounded down to the
 * tile, 2 (one tile). Calibration is faked: one token, zero sums.
 */
static pp_prune_config tiny_config(const pp_context *c) {
    pp_prune_config cfg;
    pp_prune_defaults(pp_info(c), &cfg);
    cfg.method = PP_METHOD_PP_GLOBAL;
    cfg.ratio = 0.25f;
    cfg.skip_layers = 1;
    cfg.whole_tiles = 1;
    cfg.global_budget = 0;
    cfg.bias_compensation = 0;
    cfg.history_fill = 0;
    return cfg;
}

static float *attn_history(pp_context *c, int layer, int slot) {
    return c->pruning.attn_history + ((size_t)layer * HISTORY + (size_t)slot) * DIM;
}

static float *mlp_history(pp_context *c, int layer, int slot) {
    return c->pruning.mlp_history + ((size_t)layer * HISTORY + (size_t)slot) * HIDDEN;
}

/*
 * A probe of R = 2 rows at positions 1 and 3 of a 4-token call at pos 0.
 * Channel 0 of the o input: rows (1, 3) at position 1 and (2, 0) at
 * position 3, so p = 5 and p = 2; the history g is 3 at position 1 and 6
 * at position 3 (and 10 at the unprobed positions 0 and 2).
 */
static void write_probe_case(pp_context *c, int layer) {
    const float rows[2][2] = {{1.0f, 2.0f}, {3.0f, 0.0f}};  /* [row][probe position] */
    memset(c->scratch.att, 0, sizeof(float) * 4 * DIM);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 2; i++)
            c->scratch.att[((size_t)r * 2 + (size_t)i) * DIM] = rows[r][i];
    c->scratch.positions[0] = 1;
    c->scratch.positions[1] = 3;
    for (int slot = 0; slot < HISTORY; slot++)
        memset(attn_history(c, layer, slot), 0, sizeof(float) * DIM);
    attn_history(c, layer, 0)[0] = 10.0f;
    attn_history(c, layer, 1)[0] = 3.0f;
    attn_history(c, layer, 2)[0] = 10.0f;
    attn_history(c, layer, 3)[0] = 6.0f;
}

static void near(double got, double want, double tolerance, const char *name) {
    CHECKF(fabs(got - want) <= tolerance, "%s = %.9g, expected %.9g", name, got, want);
}

/* A value computed through the identity weights of o and down: their
 * stored value is 127 times a half-precision scale near 1/127, 6e-5 below
 * 1 (up to 2^-11 for other weights), and scores square it. */
static double through_weights(double want) { return 3e-4 * fabs(want) + 1e-6; }

/* ---- Probe size ---------------------------------------------------------- */

static void probe_size_case(const pp_context *c, int n_seq, int n_tok, int rows,
                            int positions, int want_rows, int want_positions) {
    int R = rows, P = positions;
    pp_global_probe_size(c, n_seq, n_tok, &R, &P);
    CHECKF(R == want_rows && P == want_positions,
           "%d x %d call: probe %d x %d, expected %d x %d", n_seq, n_tok, R, P,
           want_rows, want_positions);
}

static void probe_size_share_and_floors(void) {
    static pp_context c;
    memset(&c, 0, sizeof c);
    pp_prune_defaults(NULL, &c.pruning.config);
    c.pruning.config.method = PP_METHOD_PP_GLOBAL;
    c.pruning.config.probe_share = 0.09f;
    c.pruning.config.probe_min_tokens = 16;
    c.pruning.config.min_probe_rows = 1;

    /* ceil(0.09 * 1024) = 93 tokens: one row of 93 positions. */
    probe_size_case(&c, 8, 128, 1, 64, 1, 93);
    /* A 16-token re-probe of 8 rows: ceil(11.52) = 12 < 16, one full row. */
    probe_size_case(&c, 8, 16, 1, 8, 1, 16);
    /* A 10-token single-sequence prompt: all of it. */
    probe_size_case(&c, 1, 10, 1, 5, 1, 10);
    /* Four positions per row: 16 tokens take four rows. */
    probe_size_case(&c, 8, 4, 1, 2, 4, 4);
    /* More tokens than one row: ceil(0.09 * 8192) = 738 over 512 positions,
     * so two rows of 512. */
    probe_size_case(&c, 16, 512, 1, 256, 2, 512);

    /* A floor of 3 rows, at most the call's rows: ceil(0.09 * 256) = 24
     * positions in each of the 2 rows of a 2 x 128 call. */
    c.pruning.config.min_probe_rows = 3;
    probe_size_case(&c, 8, 128, 1, 64, 3, 93);
    probe_size_case(&c, 2, 128, 1, 64, 2, 24);

    /* Share 0 keeps pp's rows and positions. */
    c.pruning.config.probe_share = 0.0f;
    probe_size_case(&c, 8, 128, 1, 64, 1, 64);
}

/* ---- Fusion and history fill --------------------------------------------- */

static void fusion_weights_history_as_rows(void) {
    if (!have_tiny)
        return;
    void *arena;
    pp_context *c = tiny_context(&arena);
    if (!c)
        return;
    c->calibration.tokens = 1;
    pp_prune_config cfg = tiny_config(c);

    /* history_rows 2 with R = 2: w = 0.5. f = 0.5 * 3 + 0.5 * 5 = 4 at
     * position 1 and 0.5 * 6 + 0.5 * 2 = 4 at position 3: F = 8. */
    cfg.history_rows = 2.0f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 0);
    near(c->scratch.fused[0], 8.0, 1e-9, "F[0] with history_rows 2");
    near(c->scratch.fused[1], 0.0, 1e-9, "F[1] with nothing anywhere");

    /* history_rows 6: w = 0.25. f = 0.75 * 3 + 0.25 * 5 = 3.5 and
     * 0.75 * 6 + 0.25 * 2 = 5: F = 8.5. */
    cfg.history_rows = 6.0f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 0);
    near(c->scratch.fused[0], 8.5, 1e-9, "F[0] with history_rows 6");

    /* pp's fusion: w = p / (p + g): 5/8 gives (3 * 3 + 5 * 5) / 8 = 4.25,
     * 2/8 gives 0.75 * 6 + 0.25 * 2 = 5; F = 9.25 (up to the 1e-6 in w). */
    cfg.history_rows = -1.0f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 0);
    near(c->scratch.fused[0], 9.25, 1e-5, "F[0] with pp's fusion");

    /* fix_ratio overrides both: w = 1 is the probe alone, 5 + 2. */
    cfg.history_rows = 2.0f;
    cfg.fix_ratio = 1.0f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 0);
    near(c->scratch.fused[0], 7.0, 1e-9, "F[0] with fix_ratio 1");
    free(arena);
}

static void history_fill_adds_unprobed_positions(void) {
    if (!have_tiny)
        return;
    void *arena;
    pp_context *c = tiny_context(&arena);
    if (!c)
        return;
    c->calibration.tokens = 1;
    pp_prune_config cfg = tiny_config(c);
    cfg.history_rows = 2.0f;
    cfg.history_fill = 1;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);

    /* 8 from the probe positions plus the history 10 at positions 0 and 2. */
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 0);
    near(c->scratch.fused[0], 28.0, 1e-9, "F[0] with history fill");

    /* A call at pos 2 reads slots 2..5, and slots past the history share
     * the last one: probe positions 1 and 3 are slots 3 and 3 (g = 6), the
     * others slots 2 and 3 (10 + 6). f = 0.5 * 6 + 0.5 * 5 = 5.5 and
     * 0.5 * 6 + 0.5 * 2 = 4. */
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 2);
    near(c->scratch.fused[0], 25.5, 1e-9, "F[0] at pos 2");
    free(arena);
}

/* With the bias compensated the scores use the variance about the mean:
 * (x - m)^2 in the probe, max(g - m^2, 0) in the history. */
static void bias_centers_the_scores(void) {
    if (!have_tiny)
        return;
    void *arena;
    pp_context *c = tiny_context(&arena);
    if (!c)
        return;
    c->calibration.tokens = 1;
    c->calibration.attn_sum[1 * DIM + 0] = 1.0;  /* mean of channel 0: 1 */
    pp_prune_config cfg = tiny_config(c);
    cfg.history_rows = 2.0f;
    cfg.bias_compensation = 1;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    near(c->pruning.global.attn_mean[1 * DIM + 0], 1.0, 0.0, "mean from calibration");

    /* Position 1: rows 1, 3 give p = (0 + 4) / 2 = 2, g = 3 - 1 = 2: f = 2.
     * Position 3: rows 2, 0 give p = (1 + 1) / 2 = 1, g = 6 - 1 = 5: f = 3.
     * Head 0 (channels 0 and 1) scores F[0] * 1 + F[1] * 1 = 5; channel 1
     * has mean 0 and no activity. */
    write_probe_case(c, 1);
    pp_global_select_heads(c, 1, 4, 2, 2, 0);
    near(c->scratch.unit_score[0], 5.0, through_weights(5.0), "head 0 score, centered");
    free(arena);
}

/* ---- Global budget ------------------------------------------------------- */

/* Writes the history so that, with the bias off and w2 = 1, unit u of layer
 * l scores scores[l - 1][u] (heads 0..3, then tiles 0..3): slot 0 carries
 * each unit's score in its first channel, the other slots are zero. */
static void write_unit_scores(pp_context *c, const double scores[2][8]) {
    for (int l = 0; l < LAYERS; l++)
        for (int slot = 0; slot < HISTORY; slot++) {
            memset(attn_history(c, l, slot), 0, sizeof(float) * DIM);
            memset(mlp_history(c, l, slot), 0, sizeof(float) * HIDDEN);
        }
    for (int l = 1; l < LAYERS; l++)
        for (int u = 0; u < 4; u++) {
            attn_history(c, l, 0)[2 * u] = (float)scores[l - 1][u];
            mlp_history(c, l, 0)[TILE * u] = (float)scores[l - 1][4 + u];
        }
}

static void check_budgets(const pp_context *c, const int heads[LAYERS],
                          const int tiles[LAYERS], const char *label) {
    for (int l = 0; l < LAYERS; l++) {
        CHECKF(c->pruning.global.head_budget[l] == heads[l],
               "%s: layer %d prunes %d heads, expected %d", label, l,
               c->pruning.global.head_budget[l], heads[l]);
        CHECKF(c->pruning.global.mlp_budget[l] == tiles[l],
               "%s: layer %d prunes %d tiles, expected %d", label, l,
               c->pruning.global.mlp_budget[l], tiles[l]);
    }
}

/*
 * Unit costs: a head 2 * 8 * 2 = 32 parameters, a tile 2 * 3 * 8 = 48.
 * The scores, then their z-scores within each layer and kind, are:
 *   layer 1 heads 1 2 3 4   z -1.162 -0.387 0.387 1.162
 *   layer 1 tiles 1 2 3 5   z -1.025 -0.439 0.146 1.318
 *   layer 2 heads 1 1 1 10  z -0.5 -0.5 -0.5 1.5
 *   layer 2 tiles 5 5 5 5   z 0 (no spread)
 */
static const double unit_scores[2][8] = {{1, 2, 3, 4, 1, 2, 3, 5},
                                         {1, 1, 1, 10, 5, 5, 5, 5}};

static void global_budget_ranks_z_scores(void) {
    if (!have_tiny)
        return;
    void *arena;
    pp_context *c = tiny_context(&arena);
    if (!c)
        return;
    c->calibration.tokens = 1;
    write_unit_scores(c, unit_scores);
    pp_prune_config cfg = tiny_config(c);

    /* Uniform: 1 head and 1 tile in layers 1 and 2, 2 * (32 + 48) = 160. */
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    check_budgets(c, (const int[]){0, 1, 1}, (const int[]){0, 1, 1}, "uniform");

    /* Global: layer 1 head 0 (32), layer 1 tile 0 (80), layer 2 heads 0, 1
     * and 2 (112, 144, 176): the third would pass 160, so the removal stops
     * at 144. */
    cfg.global_budget = 1;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    check_budgets(c, (const int[]){0, 1, 2}, (const int[]){0, 1, 0}, "ratio 0.25");

    /* Ratio 0.5: per-layer ratio 0.75, uniform 3 heads and floor(6) = 6
     * channels, 3 tiles: 2 * (96 + 144) = 480, everything the caps of 3 of
     * 4 per layer and kind allow. Layer 2's fourth tile comes before layer
     * 1's third tile but is over the cap, so the ranking passes it over and
     * ends with the uniform counts. */
    cfg.ratio = 0.5f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    check_budgets(c, (const int[]){0, 3, 3}, (const int[]){0, 3, 3}, "ratio 0.5");

    /* The probe picks within the budget: layer 2 prunes its 2 lowest heads. */
    cfg.ratio = 0.25f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    c->scratch.positions[0] = 0;
    memset(c->scratch.att, 0, sizeof(float) * DIM);
    for (int h = 0; h < HEADS; h++)
        c->scratch.att[2 * h] = (float)(h == 1 ? 0.1 : 1.0 + h);
    c->pruning.config.fix_ratio = 1.0f;  /* the probe alone decides */
    pp_global_select_heads(c, 2, 1, 1, 1, 0);
    const uint8_t *kept_heads = c->pruning.head_kept + 2 * HEADS;
    for (int h = 0; h < HEADS; h++)
        CHECKF(kept_heads[h] == (h >= 2), "layer 2 head %d kept %d, expected %d",
               h, kept_heads[h], h >= 2);
    free(arena);
}

/* ---- Bias ---------------------------------------------------------------- */

/* Layer 1 means: o input channel c has mean 0.5 + c, down input j 2 + j. */
static void write_means(pp_context *c) {
    c->calibration.tokens = 1;
    for (int ch = 0; ch < DIM; ch++)
        c->calibration.attn_sum[1 * DIM + ch] = 0.5 + ch;
    for (int j = 0; j < HIDDEN; j++)
        c->calibration.mlp_sum[1 * HIDDEN + j] = 2.0 + j;
}

static void bias_adds_pruned_means(void) {
    if (!have_tiny)
        return;
    void *arena;
    pp_context *c = tiny_context(&arena);
    if (!c)
        return;
    write_means(c);
    pp_prune_config cfg = tiny_config(c);
    cfg.bias_compensation = 1;
    cfg.fix_ratio = 1.0f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    CHECK(c->pruning.have_bias);

    /* W_o is the identity, so W_o @ mean over all heads is the mean. */
    for (int d = 0; d < DIM; d++)
        near(c->pruning.global.attn_full_bias[1 * DIM + d], 0.5 + d, through_weights(0.5 + d),
             "full o bias");

    /* The probe makes head 2 (channels 4 and 5) the lowest: its bias is its
     * channels' means, 4.5 and 5.5, and 0 elsewhere. */
    c->scratch.positions[0] = 0;
    for (int ch = 0; ch < DIM; ch++)
        c->scratch.att[ch] = ch == 4 || ch == 5 ? 4.5f + (float)(ch - 4) : 20.0f;
    pp_global_select_heads(c, 1, 1, 1, 1, 0);
    const uint8_t *kept_heads = c->pruning.head_kept + HEADS;
    for (int h = 0; h < HEADS; h++)
        CHECKF(kept_heads[h] == (h != 2), "layer 1 head %d kept %d, expected %d",
               h, kept_heads[h], h != 2);
    const float *bias = c->pruning.attn_bias + DIM;
    for (int d = 0; d < DIM; d++)
        near(bias[d], d == 4 || d == 5 ? 0.5 + d : 0.0, through_weights(0.5 + d), "o bias");

    /* The MLP: the probe makes tile 1 (channels 2 and 3) the lowest. */
    for (int j = 0; j < HIDDEN; j++)
        c->scratch.hb[j] = j == 2 || j == 3 ? (float)(2 + j) : 50.0f;
    pp_global_select_channels(c, 1, 1, 1, 1, 0);
    const float *mlp_bias = c->pruning.mlp_bias + DIM;
    for (int d = 0; d < DIM; d++)
        near(mlp_bias[d], d == 2 || d == 3 ? 2.0 + d : 0.0, through_weights(2.0 + d), "down bias");

    /* Layer 0 is never pruned and has no bias. */
    for (int d = 0; d < DIM; d++) {
        CHECK(c->pruning.attn_bias[d] == 0.0f);
        CHECK(c->pruning.mlp_bias[d] == 0.0f);
    }
    free(arena);
}

/* After the pass the means move by the EMA at kept channels only, and the
 * full product follows them, so the bias of the pruned channels stays. */
static void mean_update_tracks_kept_channels(void) {
    if (!have_tiny)
        return;
    void *arena;
    pp_context *c = tiny_context(&arena);
    if (!c)
        return;
    write_means(c);
    pp_prune_config cfg = tiny_config(c);
    cfg.bias_compensation = 1;
    cfg.ema = 0.75f;
    CHECK(pp_set_pruning(c, &cfg) == PP_OK);
    memset(c->pruning.head_kept + HEADS, 1, HEADS);
    c->pruning.head_kept[HEADS + 2] = 0;  /* head 2: channels 4 and 5 */

    /* Two rows of two tokens; channel c reads c, c + 2, c + 4, c + 6, mean
     * c + 3. Kept: 0.75 (0.5 + c) + 0.25 (c + 3) = c + 1.125. */
    for (int t = 0; t < 4; t++)
        for (int ch = 0; ch < DIM; ch++)
            c->scratch.att[t * DIM + ch] = (float)(ch + 2 * t);
    pp_global_update_attention(c, 1, 2, 2);
    for (int ch = 0; ch < DIM; ch++) {
        const double want = ch == 4 || ch == 5 ? 0.5 + ch : ch + 1.125;
        near(c->pruning.global.attn_mean[DIM + ch], want, 1e-12, "updated mean");
        near(c->pruning.global.attn_full_bias[DIM + ch], want, through_weights(want),
             "full bias after the update");
    }
    free(arena);
}

/* ---- The real model ------------------------------------------------------ */

static fixture_model model;
static int have_model;

/* Calibrates on the first 2 batches of the wikitext calibration text. */
static int calibrate(pp_context *ctx) {
    const char *path = check_shared("data/wikitext-2-test.raw");
    if (!check_require_file(path))
        return 0;
    char err[256];
    size_t size;
    char *text = pp_read_text_file(path, &size, err, sizeof err);
    CHECKF(text != NULL, "%s", err);
    if (!text)
        return 0;
    pp_token_stream stream;
    const int ok = pp_tokenize_stories(ctx, text, size, 2 * 8 * 128 + 1, &stream,
                                       err, sizeof err) == 0;
    free(text);
    CHECKF(ok, "%s", err);
    if (!ok)
        return 0;
    int32_t batch[8 * 129], inputs[8 * 128];
    for (size_t i = 0; i < 2; i++) {
        pp_stream_batch(&stream, 128, 8, i, batch);
        for (int b = 0; b < 8; b++)
            memcpy(inputs + b * 128, batch + b * 129, 128 * sizeof(int32_t));
        CHECK(pp_calibrate(ctx, inputs, 8, 128) == PP_OK);
    }
    free(stream.ids);
    return 1;
}

static void fill_tokens(int32_t *tokens, int n) {
    for (int i = 0; i < n; i++)
        tokens[i] = i % 128 == 0 ? 1 : 3 + (i * 37) % 500;
}

static void real_ratio_zero_equals_dense(void) {
    if (!have_model)
        return;
    void *arena;
    pp_context *ctx = fixture_context(&model, 8, 128, pp_pool_workers(NULL), NULL, &arena);
    if (!ctx || !calibrate(ctx)) {
        free(arena);
        return;
    }
    int32_t tokens[2 * 64];
    fill_tokens(tokens, 2 * 64);
    float *dense = malloc(sizeof(float) * 2 * 64 * 512);
    float *pruned = malloc(sizeof(float) * 2 * 64 * 512);
    pp_prune_config cfg;
    pp_prune_defaults(pp_info(ctx), &cfg);
    cfg.method = PP_METHOD_DENSE;
    CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);
    CHECK(pp_forward(ctx, tokens, 2, 64, 0, 0, dense) == PP_OK);
    cfg.method = PP_METHOD_PP_GLOBAL;
    CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);
    CHECK(pp_forward(ctx, tokens, 2, 64, 0, PP_PROBE, pruned) == PP_OK);
    CHECK(memcmp(dense, pruned, sizeof(float) * 2 * 64 * 512) == 0);
    free(dense);
    free(pruned);
    free(arena);
}

/*
 * pp-global at ratio 0.4 with whole tiles, one probed batch. The kept sets
 * remove at most the uniform methods' parameter count, and less than one
 * unit short of it. The bytes read are a dense call's minus the pruned o
 * and down parts, because the probe reads every q, kv and gate/up part and
 * the bias reads no pruned part. The logits do not depend on the thread
 * count.
 */
static void real_budget_bytes_and_threads(void) {
    if (!have_model)
        return;
    enum { B = 8, S = 128, V = 512 };
    int32_t *tokens = malloc(sizeof(int32_t) * B * S);
    fill_tokens(tokens, B * S);
    float *first = malloc(sizeof(float) * B * S * V);
    float *logits = malloc(sizeof(float) * B * S * V);

    for (int threads = 1; threads <= 2; threads++) {
        pp_pool *pool = NULL;
        CHECK(pp_pool_create(&pool, threads) == 0);
        void *arena;
        pp_context *ctx = fixture_context(&model, B, S, pp_pool_workers(pool), NULL, &arena);
        if (!ctx || !calibrate(ctx)) {
            free(arena);
            pp_pool_destroy(pool);
            break;
        }
        const pp_model_info *info = pp_info(ctx);
        pp_prune_config cfg;
        pp_prune_defaults(info, &cfg);

        cfg.method = PP_METHOD_DENSE;
        CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);
        pp_stats_reset(ctx);
        CHECK(pp_forward(ctx, tokens, B, S, 0, 0, logits) == PP_OK);
        pp_stats dense;
        pp_stats_get(ctx, &dense);

        cfg.method = PP_METHOD_PP_GLOBAL;
        cfg.ratio = 0.4f;
        cfg.whole_tiles = 1;
        CHECK(pp_set_pruning(ctx, &cfg) == PP_OK);
        pp_stats_reset(ctx);
        CHECK(pp_forward(ctx, tokens, B, S, 0, PP_PROBE,
                         threads == 1 ? first : logits) == PP_OK);
        pp_stats run;
        pp_stats_get(ctx, &run);

        const uint64_t dim = (uint64_t)info->dim, hd = (uint64_t)info->head_dim;
        const uint64_t group = (uint64_t)info->group;
        const uint64_t o_bytes = pp_matrix_bytes(dim, hd, group);
        uint64_t removed = 0, uniform = 0, skipped_bytes = 0;
        uint8_t heads[64], channels[1024];
        for (int l = cfg.skip_layers; l < info->n_layers; l++) {
            CHECK(pp_kept_get(ctx, l, heads, channels) == PP_OK);
            for (int h = 0; h < info->n_heads; h++)
                if (!heads[h]) {
                    removed += 2 * dim * hd;
                    skipped_bytes += o_bytes;
                }
            for (int t = 0; t * info->tile < info->hidden_dim; t++) {
                const int begin = t * info->tile;
                const int width = info->hidden_dim - begin < info->tile
                                      ? info->hidden_dim - begin
                                      : info->tile;
                if (channels[begin])
                    continue;
                removed += 3 * dim * (uint64_t)width;
                skipped_bytes += pp_matrix_bytes(dim, (uint64_t)width, group);
            }
            uniform += (uint64_t)pp_heads_to_prune(ctx, pp_layer_ratio(ctx)) * 2 * dim * hd +
                       (uint64_t)pp_channels_to_prune(ctx, pp_layer_ratio(ctx)) * 3 * dim;
        }
        const uint64_t head_cost = 2 * dim * hd;
        const uint64_t tile_cost = 3 * dim * (uint64_t)info->tile;
        const uint64_t largest = head_cost > tile_cost ? head_cost : tile_cost;
        CHECKF(removed <= uniform && removed + largest > uniform,
               "removed %llu parameters, uniform methods %llu",
               (unsigned long long)removed, (unsigned long long)uniform);
        CHECKF(run.weight_bytes_read == dense.weight_bytes_read - skipped_bytes,
               "read %llu bytes, expected dense %llu minus pruned parts %llu",
               (unsigned long long)run.weight_bytes_read,
               (unsigned long long)dense.weight_bytes_read,
               (unsigned long long)skipped_bytes);
        CHECKF(run.macs_probe * 20 <= run.macs_dense,
               "probe %llu MACs of %llu dense: over 5%%",
               (unsigned long long)run.macs_probe, (unsigned long long)run.macs_dense);
        if (threads > 1)
            CHECKF(memcmp(first, logits, sizeof(float) * B * S * V) == 0,
                   "%s kernels: pp-global logits with %d threads differ from 1",
                   pp_isa(ctx), threads);
        free(arena);
        pp_pool_destroy(pool);
    }
    free(tokens);
    free(first);
    free(logits);
}

int main(void) {
    RUN(probe_size_share_and_floors);

    have_tiny = write_tiny_model(&tiny);
    RUN(fusion_weights_history_as_rows);
    RUN(history_fill_adds_unprobed_positions);
    RUN(bias_centers_the_scores);
    RUN(global_budget_ranks_z_scores);
    RUN(bias_adds_pruned_means);
    RUN(mean_update_tracks_kept_channels);
    free(tiny.bytes);

    have_model = fixture_load(&model, 0);
    RUN(real_ratio_zero_equals_dense);
    RUN(real_budget_bytes_and_threads);
    fixture_free(&model);
    return check_summary("test_adaptive");
}
