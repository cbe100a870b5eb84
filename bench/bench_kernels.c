/*
 * bench_kernels.c - gemm_q8 throughput of every kernel variant this CPU can
 * run, next to the machine's read bandwidth measured in the same run.
 *
 *   bench_kernels [--json FILE] [--threads N] [--quick] [--group G]
 *                 [--cpu-time]
 *
 * For each variant and matrix size it times gemm_q8 with n = 1 (GEMV, the
 * decode step: reported as weight GB/s and GOP/s) and n = 8 and 64 (prefill
 * blocks: GOP/s), on one thread and on a worker pool of --threads threads
 * (default: every online CPU) that splits the weight rows. The read
 * bandwidth is a plain sum over a 512 MiB buffer (64 MiB with --quick) on
 * the same thread counts. One operation is a multiply or an add, so a
 * multiply-accumulate counts 2.
 *
 * Matrices larger than the last-level cache are read from memory on every
 * call: the bench cycles through enough copies of the weights to cover at
 * least 256 MiB, so the GEMV GB/s of those sizes compares directly with the
 * read bandwidth.
 *
 * Last, the decode pattern of pruned weights: gemv_q8 on one thread over
 * two of every three MLP tiles, laid out as in a model file (all gate/up
 * parts, then all down parts). The tiles are TinyLlama-1.1B's (dim 2048,
 * 32 channels: gate and up rows as one matrix, down columns). The kept
 * gate and up parts run first, then their down parts, as in a layer. This runs once
 * without next-product hints and once with each call naming the next
 * part, each paired with a plain read of the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "format.h"
#include "kernels.h"
#include "pool.h"

/* ---- Timing and options ------------------------------------------------- */

static double clock_seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now_seconds(void) {
    return clock_seconds(CLOCK_MONOTONIC);
}

/* Set by --cpu-time: single-thread samples use the thread's CPU time. */
static int single_thread_cpu_time;

/* Returns the clock reading that timed samples on `n_threads` use. */
static double sample_seconds(int n_threads) {
    if (single_thread_cpu_time && n_threads == 1)
        return clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    return now_seconds();
}

typedef struct options {
    const char *json_path;
    int threads;
    int quick;
    size_t group;
    double min_seconds; /* time each measurement for at least this long */
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: bench_kernels [--json FILE] [--threads N] [--quick] "
            "[--group G] [--cpu-time]\n"
            "  --json FILE   also write the results as JSON to FILE\n"
            "  --threads N   threads of the multi-thread runs (default: "
            "online CPUs)\n"
            "  --quick       smaller matrices and buffers, shorter timing "
            "(for emulators)\n"
            "  --group G     quantization group in values (default 32)\n"
            "  --cpu-time    time 1-thread runs with the thread's CPU time, "
            "which leaves\n"
            "                out time it waited for a CPU on a busy machine "
            "(default:\n"
            "                wall time)\n");
}

static int parse_options(int argc, char **argv, options *o) {
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->json_path = NULL;
    o->threads = cpus > 0 ? (int)cpus : 1;
    o->quick = 0;
    o->group = 32;
    o->min_seconds = 0.4;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--json") == 0 && value) {
            o->json_path = value;
            i++;
        } else if (strcmp(arg, "--threads") == 0 && value) {
            char *end;
            const long t = strtol(value, &end, 10);
            if (*end || t < 1 || t > 1024) {
                fprintf(stderr, "invalid --threads '%s': expected 1 to 1024\n",
                        value);
                return -1;
            }
            o->threads = (int)t;
            i++;
        } else if (strcmp(arg, "--group") == 0 && value) {
            char *end;
            const long g = strtol(value, &end, 10);
            if (*end || g < 1 || g > 65536) {
                fprintf(stderr, "invalid --group '%s': expected 1 to 65536\n",
                        value);
                return -1;
            }
            o->group = (size_t)g;
            i++;
        } else if (strcmp(arg, "--cpu-time") == 0) {
            single_thread_cpu_time = 1;
        } else if (strcmp(arg, "--quick") == 0) {
            o->quick = 1;
            o->min_seconds = 0.05;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "invalid option '%s': unknown, or missing its "
                            "value\n", arg);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* ---- Timing statistics -------------------------------------------------- */

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Returns the median of samples[0..count), sorting them. */
static double median(double *samples, size_t count) {
    qsort(samples, count, sizeof *samples, compare_doubles);
    return count % 2 ? samples[count / 2]
                     : 0.5 * (samples[count / 2 - 1] + samples[count / 2]);
}

