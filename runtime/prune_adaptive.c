/*
 * prune_adaptive.c - pp-global: Probe Pruning with a global allocation of
 * the pruning budget and bias compensation.
 *
 * Probe Pruning (probe.c) prunes the same share of heads and of MLP
 * channels in every pruned layer, probes one row of an 8-window batch,
 * weighs that probe by w = p / (p + g) against the history, scores the
 * probed positions only, and drops the pruned channels' output entirely.
 * pp-global keeps the probe and the history and changes five things, each
 * of which a pp_prune_config field switches off:
 *
 *   Probe size      (probe_share, probe_min_tokens) the probe has a fixed
 *                   share of the call's tokens, at least probe_min_tokens,
 *                   taken as whole positions of one row first, then more
 *                   rows. Measured on the held-out text, more positions
 *                   help more than more rows at the same cost.
 *   Fusion          (history_rows) the history weighs as history_rows probe
 *                   rows: w = R / (R + history_rows). pp's p / (p + g)
 *                   gives a one-row probe nearly all the weight wherever its
 *                   sample is larger than the history, which is noise.
 *   History fill    (history_fill) positions of the call outside the probe
 *                   add their history g[s][c] to the statistic F[c], so F
 *                   covers the whole call instead of the probed positions.
 *   Global budget   (global_budget) how many heads and MLP units each layer
 *                   prunes comes from one ranking over all pruned layers,
 *                   as FLAP ranks. Unit scores come from the history (the
 *                   expected value of the probe's statistic) and are
 *                   z-scored within each layer and kind (heads, MLP units).
 *                   All units are sorted together and removed from the
 *                   lowest while the removed parameters stay within the
 *                   uniform methods' count. A head costs its q rows and o
 *                   columns, 2 * dim * head_dim, and an MLP channel 3 * dim.
 *                   The probe then picks which units within each layer's
 *                   budget. The budgets are recomputed from the history at
 *                   the start of every probed call, because the probe runs
 *                   layer by layer and cannot see later layers before it
 *                   must choose.
 *   Bias            (bias_compensation) a mean per input channel of the o
 *                   and down projections, from calibration and then by EMA
 *                   at the kept channels after every probed pass, beside the
 *                   history's mean squares. The pruned channels' mean
 *                   contribution W[:, pruned] @ mean[pruned] is added to
 *                   the output, and units are scored by the variance they
 *                   leave, E[x^2] - mean^2, rather than by E[x^2].
 *
 * A unit's score is its expected squared output error if removed: the sum
 * over its channels c of F[c] * sum_d W[d,c]^2.
 *
 * The bias never reads a pruned tile: W @ mean over all channels is
 * computed once at set-up (reading every o and down tile), and each probed
 * layer subtracts the kept columns' part, which the pass reads anyway. The
 * means change only at kept channels, so that full product is updated from
 * kept columns too. These products are counted in macs_probe.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#define FUSE_EPS 1e-6
/* At most this share of a layer's heads, or of its MLP units, is pruned. */
#define MAX_UNIT_SHARE 0.95

static int history_slot(const pp_context *c, int position) {
    return position < c->history_len ? position : c->history_len - 1;
}

/* MLP unit width in channels: a tile when whole tiles are chosen. */
static int mlp_unit(const pp_context *c) {
    return c->pruning.config.whole_tiles ? c->info.tile : 1;
}

static int mlp_unit_count(const pp_context *c) {
    const int unit = mlp_unit(c);
    return (c->info.hidden_dim + unit - 1) / unit;
}

/* With the bias compensated, what pruning loses is a channel's variance
 * about its mean, so the scores use centered second moments. */
static int centered(const pp_context *c) {
    return c->pruning.config.bias_compensation;
}

/* ---- Buffers and configuration ------------------------------------------- */

void pp_global_allocate(pp_context *c, pp_arena *a, const pp_dims *d) {
    pp_global_state *g = &c->pruning.global;
    const size_t layers = (size_t)d->n_layers, dim = (size_t)d->dim;
    const size_t hidden = (size_t)d->hidden_dim;
    const size_t units = layers * ((size_t)d->n_heads + hidden);

    g->attn_mean = pp_arena_alloc(a, layers * dim, sizeof(double), 64);
    g->mlp_mean = pp_arena_alloc(a, layers * hidden, sizeof(double), 64);
    g->attn_full_bias = pp_arena_alloc(a, layers * dim, sizeof(double), 64);
    g->mlp_full_bias = pp_arena_alloc(a, layers * dim, sizeof(double), 64);
    g->head_budget = pp_arena_alloc(a, layers, sizeof(int32_t), 64);
    g->mlp_budget = pp_arena_alloc(a, layers, sizeof(int32_t), 64);
    g->unit_score = pp_arena_alloc(a, units, sizeof(double), 64);
    g->unit_order = pp_arena_alloc(a, units, sizeof(int32_t), 64);
}

