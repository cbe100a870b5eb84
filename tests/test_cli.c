/*
 * test_cli.c - the pprt command on odd input: each bad value or option
 * fails with exit status 1 and a message that names it, and nothing is
 * written. Runs the binary named by PPRT_BIN (default build/pprt).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Runs `pprt ARGS`, returns its exit status and its stderr in `out`. */
static int run(const char *args, char *out, size_t size) {
    const char *bin = getenv("PPRT_BIN");
    char command[8192];
    snprintf(command, sizeof command, "%s %s 2>&1 >/dev/null",
             bin && *bin ? bin : "build/pprt", args);
    FILE *p = popen(command, "r");
    if (!p)
        return -1;
    const size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    const int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The case fails with status 1 and its message contains `expect`. */
static void expect_error(const char *args, const char *expect) {
    char out[4096];
    const int status = run(args, out, sizeof out);
    CHECKF(status == 1, "pprt %.120s: exit status %d, expected 1", args, status);
    CHECKF(strstr(out, expect) != NULL, "pprt %.120s: message \"%s\" lacks \"%s\"",
           args, out, expect);
}

static char model[256];

static void model_converts(void) {
    const char *bin = check_shared("models/stories260K/stories260K.bin");
    const char *tok = check_shared("models/stories260K/tok512.bin");
    if (!check_require_file(bin) || !check_require_file(tok))
        return;
    snprintf(model, sizeof model, "/tmp/pprt-cli-%d.ppm", (int)getpid());
    char args[1024], out[4096];
    snprintf(args, sizeof args, "convert --llama2c %s --tokenizer %s -o %s", bin,
             tok, model);
    CHECKF(run(args, out, sizeof out) == 0, "convert failed: %s", out);
}

static void bad_values_rejected(void) {
    if (!*model)
        return;
    char args[512];
    snprintf(args, sizeof args, "generate -m %s -p hi --prune 1.0", model);
    expect_error(args, "--prune");
    snprintf(args, sizeof args, "generate -m %s -p hi --prune -0.1", model);
    expect_error(args, "--prune");
    snprintf(args, sizeof args, "generate -m %s -p hi --prune abc", model);
    expect_error(args, "invalid value 'abc'");
    snprintf(args, sizeof args, "generate -m %s -p hi --no-such-option", model);
    expect_error(args, "unknown or incomplete option '--no-such-option'");
    snprintf(args, sizeof args, "generate -m %s -p hi --method magic", model);
    expect_error(args, "invalid --method 'magic'");
    snprintf(args, sizeof args, "generate -m %s -p hi --weights tape", model);
    expect_error(args, "invalid --weights 'tape'");
    snprintf(args, sizeof args, "perplexity -m %s -f /nonexistent/text.txt", model);
    expect_error(args, "/nonexistent/text.txt");
    snprintf(args, sizeof args, "generate -m %s -p hi --method flap --prune 0.4", model);
    expect_error(args, "needs calibration text");
    expect_error("generate -m /nonexistent/model.ppm -p hi", "/nonexistent/model.ppm");
    expect_error("frobnicate", "unknown command 'frobnicate'");
}

/* A prompt longer than the model's 512-token context is an error, and a
 * text file is not a model. */
static void odd_inputs_rejected(void) {
    if (!*model)
        return;
    char *prompt = malloc(6000), args[7000];
    for (int i = 0; i < 5999; i++)
        prompt[i] = "ab "[i % 3];
    prompt[5999] = '\0';
    snprintf(args, sizeof args, "generate -m %s -n 4 -p '%s'", model, prompt);
    expect_error(args, "longer than the model's context");
    free(prompt);

    snprintf(args, sizeof args, "info -m %s", check_shared("data/README.md"));
    expect_error(args, "not a pprt model file");

    /* An empty prompt still generates from BOS. */
    char out[4096];
    snprintf(args, sizeof args, "generate -m %s -p '' -n 4 --temp 0", model);
    CHECKF(run(args, out, sizeof out) == 0, "empty prompt failed: %s", out);

    snprintf(args, sizeof args, "synth --shape stories15M --layers 7 -o %s.synth",
             model);
    expect_error(args, "stories15M has 6 layers");
}

/* A file of another format version names its version; info --verify
 * finds a damaged weight byte that plain info does not read. */
static void damaged_files_reported(void) {
    if (!*model)
        return;
    FILE *f = fopen(model, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    rewind(f);
    unsigned char *bytes = malloc((size_t)size);
    CHECK(bytes != NULL);
    const size_t got = bytes ? fread(bytes, 1, (size_t)size, f) : 0;
    fclose(f);
    CHECK(got == (size_t)size);
    if (got != (size_t)size) {
        free(bytes);
        return;
    }

    char path[300], args[700], out[4096];
    snprintf(path, sizeof path, "%s.damaged", model);
    bytes[size / 2] ^= 0xFF;  /* in the layers' weights */
    f = fopen(path, "wb");
    fwrite(bytes, 1, (size_t)size, f);
    fclose(f);
    snprintf(args, sizeof args, "info -m %s", path);
    CHECKF(run(args, out, sizeof out) == 0, "info without --verify failed: %s", out);
    snprintf(args, sizeof args, "info -m %s --verify", path);
    expect_error(args, "checksum mismatch");

    bytes[size / 2] ^= 0xFF;
    bytes[8] = 2;  /* the version field, little-endian */
    f = fopen(path, "wb");
    fwrite(bytes, 1, (size_t)size, f);
    fclose(f);
    snprintf(args, sizeof args, "info -m %s", path);
    expect_error(args, "unsupported pprt file version 2 (this pprt reads version");
    snprintf(args, sizeof args, "generate -m %s -p hi --weights read", path);
    expect_error(args, "convert the model again");

    remove(path);
    remove(model);
    free(bytes);
}

int main(void) {
    RUN(model_converts);
    RUN(bad_values_rejected);
    RUN(odd_inputs_rejected);
    RUN(damaged_files_reported);
    return check_summary("test_cli");
}
