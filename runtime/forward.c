/*
 * forward.c - the batched forward pass over kept tiles.
 *
 * A call runs n_seq sequences of n_tok tokens each, at positions
 * [pos, pos + n_tok) of every sequence. Per layer:
 *
 *   attention  x += o(attention(rope(q(xb)), rope(k(xb)), v(xb))),
 *              xb = rmsnorm(x); q and o only for kept heads, k and v for all
 *              kv heads (grouped-query attention: query head h reads kv head
 *              h / (n_heads / n_kv_heads))
 *   MLP        x += down(silu(gate(xb)) * up(xb)), xb = rmsnorm(x); only the
 *              kept channels, read tile by tile
 *
 * With Probe Pruning, each sublayer of a pruned layer first runs a probe
 * (probe.c) that chooses the kept units from a few tokens of this batch.
 *
 * Products run on int8: the input of every projection is quantized per
 * group, with groups restarting at head and tile boundaries so that each
 * tile's part of a product is a self-contained gemm_q8 call. Work is split
 * over the workers by tile for q, k, v, gate and up, and by output rows for
 * o and down, so every output element is summed in the same order whatever
 * the thread count.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* A blocked q8 matrix inside a tile (kernels.h). */
typedef struct q8_matrix {
    const uint8_t *w;
    size_t rows, cols;
} q8_matrix;

static q8_matrix matrix_at(const uint8_t *base, size_t rows, size_t cols) {
    q8_matrix out = {base, rows, cols};
    return out;
}

static size_t matrix_bytes(size_t rows, size_t cols, size_t group) {
    return (size_t)pp_matrix_bytes(rows, cols, group);
}

/* Offset of row `row`, a multiple of PP_Q8_BLOCK_ROWS, in a matrix of rows
 * of `cols` values. */
static size_t matrix_rows_offset(size_t row, size_t cols, size_t group) {
    return row / PP_Q8_BLOCK_ROWS * pp_q8_block_bytes(cols, group);
}

/* ---- Quantizing activations --------------------------------------------- */

/* Rows of `width` floats split into chunks of `chunk` (heads or tiles), each
 * quantized with its own groups; chunks with mask[chunk] == 0 are skipped. */
typedef struct quantize_job {
    pp_context *c;
    const float *x;
    size_t width, chunk, chunk_groups, row_groups, rows_per_task, n;
    const uint8_t *mask;
} quantize_job;

static void quantize_task(void *arg, size_t index) {
    const quantize_job *job = arg;
    const size_t group = (size_t)job->c->info.group;
    const size_t end = (index + 1) * job->rows_per_task < job->n
                           ? (index + 1) * job->rows_per_task
                           : job->n;

    for (size_t j = index * job->rows_per_task; j < end; j++) {
        for (size_t begin = 0, u = 0; begin < job->width;
             begin += job->chunk, u++) {
            if (job->mask && !job->mask[u])
                continue;
            const size_t len = job->width - begin < job->chunk
                                   ? job->width - begin
                                   : job->chunk;
            job->c->kernels.quantize_q8(
                len, group, job->x + j * job->width + begin,
                job->c->scratch.xq + j * job->width + begin,
                job->c->scratch.xs + j * job->row_groups + u * job->chunk_groups);
        }
    }
}

/* Quantizes n rows of x (row stride = width) into scratch.xq / xs. Returns
 * the scale stride per row. */
static size_t quantize_rows(pp_context *c, const float *x, size_t n,
                            size_t width, size_t chunk, const uint8_t *mask) {
    quantize_job job = {c, x, width, chunk, 0, 0, 0, n, mask};
    job.chunk_groups = pp_group_count(chunk, (size_t)c->info.group);
    job.row_groups = pp_group_count(width, chunk) * job.chunk_groups;
    job.rows_per_task = n / (4 * (size_t)c->n_threads) + 1;
    pp_parallel(c, (n + job.rows_per_task - 1) / job.rows_per_task,
                quantize_task, &job);
    return job.row_groups;
}

/* ---- Projections --------------------------------------------------------- */

/* One gemm whose output rows are disjoint from every other job's. */
typedef struct row_job {
    q8_matrix m;
    const int8_t *x;
    const float *xs;
    float *y;
    size_t ldy;
} row_job;

/* Job lists live in scratch.jobs, 64 bytes per entry. */
_Static_assert(sizeof(row_job) <= 64, "a row job must fit its 64-byte slot");

typedef struct row_jobs {
    pp_context *c;
    row_job *jobs;
    size_t n, ldx, ldxs;
    size_t count, per_task;  /* jobs, and consecutive jobs per task */
} row_jobs;

/* Returns the q8_matrix as the next-product hint of a GEMV kernel. */
static pp_q8_next next_of(const q8_matrix *m) {
    return m ? (pp_q8_next){m->w, m->rows, m->cols}
             : (pp_q8_next){NULL, 0, 0};
}

/* Splits `count` items into consecutive runs for the workers: one run on
 * one thread, else 4 per thread to balance them. */
