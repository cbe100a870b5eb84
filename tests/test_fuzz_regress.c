/*
 * test_fuzz_regress.c - replays the fuzz corpora and the saved crashing
 * inputs through the same entry functions as the libFuzzer targets, so
 * every input that once crashed stays covered in a normal build.
 *
 * Inputs: tests/fuzz/corpus/<target>/ (the seeds) and
 * tests/fuzz/regress/<target>/ (crashes, may be absent), relative to the
 * working directory, which is the repository root under `make test`.
 * A target aborts on a broken invariant, so a failing input stops the
 * program; its name is printed before it runs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz/fuzz_gguf.c"
#include "fuzz/fuzz_llama2c.c"
#include "fuzz/fuzz_model.c"
#include "fuzz/fuzz_tokenizer.c"

typedef void (*replay_fn)(const uint8_t *data, size_t size);

static void replay_model(const uint8_t *data, size_t size) {
    fuzz_model_one(data, size);
}

static void replay_llama2c(const uint8_t *data, size_t size) {
    fuzz_llama2c_one(data, size, 1);
}

static void replay_gguf(const uint8_t *data, size_t size) {
    fuzz_gguf_one(data, size);
}

static void replay_tokenizer(const uint8_t *data, size_t size) {
    fuzz_tokenizer_one(data, size);
}

/*
 * Runs `replay` on every regular file in `folder`. Returns the number of
 * files, or -1 when the folder cannot be opened.
 */
static int replay_folder(const char *folder, replay_fn replay) {
    DIR *dir = opendir(folder);
    if (!dir)
        return -1;

    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", folder, entry->d_name);
        size_t size = 0;
        uint8_t *data = check_read_file(path, &size);
        if (!data)
            continue;
        /* Printed first, because a failing input aborts the program. */
        fprintf(stderr, "replay %s\n", path);
        replay(data, size);
        free(data);
        count++;
    }
    closedir(dir);
    return count;
}

/* Replays the corpus (required) and the crash folder (optional) of `target`. */
static void replay_target(const char *target, replay_fn replay) {
    char corpus[256], regress[256];
    snprintf(corpus, sizeof corpus, "tests/fuzz/corpus/%s", target);
    snprintf(regress, sizeof regress, "tests/fuzz/regress/%s", target);

    const int seeds = replay_folder(corpus, replay);
    if (seeds < 0) {
        /* Same rule as missing shared data: skip, or fail under CI. */
        fprintf(stderr, "%s not found (%s); run the test from the "
                        "repository root\n", corpus, strerror(errno));
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0)
            check_failures_in_test++;
        else
            check_skip_current = 1;
        return;
    }
    CHECKF(seeds > 0, "%s has no seed files", corpus);
    replay_folder(regress, replay);
}

static void test_replay_model_inputs(void) {
    replay_target("fuzz_model", replay_model);
}

static void test_replay_llama2c_inputs(void) {
    replay_target("fuzz_llama2c", replay_llama2c);
}

static void test_replay_tokenizer_inputs(void) {
    replay_target("fuzz_tokenizer", replay_tokenizer);
}

static void test_replay_gguf_inputs(void) {
    replay_target("fuzz_gguf", replay_gguf);
}

int main(void) {
    RUN(test_replay_model_inputs);
    RUN(test_replay_llama2c_inputs);
    RUN(test_replay_tokenizer_inputs);
    RUN(test_replay_gguf_inputs);
    return check_summary("test_fuzz_regress");
}
