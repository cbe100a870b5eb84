/*
 * prune_static.c - the static structured-pruning baselines, decided once
 * from calibration statistics (the input of the attention output and MLP
 * down projections, per channel):
 *
 *   Wanda-sp  channel score sum_d |W[d,c]| * sqrt(mean x_c^2); a head or a
 *             tile scores the sum of its channels; per-layer counts as in
 *             Probe Pruning.
 *   FLAP      fluctuation var(x_c) * sum_d W[d,c]^2 (sample variance over
 *             the calibration tokens); a head or tile sums its channels;
 *             head and MLP scores are standardized within each layer, then
 *             all units of the pruned layers are ranked together and the
 *             lowest removed until the removed parameters reach ratio_l
 *             times the prunable total (a head costs its q rows and o
 *             columns, 2 * dim * head_dim; a channel 3 * dim). The pruned
 *             inputs' mean contribution W[:, pruned] @ mean(x[pruned]) is
 *             added back to the output as a bias.
 *
 * References: Wanda, Sun et al. 2023 (structured variant as in the FLAP
 * paper); FLAP, An et al., AAAI 2024.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Per-layer unit scores: heads, then MLP units (channels or whole tiles).
 * Written into scratch.unit_score / fused, which hold max(hidden, heads). */
typedef struct unit_scores {
    double *heads;  /* [n_heads] */
    double *mlp;    /* [n_mlp_units] */
    int n_mlp_units, mlp_unit;  /* unit width in channels */
} unit_scores;

static double channel_mean(const pp_context *c, const double *sum) {
    return *sum / (double)c->calibration.tokens;
}

/* Raw score of one input channel with weight column statistics `w` (the
 * [3][width] block from the file) at channel `ch`. */
static double channel_score(const pp_context *c, pp_method method,
                            const float *w, size_t width, size_t ch,
                            double sum, double sumsq) {
    const double n = (double)c->calibration.tokens;
    if (method == PP_METHOD_WANDASP)
        return (double)w[ch] * sqrt(sumsq / n);
    /* FLAP: sample variance times sum_d W^2. */
    const double var = n > 1 ? (sumsq - sum * sum / n) / (n - 1) : 0.0;
    return (var > 0 ? var : 0.0) * (double)w[width + ch];
}

static void layer_scores(pp_context *c, pp_method method, int layer,
                         unit_scores *u) {
    const size_t dim = (size_t)c->info.dim, hidden = (size_t)c->info.hidden_dim;
    const size_t hd = (size_t)c->info.head_dim;
    const pp_calibration *cal = &c->calibration;
    const float *wo = pp_o_column_stats(c, layer);
    const float *wd = pp_down_column_stats(c, layer);
    const double *as = cal->attn_sum + (size_t)layer * dim;
    const double *aq = cal->attn_sumsq + (size_t)layer * dim;
    const double *ms = cal->mlp_sum + (size_t)layer * hidden;
    const double *mq = cal->mlp_sumsq + (size_t)layer * hidden;

    for (int h = 0; h < c->info.n_heads; h++) {
        double sum = 0.0;
        for (size_t ch = (size_t)h * hd; ch < (size_t)(h + 1) * hd; ch++)
            sum += channel_score(c, method, wo, dim, ch, as[ch], aq[ch]);
        u->heads[h] = sum;
    }

    u->mlp_unit = c->pruning.config.whole_tiles ? c->info.tile : 1;
    u->n_mlp_units = (int)((hidden + (size_t)u->mlp_unit - 1) / (size_t)u->mlp_unit);
    for (int t = 0; t < u->n_mlp_units; t++) {
        double sum = 0.0;
        for (size_t j = (size_t)t * u->mlp_unit;
             j < hidden && j < (size_t)(t + 1) * u->mlp_unit; j++)
            sum += channel_score(c, method, wd, hidden, j, ms[j], mq[j]);
        u->mlp[t] = sum;
    }
}

/* Sets channel_kept of a layer from kept MLP units of width `unit`. */
static void set_channels(pp_context *c, int layer, const uint8_t *unit_kept,
                         int unit) {
    uint8_t *kept = c->pruning.channel_kept + (size_t)layer * c->info.hidden_dim;
    for (int j = 0; j < c->info.hidden_dim; j++)
        kept[j] = unit_kept[j / unit];
    pp_refresh_tile_kept(c, layer);
}

