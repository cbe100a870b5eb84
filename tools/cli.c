/*
 * cli.c - what the `pprt` subcommands share: argument parsing, opening a
 * model into an arena, and the pruning options.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"
#include "dispatch.h"
#include "file_source.h"
#include "pool.h"
#include "pprt.h"
#include "text.h"

/* ---- Small utilities ------------------------------------------------------ */

_Noreturn void pp_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pprt: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void pp_progress(size_t done, size_t total, const char *fmt, ...) {
    /* A terminal gets one line rewritten in place; a log gets a line at
     * every tenth of the work and at the end. */
    const int tty = isatty(2);
    if (!tty && done != total && (done * 10 / total) == ((done - 1) * 10 / total))
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs(tty ? "\r" : "", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (!tty || done == total)
        fputc('\n', stderr);
}

double pp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

long pp_arg_int(const char *option, const char *value, long min, long max) {
    char *end;
    errno = 0;
    const long v = value ? strtol(value, &end, 10) : 0;
    if (!value || errno || *end || end == value || v < min || v > max)
        pp_die("invalid value '%s' for %s: expected an integer from %ld to %ld",
               value ? value : "", option, min, max);
    return v;
}

double pp_arg_float(const char *option, const char *value, double min,
                    double max, int max_inclusive) {
    char *end;
    errno = 0;
    const double v = value ? strtod(value, &end) : 0;
    if (!value || errno || *end || end == value || !isfinite(v) || v < min ||
        (max_inclusive ? v > max : v >= max))
        pp_die("invalid value '%s' for %s: expected a number in [%g, %g%c",
               value ? value : "", option, min, max, max_inclusive ? ']' : ')');
    return v;
}

/* JSON string with escapes. */
void pp_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        const unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* ---- Opening a model ------------------------------------------------------ */

static void log_to_stderr(void *user, const char *message) {
    (void)user;
    fprintf(stderr, "pprt: %s\n", message);
}

/* Storage settings for the read source, from --cache-mb and --flash-mbps. */
static double cache_mb = -1.0, flash_mbps = 0.0;

const char *pp_model_error(const pp_source *source, pp_status st, char *buf,
                           size_t size) {
    uint8_t header[PP_H_VERSION + 4];
    int readable = source->size >= sizeof header;
    if (readable && source->data)
        memcpy(header, source->data, sizeof header);
    else if (readable)
        readable = source->read(source->user, 0, header, sizeof header) == PP_OK;
    if (st == PP_ERR_VERSION && readable)
        snprintf(buf, size,
                 "unsupported pprt file version %u (this pprt reads version "
                 "%u): convert the model again with this pprt",
                 (unsigned)pp_get_u32(header + PP_H_VERSION), PP_VERSION);
    else
        snprintf(buf, size, "%s", pp_status_string(st));
    return buf;
}

void pp_session_open(pp_session *s, const char *path, const char *weights,
                     int threads, int max_batch, int max_tokens,
                     int max_context) {
    char err[512];
    memset(s, 0, sizeof *s);
    pp_set_log(log_to_stderr, NULL);

    pp_file_mode mode = PP_FILE_MMAP;
    if (!weights || strcmp(weights, "mmap") == 0)
        mode = PP_FILE_MMAP;
    else if (strcmp(weights, "mem") == 0)
        mode = PP_FILE_MEMORY;
    else if (strcmp(weights, "read") == 0)
        mode = PP_FILE_READ;
    else
        pp_die("invalid --weights '%s': expected mem, mmap or read", weights);
    if (!path)
        pp_die("missing -m MODEL.ppm (convert one with `pprt convert`)");
    if (flash_mbps > 0 && mode != PP_FILE_READ)
        pp_die("--flash-mbps throttles the read source: add --weights read");
    if (cache_mb >= 0 && mode != PP_FILE_READ)
        pp_die("--cache-mb sizes the tile cache of the read source: add "
               "--weights read");
    const int failed = mode == PP_FILE_READ
                           ? pp_file_open_read(&s->file, path, flash_mbps, err, sizeof err)
                           : pp_file_open(&s->file, path, mode, err, sizeof err);
    if (failed)
        pp_die("%s", err);

    pp_model_info info;
    pp_status st = pp_model_probe(&s->file.source, &info);
    if (st != PP_OK)
        pp_die("%s is not a usable pprt model: %s", path,
               pp_model_error(&s->file.source, st, err, sizeof err));

    if (pp_pool_create(&s->pool, threads) != 0)
        pp_die("cannot start %d threads", threads);

    pp_options o;
    memset(&o, 0, sizeof o);
    o.max_batch = max_batch;
    o.max_tokens = max_tokens;
    o.max_context = max_context > 0 ? max_context : info.max_seq_len;
    if (o.max_context < max_tokens)
        o.max_context = max_tokens;
    o.isa = getenv("PPRT_ISA");
    if (mode == PP_FILE_READ) {
        /* Default cache: the whole model, so nothing is read twice. */
        o.tile_cache_bytes = cache_mb >= 0 ? (uint64_t)(cache_mb * 1e6)
                                           : info.weight_bytes;
    }
    o.workers = pp_pool_workers(s->pool);
    if (o.isa && *o.isa) {
        pp_kernels k;
        char message[256];
        if (pp_kernels_select(o.isa, &k, message, sizeof message) != 0)
            pp_die("%s", message);
    }

    st = pp_arena_size(&s->file.source, &o, &s->arena_bytes);
    if (st != PP_OK)
        pp_die("cannot size the arena for %s: %s", path, pp_status_string(st));
    const size_t huge = (size_t)2 << 20;
    s->arena = aligned_alloc(huge, (s->arena_bytes + huge - 1) / huge * huge);
    if (s->arena)
        pp_huge_pages(s->arena, s->arena_bytes);
    if (!s->arena)
        pp_die("out of memory: the arena needs %zu bytes", s->arena_bytes);
    st = pp_init(&s->ctx, s->arena, s->arena_bytes, &s->file.source, &o);
    if (st != PP_OK)
        pp_die("cannot load %s: %s", path, pp_status_string(st));
    s->info = *pp_info(s->ctx);
    if (s->info.synthetic)
        fprintf(stderr, "pprt: %s has synthetic (random) weights: speed and "
                        "bytes are real, text and perplexity are not\n", path);
}

void pp_session_close(pp_session *s) {
    free(s->arena);
    pp_pool_destroy(s->pool);
    pp_file_close(&s->file);
}

/* ---- Pruning options shared by generate and perplexity -------------------- */

static const char *method_names[] = {"dense", "pp", "fullprobe", "wandasp", "flap",
                                     "pp-global"};

const char *pp_method_name(pp_method m) {
    return (size_t)m < sizeof method_names / sizeof *method_names
               ? method_names[m]
               : "unknown";
}

void pp_prune_options_init(pp_prune_options *p) {
    memset(p, 0, sizeof *p);
    p->method = PP_METHOD_PP;
    p->ratio = 0.4f;
    p->skip = -1;
    p->probe_positions = 0.5f;
    p->probe_rows = 0.05f;
    p->ema = 0.99f;
    p->fix_ratio = -1.0f;
    p->calib_batches = 16;
    p->whole_tiles = -1;  /* the command's default */
    p->probe_min_tokens = -1;
    p->probe_share = -1.0f;
    p->history_rows = -2.0f;
    p->threads = 1;
}

/* Parses one pruning option at argv[*i]; returns 0 if it is not one. */
int pp_prune_option(pp_prune_options *p, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;

    if (strcmp(a, "--method") == 0) {
        size_t k = 0;
        for (; k < sizeof method_names / sizeof *method_names; k++)
            if (v && strcmp(v, method_names[k]) == 0)
                break;
        if (k == sizeof method_names / sizeof *method_names)
            pp_die("invalid --method '%s': expected dense, pp, fullprobe, "
                   "wandasp, flap or pp-global", v ? v : "");
        p->method = (pp_method)k;
    } else if (strcmp(a, "--prune") == 0) {
        p->ratio = (float)pp_arg_float(a, v, 0.0, 1.0, 0);
    } else if (strcmp(a, "--skip") == 0) {
        p->skip = (int)pp_arg_int(a, v, 0, 1024);
    } else if (strcmp(a, "--probe-positions") == 0) {
        p->probe_positions = (float)pp_arg_float(a, v, 1e-6, 1.0, 1);
    } else if (strcmp(a, "--probe-rows") == 0) {
        p->probe_rows = (float)pp_arg_float(a, v, 1e-6, 1.0, 1);
    } else if (strcmp(a, "--ema") == 0) {
        p->ema = (float)pp_arg_float(a, v, 0.0, 1.0, 1);
    } else if (strcmp(a, "--tile") == 0) {
        p->round_to = (int)pp_arg_int(a, v, 1, 1 << 18);
    } else if (strcmp(a, "--select") == 0) {
        if (v && strcmp(v, "tiles") == 0)
            p->whole_tiles = 1;
        else if (v && strcmp(v, "channels") == 0)
            p->whole_tiles = 0;
        else
            pp_die("invalid --select '%s': expected tiles or channels", v ? v : "");
    } else if (strcmp(a, "--whole-tiles") == 0) {
        p->whole_tiles = 1;
        return 1;
    } else if (strcmp(a, "--no-history") == 0) {
        p->no_history = 1;
        return 1;
    } else if (strcmp(a, "--no-global-budget") == 0) {
        p->no_global_budget = 1;
        return 1;
    } else if (strcmp(a, "--no-bias") == 0) {
        p->no_bias = 1;
        return 1;
    } else if (strcmp(a, "--no-history-fill") == 0) {
        p->no_history_fill = 1;
        return 1;
    } else if (strcmp(a, "--probe-min-tokens") == 0) {
        p->probe_min_tokens = (int)pp_arg_int(a, v, 0, 1 << 30);
    } else if (strcmp(a, "--probe-share") == 0) {
        p->probe_share = (float)pp_arg_float(a, v, 0.0, 1.0, 1);
    } else if (strcmp(a, "--history-rows") == 0) {
        p->history_rows = (float)pp_arg_float(a, v, 0.0, 1e6, 1);
    } else if (strcmp(a, "--pp-fusion") == 0) {
        p->history_rows = -1.0f;
        return 1;
    } else if (strcmp(a, "--fix-ratio") == 0) {
        p->fix_ratio = (float)pp_arg_float(a, v, 0.0, 1.0, 1);
    } else if (strcmp(a, "--calib") == 0) {
        if (!v)
            pp_die("--calib needs a text file");
        p->calib = v;
    } else if (strcmp(a, "--calib-batches") == 0) {
        p->calib_batches = (int)pp_arg_int(a, v, 0, 1 << 20);
    } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
        p->threads = (int)pp_arg_int(a, v, 1, 256);
    } else if (strcmp(a, "--weights") == 0) {
        if (!v)
            pp_die("--weights needs mem, mmap or read");
        p->weights = v;
    } else if (strcmp(a, "--cache-mb") == 0) {
        cache_mb = pp_arg_float(a, v, 0.0, 1e9, 1);
    } else if (strcmp(a, "--flash-mbps") == 0) {
        flash_mbps = pp_arg_float(a, v, 0.001, 1e6, 1);
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

const char *pp_prune_help =
    "pruning:\n"
    "  --method M            dense | pp (Probe Pruning, default) | fullprobe (the\n"
    "                        whole batch is the probe) | wandasp | flap (static)\n"
    "                        | pp-global (Probe Pruning with global per-layer\n"
    "                        budgets and bias compensation; needs --calib)\n"
    "  --prune R             mean fraction of heads and MLP channels removed,\n"
    "                        0 <= R < 1 (default 0.4)\n"
    "  --skip K              never prune the first K layers (default: 1 per 10)\n"
    "  --probe-positions F   fraction of positions in the probe (default 0.5)\n"
    "  --probe-rows F        fraction of sequences in the probe (default 0.05)\n"
    "  --ema M               history momentum (default 0.99)\n"
    "  --tile T              pruned MLP channels per layer are a multiple of T\n"
    "                        (default: the file's tile)\n"
    "  --select tiles|channels\n"
    "                        prune whole MLP tiles, so pruned tiles are never\n"
    "                        read (default for generate and bench), or single\n"
    "                        channels as the paper does (default for perplexity)\n"
    "  --whole-tiles         the same as --select tiles\n"
    "  --no-history          score from the probe alone\n"
    "  --fix-ratio W         fixed fusion weight W in [0, 1] instead of p/(p+g)\n"
    "  --calib FILE          calibration text for the history and the static\n"
    "                        methods (e.g. wikitext-2-test.raw)\n"
    "  --calib-batches N     calibration batches (default 16)\n"
    "  -t, --threads N       worker threads (default 1)\n"
    "  --weights mem|mmap|read\n"
    "                        weights in memory, mapped (default), or read on\n"
    "                        demand (pread) into a tile cache\n"
    "  --cache-mb N          tile cache for --weights read, in MB (default: the\n"
    "                        model's weight bytes); it never gets less than one\n"
    "                        slot per kind of tile part, whatever N\n"
    "  --flash-mbps X        throttle --weights read to X MB/s, to measure flash\n"
    "                        behaviour on a fast disk (a real device needs none)\n"
    "pp-global (each part is on by default):\n"
    "  --probe-share F       the probe is this share of a call's tokens, whole\n"
    "                        positions of one row first (default 0.09); 0 uses\n"
    "                        --probe-positions and --probe-rows as pp does\n"
    "  --probe-min-tokens N  at least N probe tokens, or all of a shorter call\n"
    "                        (default 16)\n"
    "  --history-rows H      the history weighs as H probe rows in the fusion\n"
    "                        weight R / (R + H) (default 2)\n"
    "  --pp-fusion           fusion weight p / (p + g) as pp uses\n"
    "  --no-history-fill     score the probe positions only, as pp does\n"
    "  --no-global-budget    prune the same share of every pruned layer\n"
    "  --no-bias             do not add back the pruned channels' mean output\n"
    "environment: PPRT_ISA=scalar|avx2|vnni|neon|dotprod forces a kernel variant\n";

/*
 * Applies the pruning options: calibrates on the first batches of the
 * calibration text (S tokens x B sequences) when one is given, then sets
 * the method.
 */
void pp_prune_apply(pp_session *s, const pp_prune_options *p, int S, int B,
                    int quiet) {
    char err[512];
    pp_prune_config cfg;
    pp_prune_defaults(&s->info, &cfg);
    cfg.method = p->method;
    cfg.ratio = p->method == PP_METHOD_DENSE ? 0.0f : p->ratio;
    if (p->skip >= 0) {
        if (p->skip > s->info.n_layers)
            pp_die("invalid --skip %d: the model has %d layers", p->skip,
                   s->info.n_layers);
        cfg.skip_layers = p->skip;
    }
    cfg.probe_positions = p->probe_positions;
    cfg.probe_rows = p->probe_rows;
    cfg.ema = p->ema;
    cfg.round_to = p->round_to;
    cfg.whole_tiles = p->whole_tiles > 0;
    cfg.use_history = !p->no_history;
    cfg.fix_ratio = p->fix_ratio;
    cfg.global_budget = !p->no_global_budget;
    cfg.bias_compensation = !p->no_bias;
    cfg.history_fill = !p->no_history_fill;
    if (p->probe_min_tokens >= 0)
        cfg.probe_min_tokens = p->probe_min_tokens;
    if (p->probe_share >= 0.0f)
        cfg.probe_share = p->probe_share;
    if (p->history_rows >= -1.0f)
        cfg.history_rows = p->history_rows;
    if (cfg.round_to > s->info.hidden_dim)
        pp_die("invalid --tile %d: at most hidden_dim %d", cfg.round_to,
               s->info.hidden_dim);

    const int needs_calibration = p->method == PP_METHOD_WANDASP ||
                                  p->method == PP_METHOD_FLAP ||
                                  p->method == PP_METHOD_PP_GLOBAL;
    if (p->calib && p->calib_batches > 0 && p->method != PP_METHOD_DENSE &&
        p->method != PP_METHOD_FULLPROBE) {
        size_t size;
        char *text = pp_read_text_file(p->calib, &size, err, sizeof err);
        if (!text)
            pp_die("%s", err);
        pp_token_stream stream;
        const size_t want = (size_t)p->calib_batches * (size_t)B * (size_t)S + 1;
        if (pp_tokenize_stories(s->ctx, text, size, want, &stream, err, sizeof err) != 0)
            pp_die("%s: %s", p->calib, err);
        free(text);
        size_t batches = pp_stream_batches(&stream, S, B);
        if (batches > (size_t)p->calib_batches)
            batches = (size_t)p->calib_batches;
        if (batches == 0)
            pp_die("%s is too short for one calibration batch of %d x %d tokens",
                   p->calib, B, S + 1);
        int32_t *batch = malloc((size_t)B * (S + 1) * sizeof(int32_t));
        int32_t *inputs = malloc((size_t)B * S * sizeof(int32_t));
        if (!batch || !inputs)
            pp_die("out of memory");
        const double t0 = pp_now();
        for (size_t i = 0; i < batches; i++) {
            pp_stream_batch(&stream, S, B, i, batch);
            for (int b = 0; b < B; b++)
                memcpy(inputs + (size_t)b * S, batch + (size_t)b * (S + 1),
                       (size_t)S * sizeof(int32_t));
            pp_status st = pp_calibrate(s->ctx, inputs, B, S);
            if (st != PP_OK)
                pp_die("calibration failed: %s", pp_status_string(st));
            if (!quiet)
                pp_progress(i + 1, batches, "calibrating on %s: batch %zu/%zu (%.1f s)",
                            p->calib, i + 1, batches, pp_now() - t0);
        }
        free(batch);
        free(inputs);
        free(stream.ids);
    } else if (needs_calibration && cfg.ratio > 0) {
        pp_die("--method %s needs calibration text: add --calib FILE "
               "(e.g. wikitext-2-test.raw)", pp_method_name(p->method));
    } else if (p->method == PP_METHOD_PP && cfg.ratio > 0 && !quiet &&
               !p->no_history) {
        fprintf(stderr, "pprt: no --calib: Probe Pruning scores from the probe "
                        "alone (no history)\n");
    }

    pp_status st = pp_set_pruning(s->ctx, &cfg);
    if (st != PP_OK)
        pp_die("cannot set pruning: %s", pp_status_string(st));
}

/* Fraction of heads and channels kept, over the pruned layers. */
void pp_kept_fractions(pp_session *s, double *heads, double *channels) {
    const int L = s->info.n_layers, H = s->info.n_heads, C = s->info.hidden_dim;
    uint8_t *h = malloc((size_t)H), *c = malloc((size_t)C);
    long kept_h = 0, kept_c = 0;
    for (int l = 0; l < L; l++) {
        pp_kept_get(s->ctx, l, h, c);
        for (int i = 0; i < H; i++)
            kept_h += h[i];
        for (int i = 0; i < C; i++)
            kept_c += c[i];
    }
    *heads = (double)kept_h / ((double)L * H);
    *channels = (double)kept_c / ((double)L * C);
    free(h);
    free(c);
}