int pp_global_config_valid(const pp_context *c, const pp_prune_config *k) {
    (void)c;
    return (k->global_budget == 0 || k->global_budget == 1) &&
           (k->bias_compensation == 0 || k->bias_compensation == 1) &&
           (k->history_fill == 0 || k->history_fill == 1) &&
           k->probe_min_tokens >= 0 && k->probe_share >= 0.0f &&
           k->probe_share <= 1.0f && !isnan(k->history_rows);
}

/*
 * Sets the probe size for probe_share: ceil(share * n_seq * n_tok) tokens,
 * but at least probe_min_tokens and at most all. They are whole positions
 * of one row first, then more rows, and at least min_probe_rows rows.
 */
void pp_global_probe_size(const pp_context *c, int n_seq, int n_tok, int *rows,
                          int *positions) {
    const pp_prune_config *cfg = &c->pruning.config;
    if (cfg->probe_share <= 0.0f)
        return;
    const int total = n_seq * n_tok;
    int want = (int)ceil((double)cfg->probe_share * total - 1e-6);
    if (want < cfg->probe_min_tokens)
        want = cfg->probe_min_tokens;
    if (want > total)
        want = total;
    const int P = want < n_tok ? want : n_tok;
    int R = (want + P - 1) / P;
    if (R < cfg->min_probe_rows)
        R = cfg->min_probe_rows;
    *rows = R < n_seq ? R : n_seq;
    *positions = P;
}

/* ---- Weighted columns of a q8 matrix ------------------------------------- */

/*
 * Adds sign * sum_i W[d, i] * values[i] to out[d], over the columns
 * i < width with mask[i] != 0 (every column when mask is NULL), for the q8
 * matrix [dim][width] at `part`. Returns the multiply-accumulates spent.
 */
static uint64_t add_columns(const pp_context *c, const uint8_t *part,
                            size_t width, const double *values,
                            const uint8_t *mask, double sign, double *out) {
    const size_t dim = (size_t)c->info.dim, group = (size_t)c->info.group;
    const size_t block_bytes = pp_q8_block_bytes(width, group);
    uint64_t macs = 0;

    for (size_t i = 0; i < width; i++) {
        if (mask && !mask[i])
            continue;
        const double v = sign * values[i];
        for (size_t d = 0; d < dim; d++) {
            const uint8_t *block = part + d / PP_Q8_BLOCK_ROWS * block_bytes;
            out[d] += (double)pp_q8_block_weight(block, width, group, d, i) * v;
        }
        macs += dim;
    }
    return macs;
}

/* Reads a tile part for a product outside the forward pass's own; sets
 * c->io_status and returns NULL when it cannot be read. */
static const uint8_t *read_part(pp_context *c, int layer, pp_part part,
                                int index) {
    const uint8_t *p = pp_tile_part(c, layer, part, index);
    pp_cache_unpin(c);
    if (!p && c->io_status == PP_OK)
        c->io_status = PP_ERR_CAPACITY;
    return p;
}

/*
 * Adds sign * sum_c W[d, c] * values[c] to out[d] for the o projection
 * (mlp 0) or the down projection (mlp 1) of `layer`. The sum runs over the
 * channels with channel_mask[c] in the heads or tiles with unit_mask[u],
 * and a NULL mask selects all.
 */
