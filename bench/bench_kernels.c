/*
 * bench_kernels.c - gemm_q8 throughput of every kernel variant this CPU can
 * run, next to the machine's read bandwidth measured in the same run.
 *
 *   bench_kernels [--json FILE] [--threads N] [--quick] [--group G]
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
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "kernels.h"
#include "pool.h"

/* ---- Timing and options ------------------------------------------------- */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
            "[--group G]\n"
            "  --json FILE   also write the results as JSON to FILE\n"
            "  --threads N   threads of the multi-thread runs (default: "
            "online CPUs)\n"
            "  --quick       smaller matrices and buffers, shorter timing "
            "(for emulators)\n"
            "  --group G     quantization group in values (default 32)\n");
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
                fprintf(stderr, "invalid --threads '%s': expected 1..1024\n",
                        value);
                return -1;
            }
            o->threads = (int)t;
            i++;
        } else if (strcmp(arg, "--group") == 0 && value) {
            char *end;
            const long g = strtol(value, &end, 10);
            if (*end || g < 1 || g > 65536) {
                fprintf(stderr, "invalid --group '%s': expected 1..65536\n",
                        value);
                return -1;
            }
            o->group = (size_t)g;
            i++;
        } else if (strcmp(arg, "--quick") == 0) {
            o->quick = 1;
            o->min_seconds = 0.05;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "unknown or incomplete option '%s'\n", arg);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* ---- Read bandwidth ----------------------------------------------------- */

typedef struct read_job {
    const uint64_t *data;
    size_t words;
    size_t chunks;
    uint64_t sums[256];
} read_job;