static size_t items_per_task(const pp_context *c, size_t count) {
    const size_t tasks = c->n_threads > 1 ? 4 * (size_t)c->n_threads : 1;
    return count < tasks ? 1 : (count + tasks - 1) / tasks;
}

/* Runs a task's jobs in order. With one activation row, each job's kernel
 * also starts loading the weights of the job after it, so the run goes on
 * at memory speed across job boundaries. */
static void row_task(void *arg, size_t index) {
    const row_jobs *r = arg;
    const size_t group = (size_t)r->c->info.group;
    const size_t first = index * r->per_task;
    const size_t end = first + r->per_task < r->count ? first + r->per_task
                                                      : r->count;
    for (size_t i = first; i < end; i++) {
        const row_job *j = &r->jobs[i];
        if (r->n == 1) {
            const pp_q8_next next = next_of(i + 1 < end ? &r->jobs[i + 1].m
                                                        : NULL);
            r->c->kernels.gemv_q8(j->m.rows, j->m.cols, group, j->m.w, j->x,
                                  j->xs, j->y, 0, &next);
        } else {
            r->c->kernels.gemm_q8(j->m.rows, r->n, j->m.cols, group, j->m.w,
                                  j->x, r->ldx, j->xs, r->ldxs, j->y, j->ldy,
                                  0);
        }
    }
}

/* Row jobs collected for one parallel run. A read source's tile cache may
 * fill up with the parts of the jobs collected so far; then they run early
 * and collection continues (row jobs are independent, so the result is the
 * same). */
typedef struct row_batch {
    row_jobs run;
    size_t count;
} row_batch;

static void row_batch_flush(pp_context *c, row_batch *b) {
    if (b->count > 0) {
        b->run.count = b->count;
        b->run.per_task = items_per_task(c, b->count);
        pp_parallel_heavy(c, (b->count + b->run.per_task - 1) / b->run.per_task,
                          row_task, &b->run);
    }
    b->count = 0;
    pp_cache_unpin(c);
}

/*
 * Returns a tile part; when the tile cache has no free slot, runs the work
 * collected so far through `flush` (which unpins its parts) and asks again.
 * NULL after a read error (c->io_status says which).
 */
static const uint8_t *part_or_flush(pp_context *c, int layer, pp_part part,
                                    int index, void (*flush)(pp_context *, void *),
                                    void *batch) {
    const uint8_t *p = pp_tile_part(c, layer, part, index);
    if (!p && c->io_status == PP_OK) {
        flush(c, batch);
        p = pp_tile_part(c, layer, part, index);
        if (!p && c->io_status == PP_OK)
            c->io_status = PP_ERR_CAPACITY;
    }
    return p;
}

static void flush_rows(pp_context *c, void *batch) { row_batch_flush(c, batch); }

static const uint8_t *row_part(pp_context *c, row_batch *b, int layer,
                               pp_part part, int index) {
    return part_or_flush(c, layer, part, index, flush_rows, b);
}

static void row_batch_add(row_batch *b, q8_matrix m, float *y, size_t ldy) {
    b->run.jobs[b->count++] = (row_job){m, b->run.c->scratch.xq,
                                        b->run.c->scratch.xs, y, ldy};
}

/*
 * A product whose output sums over units (heads or tiles). With several
 * activation rows (prefill), each task owns a range of output rows and adds
 * the units in order. With one (decode), whole parts stream best, so the
 * units are split by index into PP_COLUMN_PARTITIONS fixed ranges. Each
 * task sums one range in order into its own partial sum, and the partial
 * sums are added in order at the end. Neither the thread count nor a tile cache
 * that runs a product in pieces changes the order of any addition.
 */
typedef struct column_unit {
    q8_matrix m;       /* [dim][width] */
    size_t x_offset;   /* first input column of the unit */
    size_t xs_offset;  /* its first scale in each row */
    size_t partition;  /* of the unit's index, for decode */
} column_unit;

_Static_assert(sizeof(column_unit) <= 64, "a unit must fit its 64-byte slot");

typedef struct column_job {
    pp_context *c;
    const column_unit *units;
    size_t n_units, n, ldx, ldxs, rows, rows_per_task;
    float *y;  /* [n][rows] */
    int zero;  /* clear y first (the first run of a product) */
} column_job;

/* Decode: task p adds the units of partition p, which lie together in the
 * unit list, to partial sum p (scratch.partials[p][rows]). */
static void partition_task(void *arg, size_t p) {
    const column_job *job = arg;
    pp_context *c = job->c;
    const size_t group = (size_t)c->info.group;
    float *partial = c->scratch.partials + p * job->rows;

    size_t u = 0;
    while (u < job->n_units && job->units[u].partition < p)
        u++;
    for (; u < job->n_units && job->units[u].partition == p; u++) {
        const column_unit *unit = &job->units[u];
        pp_q8_next next = {NULL, 0, 0};
        if (u + 1 < job->n_units && job->units[u + 1].partition == p)
            next = (pp_q8_next){job->units[u + 1].m.w, job->rows,
                                job->units[u + 1].m.cols};
        c->kernels.gemv_q8(job->rows, unit->m.cols, group, unit->m.w,
                           c->scratch.xq + unit->x_offset,
                           c->scratch.xs + unit->xs_offset, partial, 1, &next);
    }
}