static pp_status add_projection(pp_context *c, int layer, int mlp,
                                const double *values, const uint8_t *unit_mask,
                                const uint8_t *channel_mask, double sign,
                                double *out) {
    uint64_t macs = 0;

    if (!mlp) {
        const size_t hd = (size_t)c->info.head_dim;
        for (int h = 0; h < c->info.n_heads; h++) {
            if (unit_mask && !unit_mask[h])
                continue;
            const uint8_t *o = read_part(c, layer, PP_PART_O, h);
            if (!o)
                return c->io_status;
            macs += add_columns(c, o, hd, values + (size_t)h * hd,
                                channel_mask ? channel_mask + (size_t)h * hd : NULL,
                                sign, out);
        }
    } else {
        const int tiles = (int)pp_mlp_tile_count(&c->dims);
        for (int t = 0; t < tiles; t++) {
            if (unit_mask && !unit_mask[t])
                continue;
            const size_t begin = (size_t)t * (size_t)c->info.tile;
            const size_t width = (size_t)pp_mlp_tile_width(&c->dims, (uint64_t)t);
            const uint8_t *down = read_part(c, layer, PP_PART_DOWN, t);
            if (!down)
                return c->io_status;
            macs += add_columns(c, down, width, values + begin,
                                channel_mask ? channel_mask + begin : NULL, sign,
                                out);
        }
    }
    c->stats.macs_probe += macs;
    return PP_OK;
}

/* ---- Scores -------------------------------------------------------------- */

/* Scores each unit u as sum over its channels c of F[c] * w2[c], where w2
 * is sum_d W[d,c]^2: the expected squared output error of removing it. */
static void score_units(const double *F, const float *w2, int width, int unit,
                        double *score) {
    for (int u = 0; u * unit < width; u++) {
        double sum = 0.0;
        for (int ch = u * unit; ch < width && ch < (u + 1) * unit; ch++)
            sum += F[ch] * (double)w2[ch];
        score[u] = sum;
    }
}

/* Returns the history's second moment g at one slot, centered on the
 * channel mean when the bias is compensated (clamped at 0). */
static double history_moment(const pp_context *c, double g, double mean) {
    if (!centered(c))
        return g;
    const double v = g - mean * mean;
    return v > 0.0 ? v : 0.0;
}

/*
 * Computes F[c] for one sublayer of a probed call from act, [R][P][width].
 * At a probe position F adds f = (1 - w) g + w p, the fusion of the
 * probe's second moment p (the mean over its R rows) with the history g.
 * The weight w is fix_ratio when that is set, else R / (R + history_rows),
 * else pp's p / (p + g + 1e-6). At the call's other positions F adds the
 * history alone when history_fill is on.
 */
static void fuse_probe(pp_context *c, const float *act, size_t width,
                       const float *history, const double *mean, int R, int P,
                       int n_tok, int pos, double *F) {
    const pp_prune_config *cfg = &c->pruning.config;
    const int with_history = cfg->use_history && c->calibration.tokens > 0;
    const int center = centered(c);

    for (size_t ch = 0; ch < width; ch++)
        F[ch] = 0.0;

    for (int t = 0, i = 0; t < n_tok; t++) {
        const int probed = i < P && c->scratch.positions[i] == t;
        const float *g = history + (size_t)history_slot(c, pos + t) * width;

        if (!probed) {
            if (with_history && cfg->history_fill)
                for (size_t ch = 0; ch < width; ch++)
                    F[ch] += history_moment(c, g[ch], mean[ch]);
            continue;
        }

        for (size_t ch = 0; ch < width; ch++) {
            const double shift = center ? mean[ch] : 0.0;
            double p = 0.0;
            for (int r = 0; r < R; r++) {
                const double v = act[((size_t)r * P + i) * width + ch] - shift;
                p += v * v;
            }
            p /= R;
            if (!with_history) {
                F[ch] += p;
                continue;
            }
            const double h = history_moment(c, g[ch], mean[ch]);
            double w = p / (p + h + FUSE_EPS);
            if (cfg->fix_ratio >= 0.0f)
                w = (double)cfg->fix_ratio;
            else if (cfg->history_rows >= 0.0f)
                w = R / (R + (double)cfg->history_rows);
            F[ch] += (1.0 - w) * h + w * p;
        }
        i++;
    }
}

/* Sums the history's second moments over all slots into F[c]. */
static void history_statistic(const pp_context *c, const float *history,
                              const double *mean, size_t width, double *F) {
    for (size_t ch = 0; ch < width; ch++)
        F[ch] = 0.0;
    for (int slot = 0; slot < c->history_len; slot++) {
        const float *g = history + (size_t)slot * width;
        for (size_t ch = 0; ch < width; ch++)
            F[ch] += history_moment(c, g[ch], mean[ch]);
    }
}

/* ---- Budgets ------------------------------------------------------------- */