static void read_task(void *arg, size_t index) {
    read_job *job = arg;
    const size_t per_chunk = job->words / job->chunks;
    const uint64_t *p = job->data + index * per_chunk;
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

/* Returns the best of 5 passes in GB/s (1e9 bytes per second). */
static double measure_read_bandwidth(pp_workers workers, uint64_t *buffer,
                                     size_t bytes) {
    static read_job job;
    job.data = buffer;
    job.words = bytes / sizeof(uint64_t);
    job.chunks = workers.n_threads == 1 ? 1 : 64;

    double best = 0.0;
    uint64_t check = 0;
    for (int pass = 0; pass < 5; pass++) {
        const double start = now_seconds();
        workers.run(workers.pool, job.chunks, read_task, &job);
        const double seconds = now_seconds() - start;
        for (size_t i = 0; i < job.chunks; i++)
            check += job.sums[i];
        const double rate = (double)bytes / seconds / 1e9;
        if (rate > best)
            best = rate;
    }
    /* Printing the sum keeps the compiler from dropping the reads. */
    if (check == 42)
        printf(" ");
    return best;
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
    int8_t *w;
    float *ws;
    int8_t *x;
    float *xs;
    float *y;
} operands;

static void operands_free(operands *o) {
    free(o->w);
    free(o->ws);
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

static int operands_alloc(operands *o, size_t m, size_t k, size_t group,
                          size_t n_max, size_t copies) {
    memset(o, 0, sizeof *o);
    o->m = m;
    o->k = k;
    o->group = group;
    o->groups = pp_group_count(k, group);
    o->n_max = n_max;
    o->copies = copies;
    o->w = malloc(copies * m * k);
    o->ws = malloc(copies * m * o->groups * sizeof(float));
    o->x = malloc(n_max * k);
    o->xs = malloc(n_max * o->groups * sizeof(float));
    o->y = malloc(n_max * m * sizeof(float));
    if (!o->w || !o->ws || !o->x || !o->xs || !o->y) {
        operands_free(o);
        return -1;
    }
    for (size_t i = 0; i < copies * m * k; i++)
        o->w[i] = (int8_t)((int)(fill_next() % 255) - 127);
    for (size_t i = 0; i < copies * m * o->groups; i++)
        o->ws[i] = 0.001f + (float)(fill_next() % 1000) * 1e-5f;
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
} gemm_job;

static void gemm_task(void *arg, size_t index) {
    const gemm_job *job = arg;
    const operands *o = job->o;
    const size_t begin = index * job->rows_per_task;
    const size_t rows = o->m - begin < job->rows_per_task ? o->m - begin
                                                          : job->rows_per_task;
    const int8_t *w = o->w + (job->copy * o->m + begin) * o->k;
    const float *ws = o->ws + (job->copy * o->m + begin) * o->groups;
    job->gemm(rows, job->n, o->k, o->group, w, ws, o->x, o->k, o->xs,
              o->groups, o->y + begin, o->m, 0);
}

/* Returns the mean seconds per call over at least min_seconds, after one
 * warm-up call. */
static double time_gemm(pp_gemm_q8_fn gemm, const operands *o, size_t n,
                        pp_workers workers, double min_seconds) {
    gemm_job job = {gemm, o, n, 0, o->m};
    size_t tasks = 1;
    if (workers.n_threads > 1) {
        /* 4 slices per thread evens out the load; at least 16 rows each. */
        size_t rows = (o->m + 4 * (size_t)workers.n_threads - 1) /
                      (4 * (size_t)workers.n_threads);
        rows = rows < 16 ? 16 : (rows + 15) / 16 * 16;
        job.rows_per_task = rows;
        tasks = (o->m + rows - 1) / rows;
    }

    workers.run(workers.pool, tasks, gemm_task, &job);
    size_t calls = 0;
    const double start = now_seconds();
    double elapsed;
    do {
        job.copy = (job.copy + 1) % o->copies;
        workers.run(workers.pool, tasks, gemm_task, &job);
        calls++;
        elapsed = now_seconds() - start;
    } while (elapsed < min_seconds || calls < 3);
    return elapsed / (double)calls;
}

/* ---- Results ------------------------------------------------------------ */

typedef struct result {
    const char *isa;
    size_t m, k, group, n;
    int threads;
    double seconds, weight_gbs, gops, read_gbs;
} result;

enum { MAX_RESULTS = 1024 };
static result results[MAX_RESULTS];
static size_t n_results;

static void print_result(const result *r, const char *note) {
    if (r->n == 1)
        printf("%-7s %6zu x %-6zu %4zu %3d %10.3f %8.2f %8.2f %7.2f  %s\n",
               r->isa, r->m, r->k, r->n, r->threads, r->seconds * 1e3,
               r->gops, r->weight_gbs, r->weight_gbs / r->read_gbs, note);
    else
        printf("%-7s %6zu x %-6zu %4zu %3d %10.3f %8.2f %8s %7s  %s\n",
               r->isa, r->m, r->k, r->n, r->threads, r->seconds * 1e3,
               r->gops, "", "", note);
    fflush(stdout);
}

static int write_json(const char *path, const options *opt,
                      const double *read_gbs, const int *thread_counts,
                      int n_counts, const char *cpu_name) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"cpu\": \"%s\",\n  \"group\": %zu,\n", cpu_name,
            opt->group);
    fprintf(f, "  \"read_bandwidth_gbs\": {");
    for (int t = 0; t < n_counts; t++)
        fprintf(f, "%s\"%d\": %.3f", t ? ", " : "", thread_counts[t],
                read_gbs[t]);
    fprintf(f, "},\n  \"gemm_q8\": [\n");
    for (size_t i = 0; i < n_results; i++) {
        const result *r = &results[i];
        fprintf(f,
                "    {\"isa\": \"%s\", \"m\": %zu, \"k\": %zu, \"group\": %zu, "
                "\"n\": %zu, \"threads\": %d, \"seconds\": %.9f, "
                "\"gops\": %.4f, \"weight_gbs\": %.4f, "
                "\"weight_gbs_over_read_gbs\": %.4f}%s\n",
                r->isa, r->m, r->k, r->group, r->n, r->threads, r->seconds,
                r->gops, r->weight_gbs, r->weight_gbs / r->read_gbs,
                i + 1 < n_results ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Reads the CPU model from /proc/cpuinfo (x86) or leaves "unknown". */
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

int main(int argc, char **argv) {
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    char cpu_name[256];
    read_cpu_name(cpu_name, sizeof cpu_name);

    pp_pool *pool = NULL;
    const int error = pp_pool_create(&pool, opt.threads);
    if (error) {
        fprintf(stderr, "cannot start %d threads: %s\n", opt.threads,
                strerror(error));
        return 1;
    }
    const int thread_counts[2] = {1, opt.threads};
    const int n_counts = opt.threads > 1 ? 2 : 1;
    pp_workers workers[2] = {pp_pool_workers(NULL), pp_pool_workers(pool)};

    /* Read bandwidth. */
    const size_t buffer_bytes = (size_t)(opt.quick ? 64 : 512) << 20;
    uint64_t *buffer = malloc(buffer_bytes);
    if (!buffer) {
        fprintf(stderr, "cannot allocate the %zu MiB bandwidth buffer\n",
                buffer_bytes >> 20);
        return 1;
    }
    for (size_t i = 0; i < buffer_bytes / sizeof(uint64_t); i++)
        buffer[i] = i;
    double read_gbs[2];
    printf("cpu: %s\n", cpu_name);
    for (int t = 0; t < n_counts; t++) {
        read_gbs[t] = measure_read_bandwidth(workers[t], buffer, buffer_bytes);
        printf("read bandwidth, %d thread%s: %.2f GB/s (sum over %zu MiB, "
               "best of 5)\n",
               thread_counts[t], thread_counts[t] > 1 ? "s" : "", read_gbs[t],
               buffer_bytes >> 20);
    }
    free(buffer);

    /* Variants. */
    char names[64];
    pp_kernels_available(names, sizeof names);
    printf("kernel variants: %s; group %zu\n\n", names, opt.group);
    printf("%-7s %15s %4s %3s %10s %8s %8s %7s\n", "isa", "m x k", "n", "thr",
           "ms/call", "GOP/s", "w GB/s", "w/read");

    const matrix_size *sizes = opt.quick ? quick_sizes : full_sizes;
    const size_t n_sizes = opt.quick ? sizeof quick_sizes / sizeof quick_sizes[0]
                                     : sizeof full_sizes / sizeof full_sizes[0];
    const size_t ns[] = {1, 8, 64};
    const size_t cycle_bytes = (size_t)256 << 20;

    for (size_t s = 0; s < n_sizes; s++) {
        const size_t m = sizes[s].m, k = sizes[s].k;
        const size_t weight_bytes =
            m * k + m * pp_group_count(k, opt.group) * sizeof(float);
        size_t copies = (cycle_bytes + weight_bytes - 1) / weight_bytes;
        if (copies > 8 || opt.quick)
            copies = 1; /* small matrices: cache-resident on purpose */

        operands o;
        if (operands_alloc(&o, m, k, opt.group, 64, copies) != 0) {
            fprintf(stderr, "cannot allocate operands for %zu x %zu\n", m, k);
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

            for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
                const size_t n = ns[a];
                /* Scalar prefill on the largest matrices takes seconds per
                 * call and says nothing new. */
                if (n > 8 && strcmp(isa, "scalar") == 0 && m * k > (8u << 20))
                    continue;
                for (int t = 0; t < n_counts; t++) {
                    if (n_results == MAX_RESULTS)
                        break;
                    result *r = &results[n_results++];
                    r->isa = kernels.isa;
                    r->m = m;
                    r->k = k;
                    r->group = opt.group;
                    r->n = n;
                    r->threads = thread_counts[t];
                    r->seconds = time_gemm(kernels.gemm_q8, &o, n, workers[t],
                                           opt.min_seconds);
                    r->gops = 2.0 * (double)(m * k * n) / r->seconds / 1e9;
                    r->weight_gbs = (double)weight_bytes / r->seconds / 1e9;
                    r->read_gbs = read_gbs[t];
                    print_result(r, sizes[s].note);
                }
            }
        }
        operands_free(&o);
    }

    pp_pool_destroy(pool);
    if (opt.json_path && write_json(opt.json_path, &opt, read_gbs,
                                    thread_counts, n_counts, cpu_name) != 0)
        return 1;
    return 0;
}