static void select_wandasp(pp_context *c) {
    const float ratio_l = pp_layer_ratio(c);
    const int heads = c->info.n_heads;
    uint8_t *unit_kept = c->scratch.all_kept;  /* restored below */
    double *mlp = c->scratch.fused;

    for (int l = c->pruning.config.skip_layers; l < c->info.n_layers; l++) {
        unit_scores u = {c->scratch.unit_score, mlp, 0, 1};
        layer_scores(c, PP_METHOD_WANDASP, l, &u);
        pp_select_lowest(u.heads, heads, pp_heads_to_prune(c, ratio_l),
                         c->scratch.order,
                         c->pruning.head_kept + (size_t)l * heads);

        const int prune = pp_channels_to_prune(c, ratio_l) / u.mlp_unit;
        uint8_t *channel_kept = c->pruning.channel_kept + (size_t)l * c->info.hidden_dim;
        if (u.mlp_unit == 1) {
            pp_select_lowest(u.mlp, u.n_mlp_units, prune, c->scratch.order,
                             channel_kept);
            pp_refresh_tile_kept(c, l);
        } else {
            pp_select_lowest(u.mlp, u.n_mlp_units, prune, c->scratch.order,
                             unit_kept);
            set_channels(c, l, unit_kept, u.mlp_unit);
        }
    }
    (void)unit_kept;
}

/*
 * FLAP's global ranking needs the scores of every unit of every pruned
 * layer at once, more than the scratch holds for large models; so it is a
 * threshold search: the removal stops at the score where the removed
 * parameters first reach the target. Scores are recomputed per layer for
 * each candidate threshold (cheap: per-channel arithmetic only).
 */
static uint64_t removed_below(pp_context *c, double threshold, int inclusive,
                              int apply) {
    const uint64_t dim = (uint64_t)c->info.dim, hd = (uint64_t)c->info.head_dim;
    const int heads = c->info.n_heads;
    uint64_t removed = 0;

    for (int l = c->pruning.config.skip_layers; l < c->info.n_layers; l++) {
        unit_scores u = {c->scratch.unit_score, c->scratch.fused, 0, 1};
        layer_scores(c, PP_METHOD_FLAP, l, &u);
        pp_standardize(u.heads, heads);
        pp_standardize(u.mlp, u.n_mlp_units);

        uint8_t *head_kept = c->pruning.head_kept + (size_t)l * heads;
        for (int h = 0; h < heads; h++) {
            const int cut = inclusive ? u.heads[h] <= threshold
                                      : u.heads[h] < threshold;
            removed += cut ? 2 * dim * hd : 0;
            if (apply)
                head_kept[h] = !cut;
        }
        uint8_t *channel_kept = c->pruning.channel_kept + (size_t)l * c->info.hidden_dim;
        for (int t = 0; t < u.n_mlp_units; t++) {
            const int cut = inclusive ? u.mlp[t] <= threshold : u.mlp[t] < threshold;
            for (int j = t * u.mlp_unit; j < c->info.hidden_dim && j < (t + 1) * u.mlp_unit; j++) {
                removed += cut ? 3 * dim : 0;
                if (apply)
                    channel_kept[j] = !cut;
            }
        }
        if (apply)
            pp_refresh_tile_kept(c, l);
    }
    return removed;
}

/*
 * Finds the smallest score s such that removing every unit with score <= s
 * reaches the target, by bisection over the standardized scores (which lie
 * within a few standard deviations of 0); ties at s are all removed.
 */
static void select_flap(pp_context *c) {
    const uint64_t dim = (uint64_t)c->info.dim, hd = (uint64_t)c->info.head_dim;
    const uint64_t pruned_layers =
        (uint64_t)(c->info.n_layers - c->pruning.config.skip_layers);
    const uint64_t total =
        pruned_layers * ((uint64_t)c->info.n_heads * 2 * dim * hd +
                         (uint64_t)c->info.hidden_dim * 3 * dim);
    const double target = (double)pp_layer_ratio(c) * (double)total;

    double lo = -1e6, hi = 1e6;  /* removed(lo) < target <= removed(hi) */
    if ((double)removed_below(c, lo, 1, 0) >= target)
        hi = lo;
    for (int iter = 0; iter < 200 && hi - lo > 0; iter++) {
        const double mid = lo + (hi - lo) / 2;
        if (mid <= lo || mid >= hi)
            break;
        if ((double)removed_below(c, mid, 1, 0) >= target)
            hi = mid;
        else
            lo = mid;
    }
    removed_below(c, hi, 1, 1);
}