static void uniform_budgets(pp_context *c) {
    pp_global_state *g = &c->pruning.global;
    const float ratio_l = pp_layer_ratio(c);
    for (int l = 0; l < c->info.n_layers; l++) {
        const int pruned = l >= c->pruning.config.skip_layers;
        g->head_budget[l] = pruned ? pp_heads_to_prune(c, ratio_l) : 0;
        g->mlp_budget[l] = pruned ? pp_channels_to_prune(c, ratio_l) / mlp_unit(c) : 0;
    }
}

/*
 * Sets head_budget and mlp_budget by the global ranking described in the
 * file header. The units of pruned layer i (counted from the first pruned
 * layer) sit at unit_score[i * stride ...]: n_heads heads, then the MLP
 * units.
 */
static void global_budgets(pp_context *c) {
    pp_global_state *g = &c->pruning.global;
    const int heads = c->info.n_heads, units = mlp_unit_count(c);
    const int unit = mlp_unit(c), hidden = c->info.hidden_dim;
    const size_t dim = (size_t)c->info.dim, hd = (size_t)c->info.head_dim;
    const int first = c->pruning.config.skip_layers;
    const int pruned_layers = c->info.n_layers - first;
    const int stride = heads + units;
    const uint64_t head_cost = 2 * (uint64_t)dim * hd;
    double *F = c->scratch.fused;

    uniform_budgets(c);
    uint64_t target = 0;
    for (int l = first; l < c->info.n_layers; l++)
        target += (uint64_t)g->head_budget[l] * head_cost +
                  (uint64_t)g->mlp_budget[l] * (uint64_t)unit * 3 * dim;

    for (int i = 0; i < pruned_layers; i++) {
        const int l = first + i;
        double *score = g->unit_score + (size_t)i * stride;

        history_statistic(c, c->pruning.attn_history + (size_t)l * c->history_len * dim,
                          g->attn_mean + (size_t)l * dim, dim, F);
        score_units(F, pp_o_column_stats(c, l) + dim, (int)dim, (int)hd, score);
        pp_standardize(score, heads);

        history_statistic(c, c->pruning.mlp_history +
                                 (size_t)l * c->history_len * (size_t)hidden,
                          g->mlp_mean + (size_t)l * hidden, (size_t)hidden, F);
        score_units(F, pp_down_column_stats(c, l) + hidden, hidden, unit,
                    score + heads);
        pp_standardize(score + heads, units);
    }

    const int n = pruned_layers * stride;
    pp_sort_indices(g->unit_score, n, 0, g->unit_order);
    for (int l = 0; l < c->info.n_layers; l++) {
        g->head_budget[l] = 0;
        g->mlp_budget[l] = 0;
    }
    const int head_cap = (int)floor(MAX_UNIT_SHARE * heads + 1e-6);
    const int unit_cap = (int)floor(MAX_UNIT_SHARE * units + 1e-6);
    uint64_t removed = 0;
    for (int k = 0; k < n; k++) {
        const int index = g->unit_order[k];
        const int l = first + index / stride, u = index % stride;
        const int is_head = u < heads;
        uint64_t cost = head_cost;
        if (!is_head) {
            const int begin = (u - heads) * unit;
            const int width = hidden - begin < unit ? hidden - begin : unit;
            cost = (uint64_t)width * 3 * dim;
        }
        if (is_head ? g->head_budget[l] >= head_cap : g->mlp_budget[l] >= unit_cap)
            continue;
        if (removed + cost > target)
            break;
        removed += cost;
        if (is_head)
            g->head_budget[l]++;
        else
            g->mlp_budget[l]++;
    }
}

static void compute_budgets(pp_context *c) {
    if (c->pruning.config.global_budget && c->pruning.config.ratio > 0.0f &&
        c->calibration.tokens > 0)
        global_budgets(c);
    else
        uniform_budgets(c);
}

/* ---- Bias ---------------------------------------------------------------- */

/* Sets each channel's mean from the calibration sums. */
static void calibration_means(pp_context *c) {
    pp_global_state *g = &c->pruning.global;
    const size_t layers = (size_t)c->info.n_layers;
    const size_t dim = (size_t)c->info.dim, hidden = (size_t)c->info.hidden_dim;
    const double n = (double)c->calibration.tokens;

    for (size_t i = 0; i < layers * dim; i++)
        g->attn_mean[i] = n > 0 ? c->calibration.attn_sum[i] / n : 0.0;
    for (size_t i = 0; i < layers * hidden; i++)
        g->mlp_mean[i] = n > 0 ? c->calibration.mlp_sum[i] / n : 0.0;
}

