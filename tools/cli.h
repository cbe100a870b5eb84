/*
 * cli.h - shared parts of the `pprt` subcommands.
 */
#ifndef PP_CLI_H
#define PP_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "file_source.h"
#include "pool.h"
#include "pprt.h"

typedef struct pp_session {
    pp_file_source file;
    pp_pool *pool;
    void *arena;
    size_t arena_bytes;
    pp_context *ctx;
    pp_model_info info;
} pp_session;

typedef struct pp_prune_options {
    pp_method method;
    float ratio;
    int skip;               /* -1: the default for the model */
    float probe_positions, probe_rows, ema, fix_ratio;
    int round_to, no_history;
    int whole_tiles;        /* -1: the command's default */
    int no_global_budget, no_bias, no_history_fill;  /* pp-global parts off */
    int probe_min_tokens;   /* pp-global; -1: the library's default */
    float probe_share;      /* pp-global; < 0: the library's default */
    float history_rows;     /* pp-global; -1: pp's fusion; < -1: default */
    const char *calib;
    int calib_batches;
    int threads;
    const char *weights;    /* "mem" or "mmap" */
} pp_prune_options;

extern const char *pp_prune_help;

_Noreturn void pp_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
double pp_now(void);
/* Prints "done of total" progress on stderr (done counts from 1). */
void pp_progress(size_t done, size_t total, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
long pp_arg_int(const char *option, const char *value, long min, long max);
double pp_arg_float(const char *option, const char *value, double min,
                    double max, int max_inclusive);
void pp_json_string(FILE *f, const char *s, size_t n);

/* Describes why pp_model_probe rejected `source` with status st, naming
 * the file's version for PP_ERR_VERSION; returns buf. */
const char *pp_model_error(const pp_source *source, pp_status st, char *buf,
                           size_t size);

void pp_session_open(pp_session *s, const char *path, const char *weights,
                     int threads, int max_batch, int max_tokens, int max_context);
void pp_session_close(pp_session *s);

const char *pp_method_name(pp_method m);
void pp_prune_options_init(pp_prune_options *p);
int pp_prune_option(pp_prune_options *p, int argc, char **argv, int *i);
void pp_prune_apply(pp_session *s, const pp_prune_options *p, int S, int B,
                    int quiet);
void pp_kept_fractions(pp_session *s, double *heads, double *channels);

int pp_cmd_convert(int argc, char **argv);
int pp_cmd_generate(int argc, char **argv);
int pp_cmd_perplexity(int argc, char **argv);
int pp_cmd_synth(int argc, char **argv);
int pp_cmd_bench(int argc, char **argv);

#endif /* PP_CLI_H */