/* Adds W[:, pruned] @ mean(x[pruned]) of every pruned head and channel to
 * the layer's output bias, from the int8 weights. */
static pp_status compute_bias(pp_context *c) {
    const size_t dim = (size_t)c->info.dim, hd = (size_t)c->info.head_dim;
    const size_t hidden = (size_t)c->info.hidden_dim, group = (size_t)c->info.group;

    for (int l = 0; l < c->info.n_layers; l++) {
        float *attn_bias = c->pruning.attn_bias + (size_t)l * dim;
        float *mlp_bias = c->pruning.mlp_bias + (size_t)l * dim;
        memset(attn_bias, 0, dim * sizeof(float));
        memset(mlp_bias, 0, dim * sizeof(float));

        for (int h = 0; h < c->info.n_heads; h++) {
            if (c->pruning.head_kept[(size_t)l * c->info.n_heads + h])
                continue;
            const uint8_t *o = pp_tile_part(c, l, PP_PART_O, h);
            pp_cache_unpin(c);
            if (!o)
                return c->io_status != PP_OK ? c->io_status : PP_ERR_CAPACITY;
            const size_t o_block_bytes = pp_q8_block_bytes(hd, group);
            for (size_t d = 0; d < dim; d++) {
                const uint8_t *block = o + d / PP_Q8_BLOCK_ROWS * o_block_bytes;
                double acc = 0.0;
                for (size_t i = 0; i < hd; i++) {
                    const size_t ch = (size_t)h * hd + i;
                    const double mean = channel_mean(
                        c, &c->calibration.attn_sum[(size_t)l * dim + ch]);
                    acc += (double)pp_q8_block_weight(block, hd, group, d, i) * mean;
                }
                attn_bias[d] += (float)acc;
            }
        }

        const size_t tiles = (size_t)pp_mlp_tile_count(&c->dims);
        for (size_t t = 0; t < tiles; t++) {
            const size_t width = (size_t)pp_mlp_tile_width(&c->dims, t);
            const size_t begin = t * (size_t)c->info.tile;
            int all_kept = 1;
            for (size_t i = 0; i < width; i++)
                all_kept &= c->pruning.channel_kept[(size_t)l * hidden + begin + i];
            if (all_kept)
                continue;
            const uint8_t *down = pp_tile_part(c, l, PP_PART_DOWN, (int)t);
            pp_cache_unpin(c);
            if (!down)
                return c->io_status != PP_OK ? c->io_status : PP_ERR_CAPACITY;
            for (size_t i = 0; i < width; i++) {
                const size_t j = begin + i;
                if (c->pruning.channel_kept[(size_t)l * hidden + j])
                    continue;
                const double mean =
                    channel_mean(c, &c->calibration.mlp_sum[(size_t)l * hidden + j]);
                const size_t block_bytes = pp_q8_block_bytes(width, group);
                for (size_t d = 0; d < dim; d++) {
                    const uint8_t *block = down + d / PP_Q8_BLOCK_ROWS * block_bytes;
                    mlp_bias[d] += (float)((double)pp_q8_block_weight(
                                               block, width, group, d, i) *
                                           mean);
                }
            }
        }
    }
    c->pruning.have_bias = 1;
    return PP_OK;
}

pp_status pp_static_select(pp_context *c) {
    if (c->calibration.tokens == 0)
        return PP_ERR_STATE;
    if (c->pruning.config.method == PP_METHOD_WANDASP) {
        select_wandasp(c);
    } else {
        select_flap(c);
        pp_status st = compute_bias(c);
        if (st != PP_OK)
            return st;
    }
    memset(c->scratch.all_kept, 1,
           (size_t)(c->info.n_heads > (int)pp_mlp_tile_count(&c->dims)
                        ? c->info.n_heads
                        : (int)pp_mlp_tile_count(&c->dims)));
    return PP_OK;
}