/* Computes W @ mean over all channels of every pruned layer, reading every
 * o and down tile once. */
static pp_status full_biases(pp_context *c) {
    pp_global_state *g = &c->pruning.global;
    const size_t dim = (size_t)c->info.dim, hidden = (size_t)c->info.hidden_dim;

    memset(g->attn_full_bias, 0, (size_t)c->info.n_layers * dim * sizeof(double));
    memset(g->mlp_full_bias, 0, (size_t)c->info.n_layers * dim * sizeof(double));
    for (int l = c->pruning.config.skip_layers; l < c->info.n_layers; l++) {
        pp_status st = add_projection(c, l, 0, g->attn_mean + (size_t)l * dim,
                                      NULL, NULL, 1.0,
                                      g->attn_full_bias + (size_t)l * dim);
        if (st == PP_OK)
            st = add_projection(c, l, 1, g->mlp_mean + (size_t)l * hidden, NULL,
                                NULL, 1.0, g->mlp_full_bias + (size_t)l * dim);
        if (st != PP_OK)
            return st;
    }
    return PP_OK;
}

/* Sets the layer's bias to W[:, pruned] @ mean[pruned], computed as
 * full - W[:, kept] @ mean[kept], or to 0 when nothing is pruned. */
static void set_bias(pp_context *c, int layer, int mlp, const uint8_t *unit_kept,
                     const uint8_t *channel_kept) {
    pp_global_state *g = &c->pruning.global;
    const size_t dim = (size_t)c->info.dim;
    const size_t width = mlp ? (size_t)c->info.hidden_dim : dim;
    float *bias = (mlp ? c->pruning.mlp_bias : c->pruning.attn_bias) +
                  (size_t)layer * dim;
    const double *full = (mlp ? g->mlp_full_bias : g->attn_full_bias) +
                         (size_t)layer * dim;
    const double *mean = (mlp ? g->mlp_mean : g->attn_mean) + (size_t)layer * width;
    double *acc = c->scratch.fused;

    int all_kept = 1;
    for (size_t ch = 0; ch < width && all_kept; ch++)
        all_kept = mlp ? channel_kept[ch] : unit_kept[ch / (size_t)c->info.head_dim];
    if (!c->pruning.config.bias_compensation || all_kept) {
        memset(bias, 0, dim * sizeof(float));
        return;
    }
    for (size_t d = 0; d < dim; d++)
        acc[d] = full[d];
    if (add_projection(c, layer, mlp, mean, unit_kept, mlp ? channel_kept : NULL,
                       -1.0, acc) != PP_OK)
        return;  /* c->io_status fails the call */
    for (size_t d = 0; d < dim; d++)
        bias[d] = (float)acc[d];
}

pp_status pp_global_setup(pp_context *c) {
    pp_pruning *p = &c->pruning;
    const size_t dim = (size_t)c->info.dim, layers = (size_t)c->info.n_layers;

    calibration_means(c);
    memset(p->attn_bias, 0, layers * dim * sizeof(float));
    memset(p->mlp_bias, 0, layers * dim * sizeof(float));
    if (p->config.bias_compensation && p->config.ratio > 0.0f) {
        const pp_status st = full_biases(c);
        if (st != PP_OK)
            return st;
        p->have_bias = 1;
    }
    compute_budgets(c);
    return PP_OK;
}

/* ---- Selection after a probe --------------------------------------------- */

void pp_global_select_heads(pp_context *c, int layer, int n_tok, int R, int P,
                            int pos) {
    pp_global_state *g = &c->pruning.global;
    const size_t dim = (size_t)c->info.dim;
    const int heads = c->info.n_heads;
    uint8_t *kept_heads = c->pruning.head_kept + (size_t)layer * heads;

    /* The first pruned layer of a call: budgets from the latest history. */
    if (layer == c->pruning.config.skip_layers)
        compute_budgets(c);

    fuse_probe(c, c->scratch.att, dim,
               c->pruning.attn_history + (size_t)layer * c->history_len * dim,
               g->attn_mean + (size_t)layer * dim, R, P, n_tok, pos,
               c->scratch.fused);
    score_units(c->scratch.fused, pp_o_column_stats(c, layer) + dim, (int)dim,
                c->info.head_dim, c->scratch.unit_score);
    pp_select_lowest(c->scratch.unit_score, heads, g->head_budget[layer],
                     c->scratch.order, kept_heads);
    set_bias(c, layer, 0, kept_heads, NULL);
}