static void column_task(void *arg, size_t index) {
    const column_job *job = arg;
    const size_t group = (size_t)job->c->info.group;
    const size_t begin = index * job->rows_per_task;
    const size_t end = begin + job->rows_per_task < job->rows
                           ? begin + job->rows_per_task
                           : job->rows;

    if (job->zero)
        for (size_t j = 0; j < job->n; j++)
            memset(job->y + j * job->rows + begin, 0, (end - begin) * sizeof(float));

    for (size_t u = 0; u < job->n_units; u++) {
        const column_unit *unit = &job->units[u];
        const size_t width = unit->m.cols;
        const int8_t *x = job->c->scratch.xq + unit->x_offset;
        const float *xs = job->c->scratch.xs + unit->xs_offset;
        /* begin is a whole number of blocks: see run_columns. */
        const uint8_t *w = unit->m.w + matrix_rows_offset(begin, width, group);
        if (job->n == 1) {
            /* The next unit's rows of this task lie elsewhere in memory. */
            pp_q8_next next = {NULL, 0, 0};
            if (u + 1 < job->n_units) {
                const q8_matrix *after = &job->units[u + 1].m;
                next = (pp_q8_next){
                    after->w + matrix_rows_offset(begin, after->cols, group),
                    end - begin, after->cols};
            }
            job->c->kernels.gemv_q8(end - begin, width, group, w, x, xs,
                                    job->y + begin, 1, &next);
        } else {
            job->c->kernels.gemm_q8(end - begin, job->n, width, group, w, x,
                                    job->ldx, xs, job->ldxs, job->y + begin,
                                    job->rows, 1);
        }
    }
}

static void run_columns(pp_context *c, const column_unit *units, size_t n_units,
                        size_t n, size_t ldx, size_t ldxs, float *y, int zero) {
    const size_t rows = (size_t)c->info.dim;
    column_job job = {c, units, n_units, n, ldx, ldxs, rows, 0, y, zero};
    if (n == 1) {
        if (zero)
            memset(c->scratch.partials, 0,
                   PP_COLUMN_PARTITIONS * rows * sizeof(float));
        pp_parallel_heavy(c, PP_COLUMN_PARTITIONS, partition_task, &job);
        return;
    }
    /* Tasks split the rows at block boundaries of the blocked layout. */
    const size_t blocks = (rows + PP_Q8_BLOCK_ROWS - 1) / PP_Q8_BLOCK_ROWS;
    job.rows_per_task = items_per_task(c, blocks) * PP_Q8_BLOCK_ROWS;
    pp_parallel_heavy(c, (rows + job.rows_per_task - 1) / job.rows_per_task,
                      column_task, &job);
}

/* Units of a column product collected for one run; when the tile cache
 * fills up, the units so far run and the rest add to their sums later, in
 * the same order, so the result does not change. */
typedef struct column_batch {
    column_unit *units;
    size_t count, n, ldx, ldxs;
    float *y;
    int started;
} column_batch;

static void column_batch_flush(pp_context *c, column_batch *b) {
    if (b->count > 0 || !b->started)
        run_columns(c, b->units, b->count, b->n, b->ldx, b->ldxs, b->y,
                    !b->started);
    b->started = 1;
    b->count = 0;
    pp_cache_unpin(c);
}

/* Runs the rest of a column product. In decode, it then adds the partial
 * sums into y in partition order. */
static void column_batch_finish(pp_context *c, column_batch *b) {
    column_batch_flush(c, b);
    if (b->n != 1)
        return;
    const size_t rows = (size_t)c->info.dim;
    const float *partial = c->scratch.partials;
    for (size_t d = 0; d < rows; d++) {
        float sum = partial[d];
        for (size_t p = 1; p < PP_COLUMN_PARTITIONS; p++)
            sum += partial[p * rows + d];
        b->y[d] = sum;
    }
}

/* The partition of unit `index` of `count`. */
static size_t partition_of(size_t index, size_t count) {
    return index * PP_COLUMN_PARTITIONS / count;
}

static void flush_columns(pp_context *c, void *batch) { column_batch_flush(c, batch); }

static const uint8_t *column_part(pp_context *c, column_batch *b, int layer,
                                  pp_part part, int index) {
    return part_or_flush(c, layer, part, index, flush_columns, b);
}

/* Int8 quantization would swallow NaN and Inf without a trace, so the
 * inputs of the quantized products are checked first; the call then ends
 * with PP_ERR_NON_FINITE (through io_status, the call's status). */
static int all_finite(pp_context *c, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            c->io_status = PP_ERR_NON_FINITE;
            return 0;
        }
    }
    return 1;
}

/* ---- Attention ----------------------------------------------------------- */