enum { MAX_SAMPLES = 512 };

/* ---- Read bandwidth ----------------------------------------------------- */

/* A plain sum over bytes [begin, begin + bytes) of the buffer, split into
 * `chunks` pool tasks. */
typedef struct read_job {
    const uint64_t *data;
    size_t begin_word;
    size_t words;
    size_t chunks;
    uint64_t sums[256];
} read_job;

static void read_task(void *arg, size_t index) {
    read_job *job = arg;
    const size_t per_chunk = job->words / job->chunks;
    const uint64_t *p = job->data + job->begin_word + index * per_chunk;
    /* Four independent sums so the adds never limit the load rate. */
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= per_chunk; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    job->sums[index] = s0 + s1 + s2 + s3;
}

/* The buffer the read bandwidth is measured on, far larger than any cache. */
typedef struct read_buffer {
    uint64_t *data;
    size_t bytes;
    size_t next;  /* byte offset of the next paired read */
    uint64_t checksum;
} read_buffer;

/* Sums `bytes` bytes from byte `begin` on `workers`; returns the seconds. */
static double time_read(pp_workers workers, read_buffer *buffer, size_t begin,
                        size_t bytes) {
    static read_job job;
    job.data = buffer->data;
    job.begin_word = begin / sizeof(uint64_t);
    job.words = bytes / sizeof(uint64_t);
    job.chunks = workers.n_threads == 1 ? 1 : 4 * (size_t)workers.n_threads;
    if (job.chunks > 256)
        job.chunks = 256;

    const double start = sample_seconds(workers.n_threads);
    workers.run(workers.pool, job.chunks, read_task, &job);
    const double seconds = sample_seconds(workers.n_threads) - start;
    for (size_t i = 0; i < job.chunks; i++)
        buffer->checksum += job.sums[i];
    return seconds;
}

/* Returns the median over 7 passes over the whole buffer, in GB/s. */
static double measure_read_bandwidth(pp_workers workers, read_buffer *buffer) {
    double rates[7];
    for (int pass = 0; pass < 7; pass++)
        rates[pass] = (double)buffer->bytes /
                      time_read(workers, buffer, 0, buffer->bytes) / 1e9;
    return median(rates, 7);
}

/* ---- gemm_q8 ------------------------------------------------------------ */

typedef struct matrix_size {
    size_t m, k;
    const char *note;
} matrix_size;

static const matrix_size full_sizes[] = {
    {288, 288, "260K-model-sized"},
    {1024, 1024, ""},
    {2048, 2048, ""},
    {2048, 5632, "TinyLlama MLP"},
    {4096, 4096, "Llama-7B attention"},
    {4096, 11008, "Llama-7B MLP down"},
    {11008, 4096, "Llama-7B MLP up"},
    {32000, 4096, "Llama-7B classifier"},
};

static const matrix_size quick_sizes[] = {
    {288, 288, "260K-model-sized"},
    {1024, 1024, ""},
    {2048, 5632, "TinyLlama MLP"},
};

/* Operands of one size; the weights exist in `copies` copies. */
typedef struct operands {
    size_t m, k, group, groups, n_max, copies;
    size_t weight_bytes;  /* of one copy: the blocked q8 matrix */
    uint8_t *w;
    int8_t *x;
    float *xs;
    float *y;
} operands;

static void operands_free(operands *o) {
    free(o->w);
    free(o->x);
    free(o->xs);
    free(o->y);
    memset(o, 0, sizeof *o);
}

static uint64_t fill_state = 0x2545f4914f6cdd1du;

static uint32_t fill_next(void) {
    fill_state ^= fill_state << 13;
    fill_state ^= fill_state >> 7;
    fill_state ^= fill_state << 17;
    return (uint32_t)(fill_state >> 32);
}

/* Fills a blocked q8 matrix with random int8 values (in [-127, 127]) and
 * normal half scales: denormals could slow the arithmetic. */