void pp_global_select_channels(pp_context *c, int layer, int n_tok, int R,
                               int P, int pos) {
    pp_global_state *g = &c->pruning.global;
    const size_t hidden = (size_t)c->info.hidden_dim;
    const int unit = mlp_unit(c), units = mlp_unit_count(c);
    uint8_t *kept_channels = c->pruning.channel_kept + (size_t)layer * hidden;

    fuse_probe(c, c->scratch.hb, hidden,
               c->pruning.mlp_history + (size_t)layer * c->history_len * hidden,
               g->mlp_mean + (size_t)layer * hidden, R, P, n_tok, pos,
               c->scratch.fused);
    score_units(c->scratch.fused, pp_down_column_stats(c, layer) + hidden,
                (int)hidden, unit, c->scratch.unit_score);

    if (unit == 1) {
        pp_select_lowest(c->scratch.unit_score, units, g->mlp_budget[layer],
                         c->scratch.order, kept_channels);
    } else {
        uint8_t *tile_kept = c->pruning.tile_kept + (size_t)layer * units;
        pp_select_lowest(c->scratch.unit_score, units, g->mlp_budget[layer],
                         c->scratch.order, tile_kept);
        for (size_t j = 0; j < hidden; j++)
            kept_channels[j] = tile_kept[j / (size_t)unit];
    }
    pp_refresh_tile_kept(c, layer);
    set_bias(c, layer, 1,
             c->pruning.tile_kept + (size_t)layer * pp_mlp_tile_count(&c->dims),
             kept_channels);
}

/* ---- Means after the pruned pass ----------------------------------------- */

/*
 * Moves mean[c] to m mean[c] + (1 - m) (batch mean of act[., c]) at kept
 * channels, and adds W[:, kept] @ (change of mean) to full, so that full
 * stays W @ mean without reading pruned columns.
 */
static void update_means(pp_context *c, int layer, int mlp, const float *act,
                         int n_seq, int n_tok) {
    pp_global_state *g = &c->pruning.global;
    const size_t dim = (size_t)c->info.dim;
    const size_t width = mlp ? (size_t)c->info.hidden_dim : dim;
    const size_t n = (size_t)n_seq * (size_t)n_tok;
    const double m = (double)c->pruning.config.ema;
    double *mean = (mlp ? g->mlp_mean : g->attn_mean) + (size_t)layer * width;
    double *full = (mlp ? g->mlp_full_bias : g->attn_full_bias) + (size_t)layer * dim;
    const uint8_t *channel_kept = c->pruning.channel_kept + (size_t)layer * width;
    const uint8_t *head_kept = c->pruning.head_kept + (size_t)layer * c->info.n_heads;
    double *change = c->scratch.fused;

    if (!c->pruning.config.bias_compensation)
        return;
    for (size_t ch = 0; ch < width; ch++) {
        const int kept = mlp ? channel_kept[ch] : head_kept[ch / (size_t)c->info.head_dim];
        change[ch] = 0.0;
        if (!kept)
            continue;
        double sum = 0.0;
        for (size_t j = 0; j < n; j++)
            sum += act[j * width + ch];
        const double updated = m * mean[ch] + (1.0 - m) * (sum / (double)n);
        change[ch] = updated - mean[ch];
        mean[ch] = updated;
    }
    if (mlp)
        add_projection(c, layer, 1, change,
                       c->pruning.tile_kept + (size_t)layer * pp_mlp_tile_count(&c->dims),
                       channel_kept, 1.0, full);
    else
        add_projection(c, layer, 0, change, head_kept, NULL, 1.0, full);
}

void pp_global_update_attention(pp_context *c, int layer, int n_seq, int n_tok) {
    update_means(c, layer, 0, c->scratch.att, n_seq, n_tok);
}

void pp_global_update_mlp(pp_context *c, int layer, int n_seq, int n_tok) {
    update_means(c, layer, 1, c->scratch.hb, n_seq, n_tok);
}