void pp_attention_qkv(pp_context *c, int layer, const float *input, int n,
                      const uint8_t *heads, float *q, float *k, float *v) {
    const size_t dim = (size_t)c->info.dim, hd = (size_t)c->info.head_dim;
    const size_t group = (size_t)c->info.group;
    const size_t kv_dim = (size_t)c->info.n_kv_heads * hd;
    const float *norm = c->attn_norm + (size_t)layer * dim;
    float *xb = c->scratch.xb;

    for (int j = 0; j < n; j++)
        c->kernels.rmsnorm(dim, input + (size_t)j * dim, norm,
                           c->info.norm_eps, xb + (size_t)j * dim);
    if (!all_finite(c, xb, (size_t)n * dim))
        return;
    const size_t ldxs = quantize_rows(c, xb, (size_t)n, dim, dim, NULL);

    const size_t qkv_bytes = matrix_bytes(hd, dim, group);
    row_batch b = {{c, c->scratch.jobs, (size_t)n, dim, ldxs, 0, 0}, 0};
    for (int h = 0; h < c->info.n_heads; h++) {
        if (!heads[h])
            continue;
        const uint8_t *tile = row_part(c, &b, layer, PP_PART_Q, h);
        if (!tile)
            return;
        row_batch_add(&b, matrix_at(tile, hd, dim), q + (size_t)h * hd, dim);
    }
    for (int h = 0; h < c->info.n_kv_heads; h++) {
        const uint8_t *tile = row_part(c, &b, layer, PP_PART_KV, h);
        if (!tile)
            return;
        row_batch_add(&b, matrix_at(tile, hd, dim), k + (size_t)h * hd, kv_dim);
        row_batch_add(&b, matrix_at(tile + qkv_bytes, hd, dim),
                      v + (size_t)h * hd, kv_dim);
    }
    row_batch_flush(c, &b);
}

/* Attention of n_tok tokens of each sequence over that sequence's cache. */
typedef struct attention_job {
    pp_context *c;
    int layer, n_tok, pos;
    const uint8_t *heads;
    const int32_t *heads_list;
    int n_heads_kept;
} attention_job;

static void attention_task(void *arg, size_t index) {
    const attention_job *job = arg;
    pp_context *c = job->c;
    const size_t hd = (size_t)c->info.head_dim, dim = (size_t)c->info.dim;
    const size_t kv_dim = (size_t)c->info.n_kv_heads * hd;
    const int b = (int)(index / (size_t)job->n_heads_kept);
    const int h = job->heads_list[index % (size_t)job->n_heads_kept];
    const int kvh = h / (c->info.n_heads / c->info.n_kv_heads);
    const size_t seq_base = ((size_t)job->layer * c->max_batch + b) *
                            (size_t)c->max_context * kv_dim;
    const float *keys = c->key_cache + seq_base + (size_t)kvh * hd;
    const float *values = c->value_cache + seq_base + (size_t)kvh * hd;
    float *scores = c->scratch.att_scores + index * (size_t)c->max_context;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int s = 0; s < job->n_tok; s++) {
        const size_t token = (size_t)b * job->n_tok + s;
        const float *q = c->scratch.q + token * dim + (size_t)h * hd;
        float *out = c->scratch.att + token * dim + (size_t)h * hd;
        const size_t len = (size_t)job->pos + s + 1;

        for (size_t t = 0; t < len; t++)
            scores[t] = c->kernels.dot_f32(hd, q, keys + t * kv_dim) * scale;
        c->kernels.softmax(len, scores);

        memset(out, 0, hd * sizeof(float));
        for (size_t t = 0; t < len; t++)
            c->kernels.axpy_f32(hd, scores[t], values + t * kv_dim, out);
    }
}

/* Applies RoPE to q (kept heads) and k, and stores k and v in the cache. */
static void rope_and_cache(pp_context *c, int layer, int n_seq, int n_tok,
                           int pos, const uint8_t *heads) {
    const size_t hd = (size_t)c->info.head_dim, dim = (size_t)c->info.dim;
    const size_t kv_dim = (size_t)c->info.n_kv_heads * hd;

    for (int b = 0; b < n_seq; b++) {
        for (int s = 0; s < n_tok; s++) {
            const size_t token = (size_t)b * n_tok + s;
            const float *cs = c->rope + (size_t)(pos + s) * hd;
            for (int h = 0; h < c->info.n_heads; h++)
                if (heads[h])
                    c->kernels.rope(1, hd, cs, c->scratch.q + token * dim + h * hd);
            c->kernels.rope((size_t)c->info.n_kv_heads, hd, cs,
                            c->scratch.k + token * kv_dim);

            const size_t at = (((size_t)layer * c->max_batch + b) *
                                   (size_t)c->max_context + (size_t)(pos + s)) *
                              kv_dim;
            memcpy(c->key_cache + at, c->scratch.k + token * kv_dim,
                   kv_dim * sizeof(float));
            memcpy(c->value_cache + at, c->scratch.v + token * kv_dim,
                   kv_dim * sizeof(float));
        }
    }
}

/* The attention sublayer of the full pass; leaves its o input in
 * scratch.att and adds its output to scratch.x. */