static void fill_matrix(uint8_t *w, size_t m, size_t k, size_t group) {
    const size_t bytes = pp_q8_matrix_bytes(m, k, group);
    for (size_t i = 0; i < bytes; i += 4) {
        const uint32_t r = fill_next();
        for (size_t b = 0; b < 4 && i + b < bytes; b++)
            w[i + b] = (uint8_t)((int)((r >> (8 * b)) & 0xff) % 255 - 127);
    }
    const size_t groups = pp_group_count(k, group);
    for (size_t r = 0; r < m; r += PP_Q8_BLOCK_ROWS) {
        for (size_t g = 0; g < groups; g++) {
            uint8_t *scales = w + pp_q8_record_offset(k, group, r, g) +
                              32 * pp_q8_group_quads(k, group, g);
            for (size_t i = 0; i < PP_Q8_BLOCK_ROWS; i++) {
                const float s = 0.001f + (float)(fill_next() % 1000) * 1e-5f;
                const uint16_t h = pp_float_to_half(s);
                scales[2 * i] = (uint8_t)(h & 0xFFu);
                scales[2 * i + 1] = (uint8_t)(h >> 8);
            }
        }
    }
}

static int operands_alloc(operands *o, size_t m, size_t k, size_t group,
                          size_t n_max, size_t copies) {
    memset(o, 0, sizeof *o);
    o->m = m;
    o->k = k;
    o->group = group;
    o->groups = pp_group_count(k, group);
    o->n_max = n_max;
    o->copies = copies;
    o->weight_bytes = pp_q8_matrix_bytes(m, k, group);
    o->w = malloc(copies * o->weight_bytes);
    o->x = malloc(n_max * k);
    o->xs = malloc(n_max * o->groups * sizeof(float));
    o->y = malloc(n_max * m * sizeof(float));
    if (!o->w || !o->x || !o->xs || !o->y) {
        operands_free(o);
        return -1;
    }
    for (size_t c = 0; c < copies; c++)
        fill_matrix(o->w + c * o->weight_bytes, m, k, group);
    for (size_t i = 0; i < n_max * k; i++)
        o->x[i] = (int8_t)((int)(fill_next() % 255) - 127);
    for (size_t i = 0; i < n_max * o->groups; i++)
        o->xs[i] = 0.01f;
    memset(o->y, 0, n_max * m * sizeof(float));
    return 0;
}

/* One gemm call split into row slices, one slice per pool task. */
typedef struct gemm_job {
    pp_gemm_q8_fn gemm;
    const operands *o;
    size_t n;
    size_t copy;
    size_t rows_per_task;
    size_t tasks;
} gemm_job;

static void gemm_task(void *arg, size_t index) {
    const gemm_job *job = arg;
    const operands *o = job->o;
    const size_t begin = index * job->rows_per_task;
    const size_t rows = o->m - begin < job->rows_per_task ? o->m - begin
                                                          : job->rows_per_task;
    const uint8_t *w = o->w + job->copy * o->weight_bytes +
                       begin / PP_Q8_BLOCK_ROWS * pp_q8_block_bytes(o->k, o->group);
    job->gemm(rows, job->n, o->k, o->group, w, o->x, o->k, o->xs, o->groups,
              o->y + begin, o->m, 0);
}

static gemm_job make_gemm_job(pp_gemm_q8_fn gemm, const operands *o, size_t n,
                              int n_threads) {
    gemm_job job = {gemm, o, n, 0, o->m, 1};
    if (n_threads > 1) {
        /* 4 slices per thread even out the load; at least 16 rows each. */
        size_t rows = (o->m + 4 * (size_t)n_threads - 1) /
                      (4 * (size_t)n_threads);
        rows = rows < 16 ? 16 : (rows + 15) / 16 * 16;
        job.rows_per_task = rows;
        job.tasks = (o->m + rows - 1) / rows;
    }
    return job;
}

/* Returns how many calls of about `seconds` each make one timed sample of
 * at least 200 microseconds, so the clock's resolution does not matter. */
static size_t calls_per_sample(double seconds) {
    const double target = 200e-6;
    return seconds >= target ? 1 : (size_t)(target / seconds) + 1;
}

/* Returns the median seconds per call, with the weights of every call in
 * cache as far as they fit (always copy 0). */
