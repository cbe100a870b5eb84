/*
 * check.h - the minimal test harness shared by pprt's test programs.
 *
 * A test is a void function run with RUN(); it fails if any CHECK inside it
 * fails. Each program ends with check_summary(), which prints
 * "<program>: N passed, N failed, N skipped" and returns the exit status.
 * Data from the shared folder is found through PPRT_SHARED (default
 * ../shared); a test whose data is missing is skipped, and fails instead
 * when CI=true.
 */
#ifndef PP_CHECK_H
#define PP_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures_in_test;
static int check_tests_passed, check_tests_failed, check_tests_skipped;
static int check_skip_current;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                       \
            check_failures_in_test++;                                       \
        }                                                                   \
    } while (0)

/* CHECK with a printf-style explanation of the values involved. */
#define CHECKF(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,          \
                    __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            check_failures_in_test++;                                       \
        }                                                                   \
    } while (0)

#define RUN(test)                                                           \
    do {                                                                    \
        check_failures_in_test = 0;                                         \
        check_skip_current = 0;                                             \
        test();                                                             \
        if (check_failures_in_test) {                                       \
            check_tests_failed++;                                           \
            fprintf(stderr, "FAIL %s\n", #test);                            \
        } else if (check_skip_current) {                                    \
            check_tests_skipped++;                                          \
        } else {                                                            \
            check_tests_passed++;                                           \
        }                                                                   \
    } while (0)

static inline int check_summary(const char *program) {
    printf("%s: %d passed, %d failed, %d skipped\n", program,
           check_tests_passed, check_tests_failed, check_tests_skipped);
    return check_tests_failed ? 1 : 0;
}

/* Joins PPRT_SHARED (default ../shared) and `relative` into a static path. */
static inline const char *check_shared(const char *relative) {
    static char path[4][1024];
    static int next;
    const char *root = getenv("PPRT_SHARED");
    char *out = path[next++ % 4];
    snprintf(out, sizeof path[0], "%s/%s", root && *root ? root : "../shared",
             relative);
    return out;
}

/*
 * Returns 1 if `path` can be opened. Otherwise marks the current test as
 * skipped, or failed when CI=true, and returns 0.
 */
static inline int check_require_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return 1;
    }
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) {
        fprintf(stderr, "missing test data %s (set PPRT_SHARED); failing "
                        "because CI=true\n", path);
        check_failures_in_test++;
    } else {
        fprintf(stderr, "skipped: missing test data %s (set PPRT_SHARED)\n",
                path);
        check_skip_current = 1;
    }
    return 0;
}

/*
 * Reads a whole file into a malloc'd buffer; returns NULL (and fails the
 * current test) on error. *size gets the byte count.
 */
static inline void *check_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        check_failures_in_test++;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        check_failures_in_test++;
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

#endif /* PP_CHECK_H */