void pp_attention_block(pp_context *c, int layer, int n_seq, int n_tok,
                        int pos) {
    const size_t dim = (size_t)c->info.dim, hd = (size_t)c->info.head_dim;
    const size_t group = (size_t)c->info.group;
    const size_t n = (size_t)n_seq * n_tok;
    const uint8_t *heads = c->pruning.head_kept + (size_t)layer * c->info.n_heads;
    int32_t *list = c->scratch.order;
    int kept = 0;

    for (int h = 0; h < c->info.n_heads; h++)
        if (heads[h])
            list[kept++] = h;

    pp_attention_qkv(c, layer, c->scratch.x, (int)n, heads, c->scratch.q,
                     c->scratch.k, c->scratch.v);
    rope_and_cache(c, layer, n_seq, n_tok, pos, heads);

    if (kept > 0) {
        attention_job job = {c, layer, n_tok, pos, heads, list, kept};
        pp_parallel(c, (size_t)n_seq * kept, attention_task, &job);
    }

    /* o: quantize each kept head's output as its own chunk. */
    const size_t ldxs = quantize_rows(c, c->scratch.att, n, dim, hd, heads);
    const size_t head_groups = pp_group_count(hd, group);
    column_batch b = {c->scratch.jobs, 0, n, dim, ldxs, c->scratch.out, 0};
    for (int i = 0; i < kept; i++) {
        const int h = list[i];
        const uint8_t *o = column_part(c, &b, layer, PP_PART_O, h);
        if (!o)
            return;
        b.units[b.count++] = (column_unit){
            matrix_at(o, dim, hd), (size_t)h * hd, (size_t)h * head_groups,
            partition_of((size_t)h, (size_t)c->info.n_heads)};
    }
    column_batch_finish(c, &b);

    const float *bias = c->pruning.have_bias
                            ? c->pruning.attn_bias + (size_t)layer * dim
                            : NULL;
    for (size_t j = 0; j < n; j++) {
        float *x = c->scratch.x + j * dim;
        const float *o = c->scratch.out + j * dim;
        for (size_t d = 0; d < dim; d++)
            x[d] += o[d] + (bias ? bias[d] : 0.0f);
    }
}

/* ---- MLP ----------------------------------------------------------------- */

typedef struct swiglu_job {
    pp_context *c;
    const uint8_t *tiles, *channels;
    size_t n;
} swiglu_job;

/* silu(gate) * up on one tile's columns into scratch.hb, zeroing pruned
 * channels so that the down projection of a partly kept tile ignores them. */
static void swiglu_task(void *arg, size_t t) {
    const swiglu_job *job = arg;
    pp_context *c = job->c;
    const size_t hidden = (size_t)c->info.hidden_dim;
    const size_t begin = t * (size_t)c->info.tile;
    const size_t width = (size_t)pp_mlp_tile_width(&c->dims, t);

    if (!job->tiles[t])
        return;
    for (size_t j = 0; j < job->n; j++) {
        float *gate = c->scratch.gate_up + j * 2 * hidden + 2 * begin;
        float *h = c->scratch.hb + j * hidden + begin;
        c->kernels.swiglu(width, gate, gate + width);
        for (size_t i = 0; i < width; i++)
            h[i] = job->channels && !job->channels[begin + i] ? 0.0f : gate[i];
    }
}

void pp_mlp_gate_up(pp_context *c, int layer, const float *input, int n,
                    const uint8_t *tiles, const uint8_t *channels) {
    const size_t dim = (size_t)c->info.dim, hidden = (size_t)c->info.hidden_dim;
    const float *norm = c->mlp_norm + (size_t)layer * dim;
    const size_t n_tiles = (size_t)pp_mlp_tile_count(&c->dims);

    for (int j = 0; j < n; j++)
        c->kernels.rmsnorm(dim, input + (size_t)j * dim, norm,
                           c->info.norm_eps, c->scratch.xb + (size_t)j * dim);
    if (!all_finite(c, c->scratch.xb, (size_t)n * dim))
        return;
    const size_t ldxs = quantize_rows(c, c->scratch.xb, (size_t)n, dim, dim, NULL);

    row_batch b = {{c, c->scratch.jobs, (size_t)n, dim, ldxs, 0, 0}, 0};
    for (size_t t = 0; t < n_tiles; t++) {
        if (!tiles[t])
            continue;
        const size_t width = (size_t)pp_mlp_tile_width(&c->dims, t);
        const uint8_t *tile = row_part(c, &b, layer, PP_PART_GATE_UP, (int)t);
        if (!tile)
            return;
        const size_t begin = t * (size_t)c->info.tile;
        row_batch_add(&b, matrix_at(tile, 2 * width, dim),
                      c->scratch.gate_up + 2 * begin, 2 * hidden);
    }
    row_batch_flush(c, &b);

    swiglu_job s = {c, tiles, channels, (size_t)n};
    pp_parallel(c, n_tiles, swiglu_task, &s);
}