static double time_gemm(pp_gemm_q8_fn gemm, const operands *o, size_t n,
                        pp_workers workers, double min_seconds) {
    gemm_job job = make_gemm_job(gemm, o, n, workers.n_threads);

    double start = now_seconds();
    workers.run(workers.pool, job.tasks, gemm_task, &job);
    const size_t batch = calls_per_sample(now_seconds() - start);

    double samples[MAX_SAMPLES];
    size_t count = 0;
    start = now_seconds();
    while (count < MAX_SAMPLES &&
           (count < 5 || now_seconds() - start < min_seconds)) {
        const double t0 = sample_seconds(workers.n_threads);
        for (size_t c = 0; c < batch; c++)
            workers.run(workers.pool, job.tasks, gemm_task, &job);
        samples[count++] =
            (sample_seconds(workers.n_threads) - t0) / (double)batch;
    }
    return median(samples, count);
}

/*
 * GEMV with the weights coming from memory: every call uses the next of the
 * copies, which together exceed the caches. Each sample of calls is paired
 * with a plain read of as many bytes from the bandwidth buffer, right
 * before it, so both see the same load from other processes. Returns the
 * median seconds per call and sets *read_gbs to the median paired read
 * bandwidth.
 */
static double time_gemv_from_memory(pp_gemm_q8_fn gemm, const operands *o,
                                    pp_workers workers, read_buffer *buffer,
                                    double min_seconds, double *read_gbs) {
    gemm_job job = make_gemm_job(gemm, o, 1, workers.n_threads);

    double start = now_seconds();
    workers.run(workers.pool, job.tasks, gemm_task, &job);
    const size_t batch = calls_per_sample(now_seconds() - start);
    const size_t read_bytes = o->weight_bytes / 64 * 64;

    double gemv_samples[MAX_SAMPLES], read_samples[MAX_SAMPLES];
    size_t count = 0;
    start = now_seconds();
    while (count < MAX_SAMPLES &&
           (count < 5 || now_seconds() - start < min_seconds)) {
        double read_seconds = 0.0;
        for (size_t c = 0; c < batch; c++) {
            if (buffer->next + read_bytes > buffer->bytes)
                buffer->next = 0;
            read_seconds += time_read(workers, buffer, buffer->next,
                                      read_bytes);
            buffer->next += read_bytes;
        }
        read_samples[count] = (double)(read_bytes * batch) / read_seconds / 1e9;

        const double t0 = sample_seconds(workers.n_threads);
        for (size_t c = 0; c < batch; c++) {
            job.copy = (job.copy + 1) % o->copies;
            workers.run(workers.pool, job.tasks, gemm_task, &job);
        }
        gemv_samples[count++] =
            (sample_seconds(workers.n_threads) - t0) / (double)batch;
    }
    *read_gbs = median(read_samples, count);
    return median(gemv_samples, count);
}