static void mlp_block(pp_context *c, int layer, int n_seq, int n_tok) {
    const size_t dim = (size_t)c->info.dim, hidden = (size_t)c->info.hidden_dim;
    const size_t group = (size_t)c->info.group, tile = (size_t)c->info.tile;
    const size_t n = (size_t)n_seq * n_tok;
    const size_t n_tiles = (size_t)pp_mlp_tile_count(&c->dims);
    const uint8_t *tiles = c->pruning.tile_kept + layer * n_tiles;
    const uint8_t *channels = c->pruning.channel_kept + layer * hidden;

    pp_mlp_gate_up(c, layer, c->scratch.x, (int)n, tiles, channels);
    if (c->io_status != PP_OK)
        return;

    const size_t ldxs = quantize_rows(c, c->scratch.hb, n, hidden, tile, tiles);
    const size_t tile_groups = pp_group_count(tile, group);
    column_batch b = {c->scratch.jobs, 0, n, hidden, ldxs, c->scratch.out, 0};
    for (size_t t = 0; t < n_tiles; t++) {
        if (!tiles[t])
            continue;
        const size_t width = (size_t)pp_mlp_tile_width(&c->dims, t);
        const uint8_t *down = column_part(c, &b, layer, PP_PART_DOWN, (int)t);
        if (!down)
            return;
        b.units[b.count++] = (column_unit){matrix_at(down, dim, width), t * tile,
                                           t * tile_groups,
                                           partition_of(t, n_tiles)};
    }
    column_batch_finish(c, &b);

    const float *bias = c->pruning.have_bias
                            ? c->pruning.mlp_bias + (size_t)layer * dim
                            : NULL;
    for (size_t j = 0; j < n; j++) {
        float *x = c->scratch.x + j * dim;
        const float *o = c->scratch.out + j * dim;
        for (size_t d = 0; d < dim; d++)
            x[d] += o[d] + (bias ? bias[d] : 0.0f);
    }
}

/* ---- Calibration statistics ---------------------------------------------- */

/* Adds the batch's squares of `act` ([n_seq][n_tok][width]) to the history
 * means per position slot, and sums for the static baselines. */
static void accumulate_calibration(pp_context *c, const float *act, size_t width,
                                   float *history, double *sum, double *sumsq,
                                   int n_seq, int n_tok, int pos) {
    for (int s = 0; s < n_tok; s++) {
        const int slot = pos + s < c->history_len ? pos + s : c->history_len - 1;
        const double seen = (double)c->calibration.slot_count[slot];
        float *g = history + (size_t)slot * width;

        for (size_t ch = 0; ch < width; ch++) {
            double batch_sum = 0.0;
            for (int b = 0; b < n_seq; b++) {
                const double v = act[((size_t)b * n_tok + s) * width + ch];
                batch_sum += v * v;
                sum[ch] += v;
                sumsq[ch] += v * v;
            }
            g[ch] = (float)((g[ch] * seen + batch_sum) / (seen + n_seq));
        }
    }
}

/* ---- The pass ------------------------------------------------------------ */

/* Dequantizes each token's embedding row into scratch.x. A read source
 * reads the 8-row block that holds the row into scratch.embed_block. */
static void embed(pp_context *c, const int32_t *tokens, size_t n) {
    const size_t dim = (size_t)c->info.dim, group = (size_t)c->info.group;
    const size_t block_bytes = pp_q8_block_bytes(dim, group);
    const uint64_t base = c->weights.embedding_offset;

    for (size_t j = 0; j < n; j++) {
        const size_t row = (size_t)tokens[j];
        const uint64_t at = base + row / PP_Q8_BLOCK_ROWS * block_bytes;
        const uint8_t *block;
        if (c->weights.data) {
            block = c->weights.data + at;
        } else {
            const pp_status st = pp_read_weights(c, at, c->scratch.embed_block,
                                                 block_bytes);
            if (st != PP_OK) {
                c->io_status = st;
                return;
            }
            c->cache.backing_bytes += block_bytes;
            block = c->scratch.embed_block;
        }
        /* The row's place in its block is row % 8. */
        const size_t r = row % PP_Q8_BLOCK_ROWS;
        float *x = c->scratch.x + j * dim;
        for (size_t i = 0; i < dim; i++)
            x[i] = pp_q8_block_weight(block, dim, group, r, i);
    }
    /* Counted as the row's own bytes (values and scales) in both kinds of
     * source; a read source reads the row's whole block, which
     * backing_bytes counts. */
    const uint64_t row_bytes = dim + 2 * pp_group_count(dim, group);
    c->stats.weight_bytes_read += n * row_bytes;
    c->stats.weight_bytes_dense += n * row_bytes;
}

/* A block of classifier rows from row r0 (a multiple of the pool's block
 * rows): in place in the file, or through the cache. */
static const uint8_t *classifier_block(pp_context *c, row_batch *b, size_t r0,
                                       size_t rows) {
    const size_t dim = (size_t)c->info.dim, group = (size_t)c->info.group;
    const uint64_t at = c->weights.classifier_offset +
                        r0 / PP_Q8_BLOCK_ROWS * pp_q8_block_bytes(dim, group);

    if (c->weights.data)
        return c->weights.data + at;
    const pp_cache_span span = {at, pp_q8_matrix_bytes(rows, dim, group), 0};
    const int32_t item = (int32_t)(r0 / pp_classifier_block_rows());
    const uint8_t *p = pp_cache_get(c, PP_POOL_CLASSIFIER, item, &span, 1);
    if (!p && c->io_status == PP_OK) {
        row_batch_flush(c, b);
        p = pp_cache_get(c, PP_POOL_CLASSIFIER, item, &span, 1);
        if (!p && c->io_status == PP_OK)
            c->io_status = PP_ERR_CAPACITY;
    }
    return p;
}

static void classify(pp_context *c, size_t n, size_t first, size_t stride,
                     size_t count_per_seq, float *logits) {
    const size_t dim = (size_t)c->info.dim, vocab = (size_t)c->info.vocab_size;

    /* Normalize the tokens whose logits are wanted, packed in xb. */
    size_t rows = 0;
    for (size_t j = first; j < n; j += stride) {
        for (size_t i = 0; i < count_per_seq; i++, rows++)
            c->kernels.rmsnorm(dim, c->scratch.x + (j + i) * dim,
                               c->final_norm, c->info.norm_eps,
                               c->scratch.xb + rows * dim);
    }
    const size_t ldxs = quantize_rows(c, c->scratch.xb, rows, dim, dim, NULL);

    /* Split the vocabulary over the workers; rows of logits are disjoint. */
    const size_t block = pp_classifier_block_rows();
    row_batch b = {{c, c->scratch.jobs, rows, dim, ldxs, 0, 0}, 0};
    for (size_t r = 0; r < vocab; r += block) {
        const size_t len = vocab - r < block ? vocab - r : block;
        const uint8_t *w = classifier_block(c, &b, r, len);
        if (!w)
            return;
        const q8_matrix part = {w, len, dim};
        row_batch_add(&b, part, logits + r, vocab);
    }
    row_batch_flush(c, &b);

    c->stats.weight_bytes_read += c->weights.vocab_bytes;
    c->stats.weight_bytes_dense += c->weights.vocab_bytes;
    c->stats.macs_dense += (uint64_t)rows * vocab * dim;
    c->stats.macs_run += (uint64_t)rows * vocab * dim;
}

/* MACs of one layer for n tokens that each attend to `keys` positions with
 * `heads` query heads and `channels` MLP channels (the reference's count:
 * attention as 2 * keys * head_dim per query head and token). */
static uint64_t layer_macs(const pp_context *c, uint64_t n, uint64_t keys,
                           uint64_t heads, uint64_t channels) {
    const uint64_t dim = (uint64_t)c->info.dim, hd = (uint64_t)c->info.head_dim;
    const uint64_t kv_dim = (uint64_t)c->info.n_kv_heads * hd;
    return n * (2 * heads * hd * dim + 2 * dim * kv_dim + 3 * dim * channels +
                2 * keys * heads * hd);
}

static int count_kept(const uint8_t *kept, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += kept[i] != 0;
    return k;
}

/* The norm weights read per layer and at the end. */
static void count_norms(pp_context *c, int layers) {
    const uint64_t bytes = 4 * (uint64_t)c->info.dim * (2 * (uint64_t)layers + 1);
    c->stats.weight_bytes_read += bytes;
    c->stats.weight_bytes_dense += bytes;
}