/* Returns the size in bytes of the largest CPU cache Linux reports, or 0. */
static size_t last_level_cache_bytes(void) {
    size_t best = 0;
    int best_level = 0;
    for (int index = 0; index < 16; index++) {
        char path[128], text[64];
        int level = 0;
        snprintf(path, sizeof path,
                 "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        if (fscanf(f, "%d", &level) != 1)
            level = 0;
        fclose(f);

        snprintf(path, sizeof path,
                 "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(text, sizeof text, f)) {
            char *unit;
            size_t bytes = (size_t)strtoul(text, &unit, 10);
            if (*unit == 'K')
                bytes <<= 10;
            else if (*unit == 'M')
                bytes <<= 20;
            if (level >= best_level) {
                best_level = level;
                best = bytes;
            }
        }
        fclose(f);
    }
    return best;
}

/* ---- Tiled decode ------------------------------------------------------- */

enum { TILE_DIM = 2048, TILE_WIDTH = 32 };

/* One part of a tile: a q8 matrix in the tile buffer. */
typedef struct tile_part {
    uint8_t *w;
    size_t m, k;
} tile_part;

/* The tiles and the operands of a tiled decode run. */
typedef struct tiled {
    uint8_t *data;
    size_t tiles, tile_bytes, part_bytes;  /* part_bytes: gate and up */
    size_t down_bytes;
    size_t group;
    int8_t *x, *h;      /* the MLP input [dim] and activation [tiles * 32] */
    float *xs, *hs;
    float *y;           /* [tiles * 64 + dim] outputs */
} tiled;

/* Part `kind` (0 gate and up rows, 1 down columns) of tile `index`: all
 * gate/up parts, then all down parts, as a model file stores a layer. */
static tile_part tiled_part(const tiled *t, size_t index, int kind) {
    uint8_t *at = kind == 0 ? t->data + index * t->part_bytes
                            : t->data + t->tiles * t->part_bytes +
                                  index * t->down_bytes;
    return kind == 0 ? (tile_part){at, 2 * TILE_WIDTH, TILE_DIM}
                     : (tile_part){at, TILE_DIM, TILE_WIDTH};
}

static void tiled_free(tiled *t) {
    free(t->data);
    free(t->x);
    free(t->h);
    free(t->xs);
    free(t->hs);
    free(t->y);
}

static int tiled_alloc(tiled *t, size_t min_bytes, size_t group) {
    memset(t, 0, sizeof *t);
    t->group = group;
    t->part_bytes = (size_t)pp_matrix_bytes(2 * TILE_WIDTH, TILE_DIM, group);
    t->down_bytes = (size_t)pp_matrix_bytes(TILE_DIM, TILE_WIDTH, group);
    t->tile_bytes = t->part_bytes + t->down_bytes;
    t->tiles = (min_bytes + t->tile_bytes - 1) / t->tile_bytes;
    t->data = malloc(t->tiles * t->tile_bytes);
    t->x = malloc(TILE_DIM);
    t->h = malloc(t->tiles * TILE_WIDTH);
    t->xs = malloc(pp_group_count(TILE_DIM, group) * sizeof(float));
    t->hs = malloc(t->tiles * pp_group_count(TILE_WIDTH, group) * sizeof(float));
    t->y = malloc((t->tiles * 2 * TILE_WIDTH + TILE_DIM) * sizeof(float));
    if (!t->data || !t->x || !t->h || !t->xs || !t->hs || !t->y) {
        tiled_free(t);
        return -1;
    }

    for (size_t i = 0; i < t->tiles; i++) {
        for (int kind = 0; kind < 2; kind++) {
            const tile_part part = tiled_part(t, i, kind);
            fill_matrix(part.w, part.m, part.k, group);
        }
    }

    for (size_t i = 0; i < TILE_DIM; i++)
        t->x[i] = (int8_t)((int)(fill_next() % 255) - 127);
    for (size_t i = 0; i < t->tiles * TILE_WIDTH; i++)
        t->h[i] = (int8_t)((int)(fill_next() % 255) - 127);
    for (size_t i = 0; i < pp_group_count(TILE_DIM, group); i++)
        t->xs[i] = 0.01f;
    for (size_t i = 0; i < t->tiles * pp_group_count(TILE_WIDTH, group); i++)
        t->hs[i] = 0.01f;
    return 0;
}

static pp_q8_next next_hint(const tile_part *p) {
    return (pp_q8_next){p->w, p->m, p->k};
}

/* Whether the pruned pattern keeps tile i: two of every three, as Probe
 * Pruning at a ratio of 1/3 keeps. */
static int tile_kept(size_t i) { return i % 3 != 2; }

/* Kept tiles from `from` on: the first one, or t->tiles when none is left. */
static size_t next_kept(const tiled *t, size_t from) {
    while (from < t->tiles && !tile_kept(from))
        from++;
    return from;
}

/* Runs the decode of the kept tiles once: the gate and up parts, then the
 * down parts, each call naming the next part when `hints` is set. Returns
 * the seconds. */
static double time_tiled(const pp_kernels *kernels, tiled *t, int hints) {
    const size_t hs_step = pp_group_count(TILE_WIDTH, t->group);
    const double start = sample_seconds(1);
    for (int kind = 0; kind < 2; kind++) {
        for (size_t i = next_kept(t, 0); i < t->tiles; i = next_kept(t, i + 1)) {
            const tile_part part = tiled_part(t, i, kind);
            const size_t following = next_kept(t, i + 1);
            const int last = following == t->tiles;
            const tile_part after = tiled_part(t, last ? i : following, kind);
            const pp_q8_next next = next_hint(&after);
            /* gate/up: the MLP input to this tile's rows of y; down: the
             * tile's activations, added into one output row. */
            const int8_t *x = kind ? t->h + i * TILE_WIDTH : t->x;
            const float *xs = kind ? t->hs + i * hs_step : t->xs;
            float *y = kind ? t->y + 2 * t->tiles * TILE_WIDTH
                            : t->y + 2 * i * TILE_WIDTH;
            kernels->gemv_q8(part.m, part.k, t->group, part.w, x, xs, y, kind,
                             hints && !last ? &next : NULL);
        }
    }
    return sample_seconds(1) - start;
}

/* Prints and stores the tiled decode speed of every SIMD variant on one
 * thread: the median of 5 passes, each paired with a read of as many
 * bytes. */
typedef struct tiled_result {
    const char *isa;
    double plain_gbs, hinted_gbs, read_gbs;
} tiled_result;

static tiled_result tiled_results[8];
static size_t n_tiled_results;

static void bench_tiled(const char *names, size_t min_bytes, size_t group,
                        read_buffer *buffer) {
    if (group != 32)
        return;  /* the tiles are 32 channels wide */
    tiled t;
    if (tiled_alloc(&t, min_bytes, group) != 0) {
        fprintf(stderr, "out of memory for the tiled decode buffer\n");
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < t.tiles; i++)
        kept += (size_t)tile_kept(i);
    const double bytes = (double)(kept * t.tile_bytes);
    const size_t read_bytes = buffer->bytes < kept * t.tile_bytes
                                  ? buffer->bytes / 64 * 64
                                  : kept * t.tile_bytes / 64 * 64;
    printf("\ntiled decode, 1 thread: %zu of %zu MLP tiles of TinyLlama-1.1B "
           "(%zu MiB read), gate/up parts then down parts\n",
           kept, t.tiles, (kept * t.tile_bytes) >> 20);
    printf("%-7s %12s %12s %12s %8s\n", "isa", "no hint GB/s",
           "hinted GB/s", "read GB/s", "ratio");
    for (const char *p = names; *p && n_tiled_results < 8;) {
        char isa[16];
        const size_t length = strcspn(p, " ");
        snprintf(isa, sizeof isa, "%.*s", (int)length, p);
        p += length + (p[length] == ' ');
        pp_kernels kernels;
        if (strcmp(isa, "scalar") == 0 ||
            pp_kernels_select(isa, &kernels, NULL, 0) != 0)
            continue;

        double plain[5], hinted[5], read[5];
        for (int pass = 0; pass < 5; pass++) {
            read[pass] = (double)read_bytes /
                         time_read(pp_pool_workers(NULL), buffer, 0, read_bytes) / 1e9;
            plain[pass] = bytes / time_tiled(&kernels, &t, 0) / 1e9;
            hinted[pass] = bytes / time_tiled(&kernels, &t, 1) / 1e9;
        }
        tiled_result *r = &tiled_results[n_tiled_results++];
        r->isa = kernels.isa;
        r->plain_gbs = median(plain, 5);
        r->hinted_gbs = median(hinted, 5);
        r->read_gbs = median(read, 5);
        printf("%-7s %12.2f %12.2f %12.2f %8.2f\n", r->isa, r->plain_gbs,
               r->hinted_gbs, r->read_gbs, r->hinted_gbs / r->read_gbs);
    }
    tiled_free(&t);
}

/* ---- Results ------------------------------------------------------------ */

typedef struct result {
    const char *isa;
    size_t m, k, group, n;
    int threads;
    int from_memory;  /* GEMV with weights from memory, else cache-warm */
    double seconds, weight_gbs, gops;
    double read_gbs;  /* paired read bandwidth (from_memory), else 0 */
} result;

enum { MAX_RESULTS = 1024 };
static result results[MAX_RESULTS];
static size_t n_results;

static void print_header(void) {
    printf("%-7s %15s %4s %6s %3s %9s %8s %8s %8s %6s\n", "isa", "m x k", "n",
           "w from", "thr", "ms/call", "GOP/s", "w GB/s", "read", "ratio");
}

static void print_result(const result *r, const char *note) {
    printf("%-7s %6zu x %-6zu %4zu %6s %3d %9.3f %8.2f", r->isa, r->m, r->k,
           r->n, r->from_memory ? "memory" : "cache", r->threads,
           r->seconds * 1e3, r->gops);
    /* Weight GB/s means something only when each weight is used once. */
    if (r->n == 1)
        printf(" %8.2f", r->weight_gbs);
    else
        printf(" %8s", "");
    if (r->from_memory)
        printf(" %8.2f %6.2f", r->read_gbs, r->weight_gbs / r->read_gbs);
    else
        printf(" %8s %6s", "", "");
    printf("  %s\n", note);
    fflush(stdout);
}

static int write_json(const char *path, const options *opt,
                      const double *read_gbs, const int *thread_counts,
                      int n_counts, const char *cpu_name, size_t llc_bytes) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "failed to write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"cpu\": \"%s\",\n  \"last_level_cache_bytes\": %zu,\n"
               "  \"group\": %zu,\n  \"single_thread_clock\": \"%s\",\n",
            cpu_name, llc_bytes, opt->group,
            single_thread_cpu_time ? "thread_cpu_time" : "wall");
    fprintf(f, "  \"read_bandwidth_gbs\": {");
    for (int t = 0; t < n_counts; t++)
        fprintf(f, "%s\"%d\": %.3f", t ? ", " : "", thread_counts[t],
                read_gbs[t]);
    fprintf(f, "},\n  \"gemm_q8\": [\n");
    for (size_t i = 0; i < n_results; i++) {
        const result *r = &results[i];
        fprintf(f,
                "    {\"isa\": \"%s\", \"m\": %zu, \"k\": %zu, \"group\": %zu, "
                "\"n\": %zu, \"threads\": %d, \"weights_from\": \"%s\", "
                "\"seconds\": %.9f, \"gops\": %.4f, \"weight_gbs\": %.4f",
                r->isa, r->m, r->k, r->group, r->n, r->threads,
                r->from_memory ? "memory" : "cache", r->seconds, r->gops,
                r->weight_gbs);
        if (r->from_memory)
            fprintf(f, ", \"paired_read_gbs\": %.4f, "
                       "\"weight_gbs_over_read_gbs\": %.4f",
                    r->read_gbs, r->weight_gbs / r->read_gbs);
        fprintf(f, "}%s\n", i + 1 < n_results ? "," : "");
    }
    fprintf(f, "  ],\n  \"tiled_decode_1_thread\": [\n");
    for (size_t i = 0; i < n_tiled_results; i++) {
        const tiled_result *r = &tiled_results[i];
        fprintf(f,
                "    {\"isa\": \"%s\", \"no_hint_gbs\": %.4f, "
                "\"hinted_gbs\": %.4f, \"paired_read_gbs\": %.4f}%s\n",
                r->isa, r->plain_gbs, r->hinted_gbs, r->read_gbs,
                i + 1 < n_tiled_results ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "failed to write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Reads the CPU model from /proc/cpuinfo, or leaves "unknown". */
static void read_cpu_name(char *name, size_t size) {
    snprintf(name, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) {
                snprintf(name, size, "%s", colon + 2);
                name[strcspn(name, "\n\"\\")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

/* ---- Main --------------------------------------------------------------- */

/* Measures one variant on one matrix and appends the results. */
static void bench_variant(const pp_kernels *kernels, const operands *o,
                          const char *note, size_t llc_bytes,
                          pp_workers *workers, int n_counts,
                          read_buffer *buffer, double min_seconds) {
    const int scalar = strcmp(kernels->isa, "scalar") == 0;
    const size_t macs = o->m * o->k;

    for (int pass = 0; pass < 4; pass++) {
        /* 0: GEMV from memory, 1: GEMV from cache, 2: n = 8, 3: n = 64. */
        size_t n = 1;
        if (pass == 2)
            n = 8;
        else if (pass == 3)
            n = 64;
        if (pass == 1 && (llc_bytes == 0 || o->weight_bytes > llc_bytes / 2))
            continue;
        /* Scalar prefill on large matrices takes seconds per call and
         * shows nothing the smaller ones do not. */
        if (pass == 3 && scalar && macs > ((size_t)8 << 20))
            continue;

        for (int t = 0; t < n_counts && n_results < MAX_RESULTS; t++) {
            result *r = &results[n_results++];
            r->isa = kernels->isa;
            r->m = o->m;
            r->k = o->k;
            r->group = o->group;
            r->n = n;
            r->threads = workers[t].n_threads;
            r->from_memory = pass == 0;
            r->read_gbs = 0.0;
            if (pass == 0)
                r->seconds = time_gemv_from_memory(kernels->gemm_q8, o,
                                                   workers[t], buffer,
                                                   min_seconds, &r->read_gbs);
            else
                r->seconds = time_gemm(kernels->gemm_q8, o, n, workers[t],
                                       min_seconds);
            r->gops = 2.0 * (double)(macs * n) / r->seconds / 1e9;
            r->weight_gbs = (double)o->weight_bytes / r->seconds / 1e9;
            print_result(r, note);
        }
    }
}

int main(int argc, char **argv) {
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    char cpu_name[256];
    read_cpu_name(cpu_name, sizeof cpu_name);
    const size_t llc_bytes = last_level_cache_bytes();

    pp_pool *pool = NULL;
    const int error = pp_pool_create(&pool, opt.threads);
    if (error) {
        fprintf(stderr, "failed to start %d threads: %s\n", opt.threads,
                strerror(error));
        return 1;
    }
    const int thread_counts[2] = {1, opt.threads};
    const int n_counts = opt.threads > 1 ? 2 : 1;
    pp_workers workers[2] = {pp_pool_workers(NULL), pp_pool_workers(pool)};

    /* Read bandwidth over the whole buffer. */
    read_buffer buffer = {NULL, (size_t)(opt.quick ? 64 : 512) << 20, 0, 0};
    buffer.data = malloc(buffer.bytes);
    if (!buffer.data) {
        fprintf(stderr, "out of memory for the %zu MiB bandwidth buffer; "
                        "--quick uses 64 MiB\n",
                buffer.bytes >> 20);
        return 1;
    }
    for (size_t i = 0; i < buffer.bytes / sizeof(uint64_t); i++)
        buffer.data[i] = i;

    printf("cpu: %s; last-level cache %zu KiB\n", cpu_name, llc_bytes >> 10);
    double read_gbs[2];
    for (int t = 0; t < n_counts; t++) {
        read_gbs[t] = measure_read_bandwidth(workers[t], &buffer);
        printf("read bandwidth, %d thread%s: %.2f GB/s (sum over %zu MiB, "
               "median of 7)\n",
               thread_counts[t], thread_counts[t] > 1 ? "s" : "", read_gbs[t],
               buffer.bytes >> 20);
    }

    char names[64];
    pp_kernels_available(names, sizeof names);
    printf("kernel variants: %s; group %zu; 1-thread runs timed with %s\n",
           names, opt.group,
           single_thread_cpu_time ? "thread CPU time" : "wall time");
    printf("GEMV from memory cycles through weight copies of at least %d "
           "MiB in total; 'read' is a plain read of as many bytes just "
           "before each timed sample, 'ratio' = w GB/s / read.\n\n",
           opt.quick ? 64 : 256);
    print_header();

    /* The weight copies GEMV cycles through must exceed every cache. */
    size_t cycle_bytes = (size_t)(opt.quick ? 64 : 256) << 20;
    if (cycle_bytes < 4 * llc_bytes)
        cycle_bytes = 4 * llc_bytes;

    const matrix_size *sizes = opt.quick ? quick_sizes : full_sizes;
    const size_t n_sizes = opt.quick ? sizeof quick_sizes / sizeof quick_sizes[0]
                                     : sizeof full_sizes / sizeof full_sizes[0];
    for (size_t s = 0; s < n_sizes; s++) {
        const size_t m = sizes[s].m, k = sizes[s].k;
        const size_t weight_bytes = pp_q8_matrix_bytes(m, k, opt.group);
        size_t copies = (cycle_bytes + weight_bytes - 1) / weight_bytes;
        if (copies < 2)
            copies = 2;

        operands o;
        if (operands_alloc(&o, m, k, opt.group, 64, copies) != 0) {
            fprintf(stderr, "out of memory for %zu copies of the %zu x %zu "
                            "weights; --quick uses smaller ones\n",
                    copies, m, k);
            return 1;
        }

        for (const char *p = names; *p;) {
            char isa[16];
            const size_t length = strcspn(p, " ");
            snprintf(isa, sizeof isa, "%.*s", (int)length, p);
            p += length + (p[length] == ' ');

            pp_kernels kernels;
            char message[256];
            if (pp_kernels_select(isa, &kernels, message, sizeof message) != 0) {
                fprintf(stderr, "%s\n", message);
                continue;
            }
            bench_variant(&kernels, &o, sizes[s].note, llc_bytes, workers,
                          n_counts, &buffer, opt.min_seconds);
        }
        operands_free(&o);
    }

    bench_tiled(names, cycle_bytes, opt.group, &buffer);

    pp_pool_destroy(pool);
    /* Printing the checksum keeps the compiler from dropping the reads. */
    printf("\n(read checksum %llu)\n", (unsigned long long)buffer.checksum);
    free(buffer.data);

    if (opt.json_path &&
        write_json(opt.json_path, &opt, read_gbs, thread_counts, n_counts,
                   cpu_name, llc_bytes) != 0)
        return 1;
    return 0;
}