static pp_status run_forward(pp_context *c, const int32_t *tokens, int n_seq,
                             int n_tok, int pos, uint32_t flags, float *logits,
                             int calibrating) {
    const size_t dim = (size_t)c->info.dim, hidden = (size_t)c->info.hidden_dim;
    const size_t n = (size_t)n_seq * n_tok;
    const int probing = c->pruning.dynamic && (flags & PP_PROBE) && !calibrating;
    const int update_history = probing && !(flags & PP_NO_HISTORY_UPDATE) &&
                               c->pruning.config.use_history &&
                               c->calibration.tokens > 0;

    c->call_id++;
    if (c->call_id == 0) {  /* wrapped: forget old stamps */
        memset(c->weights.part_stamp, 0,
               4 * (size_t)c->info.n_layers *
                   (size_t)pp_parts_per_layer(&c->dims));
        c->call_id = 1;
    }

    c->io_status = PP_OK;
    embed(c, tokens, n);
    if (c->io_status != PP_OK)
        return c->io_status;
    count_norms(c, c->info.n_layers);

    for (int l = 0; l < c->info.n_layers; l++) {
        const int pruned_layer = l >= c->pruning.config.skip_layers;
        const uint64_t keys = (uint64_t)pos + (uint64_t)n_tok;

        if (probing && pruned_layer)
            pp_probe_attention(c, l, n_seq, n_tok, pos);
        if (c->io_status != PP_OK)
            return c->io_status;
        pp_attention_block(c, l, n_seq, n_tok, pos);
        if (c->io_status != PP_OK)
            return c->io_status;
        if (calibrating)
            accumulate_calibration(
                c, c->scratch.att, dim, c->pruning.attn_history + (size_t)l * c->history_len * dim,
                c->calibration.attn_sum + (size_t)l * dim,
                c->calibration.attn_sumsq + (size_t)l * dim, n_seq, n_tok, pos);
        else if (update_history && pruned_layer)
            pp_history_update_attention(c, l, n_seq, n_tok, pos);

        /* Decoding with a fixed kept set: read the next layer's kept parts
         * while this layer's MLP computes. */
        if (c->cache.enabled && !probing && !calibrating)
            pp_cache_plan_prefetch(c, l + 1);
        if (probing && pruned_layer)
            pp_probe_mlp(c, l, n_seq, n_tok, pos);
        if (c->io_status != PP_OK)
            return c->io_status;
        mlp_block(c, l, n_seq, n_tok);
        if (c->io_status != PP_OK)
            return c->io_status;
        if (calibrating)
            accumulate_calibration(
                c, c->scratch.hb, hidden, c->pruning.mlp_history + (size_t)l * c->history_len * hidden,
                c->calibration.mlp_sum + (size_t)l * hidden,
                c->calibration.mlp_sumsq + (size_t)l * hidden, n_seq, n_tok, pos);
        else if (update_history && pruned_layer)
            pp_history_update_mlp(c, l, n_seq, n_tok, pos);

        const int heads = count_kept(c->pruning.head_kept + (size_t)l * c->info.n_heads,
                                     c->info.n_heads);
        const int channels = count_kept(c->pruning.channel_kept + (size_t)l * hidden,
                                        (int)hidden);
        c->stats.macs_dense += layer_macs(c, n, keys, (uint64_t)c->info.n_heads, hidden);
        c->stats.macs_run += layer_macs(c, n, keys, (uint64_t)heads, (uint64_t)channels);
        c->stats.weight_bytes_dense += c->weights.layer_bytes;
    }

    if (calibrating) {
        for (int s = 0; s < n_tok; s++) {
            const int slot = pos + s < c->history_len ? pos + s : c->history_len - 1;
            c->calibration.slot_count[slot] += (uint64_t)n_seq;
        }
        c->calibration.tokens += n;
    }

    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(c->scratch.x[i]))
            return PP_ERR_NON_FINITE;

    if (!(flags & PP_NO_LOGITS)) {
        if (flags & PP_LAST_LOGITS)
            classify(c, n, (size_t)n_tok - 1, (size_t)n_tok, 1, logits);
        else
            classify(c, n, 0, n, n, logits);
        if (c->io_status != PP_OK)
            return c->io_status;
    }
    c->cache_len = pos + n_tok;
    c->stats.forward_calls++;
    c->stats.tokens += n;
    return PP_OK;
}

static pp_status check_call(pp_context *c, const int32_t *tokens, int32_t n_seq,
                            int32_t n_tok, int32_t pos) {
    if (!c || !tokens || n_seq < 1 || n_tok < 1 || pos < 0)
        return PP_ERR_INVALID_ARGUMENT;
    if (n_seq > c->max_batch || n_tok > c->max_tokens ||
        pos > c->max_context - n_tok)
        return PP_ERR_CAPACITY;
    for (size_t i = 0; i < (size_t)n_seq * n_tok; i++)
        if (tokens[i] < 0 || tokens[i] >= c->info.vocab_size)
            return PP_ERR_INVALID_ARGUMENT;
    return PP_OK;
}

pp_status pp_forward(pp_context *c, const int32_t *tokens, int32_t n_seq,
                     int32_t n_tok, int32_t pos, uint32_t flags, float *logits) {
    pp_status st = check_call(c, tokens, n_seq, n_tok, pos);
    if (st != PP_OK)
        return st;
    if (!(flags & PP_NO_LOGITS) && !logits)
        return PP_ERR_INVALID_ARGUMENT;
    if (pos > c->cache_len)
        return PP_ERR_STATE;  /* the cache has a gap before pos */
    return run_forward(c, tokens, n_seq, n_tok, pos, flags, logits, 0);
}

pp_status pp_calibrate(pp_context *c, const int32_t *tokens, int32_t n_seq,
                       int32_t n_tok) {
    pp_status st = check_call(c, tokens, n_seq, n_tok, 0);
    if (st != PP_OK)
        return st;

    /* Calibration runs dense and is not counted in the statistics. */
    const pp_pruning saved = c->pruning;
    const pp_stats stats = c->stats;
    const size_t layers = (size_t)c->info.n_layers;
    memset(c->pruning.head_kept, 1, layers * (size_t)c->info.n_heads);
    memset(c->pruning.channel_kept, 1, layers * (size_t)c->info.hidden_dim);
    memset(c->pruning.tile_kept, 1, layers * (size_t)pp_mlp_tile_count(&c->dims));
    c->pruning.have_bias = 0;
    c->pruning.dynamic = 0;

    st = run_forward(c, tokens, n_seq, n_tok, 0, PP_NO_LOGITS, NULL, 1);

    c->stats = stats;
    c->pruning.dynamic = saved.dynamic;
    c->pruning.have_bias = saved.have_bias;
    /* The kept sets are reset: static methods are chosen again by
     * pp_set_pruning once calibration is done. */
    c->cache_len = 0;
    return st;
}
