/*
 * test_port_faults.c - the hosted port's file sources under injected
 * system call faults: EINTR, short reads, EIO and an early end of file.
 *
 * The program is linked with -Wl,--wrap=pread -Wl,--wrap=read (see the
 * Makefile), so every pread() and read() call in port/file_source.c goes
 * to __wrap_pread and __wrap_read below. Each wrapper follows a fault plan
 * that the test sets, then calls the C library's function.
 *
 * The runtime makes up to three attempts at a weight read that returns
 * PP_ERR_IO, so a plan that must reach the port's own EINTR retry makes at
 * least three calls in a row fail.
 */
#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include "file_source.h"
#include "model_fixture.h"

/* What one wrapped call does. */
typedef enum fault {
    FAULT_PASS,   /* the real call, unchanged */
    FAULT_EINTR,  /* -1 with errno EINTR, nothing read */
    FAULT_ONE,    /* the real call for at most 1 byte */
    FAULT_HALF,   /* the real call for half the bytes, rounded up */
    FAULT_EIO,    /* -1 with errno EIO */
    FAULT_EOF,    /* 0, as at the end of the file */
} fault;

#define MAX_STEPS 8

/* Faults for successive calls of one function, repeated cyclically. */
typedef struct fault_plan {
    fault steps[MAX_STEPS];
    int n_steps;      /* 0: every call passes */
    long pass_first;  /* calls that pass before the steps start */
    long calls;       /* wrapped calls since the plan was set */
    long injected;    /* calls that got a step other than FAULT_PASS */
} fault_plan;

static fault_plan pread_plan, read_plan;

ssize_t __real_pread(int fd, void *buffer, size_t count, off_t offset);
ssize_t __wrap_pread(int fd, void *buffer, size_t count, off_t offset);
ssize_t __real_read(int fd, void *buffer, size_t count);
ssize_t __wrap_read(int fd, void *buffer, size_t count);

static void plan_set(fault_plan *plan, const fault *steps, int n_steps) {
    memset(plan, 0, sizeof *plan);
    for (int i = 0; i < n_steps && i < MAX_STEPS; i++)
        plan->steps[i] = steps[i];
    plan->n_steps = n_steps < MAX_STEPS ? n_steps : MAX_STEPS;
}

static void plans_clear(void) {
    plan_set(&pread_plan, NULL, 0);
    plan_set(&read_plan, NULL, 0);
}

/*
 * Takes the next step of `plan`. Returns 1 with *result set when the call
 * must not reach the C library, or 0 with *count lowered to the bytes to
 * request from it.
 */
static int plan_next(fault_plan *plan, size_t *count, ssize_t *result) {
    const long index = plan->calls - plan->pass_first;
    const fault step = plan->n_steps && index >= 0
                           ? plan->steps[index % plan->n_steps]
                           : FAULT_PASS;
    plan->calls++;
    if (step != FAULT_PASS)
        plan->injected++;

    switch (step) {
    case FAULT_EINTR:
        errno = EINTR;
        *result = -1;
        return 1;
    case FAULT_EIO:
        errno = EIO;
        *result = -1;
        return 1;
    case FAULT_EOF:
        *result = 0;
        return 1;
    case FAULT_ONE:
        if (*count > 1)
            *count = 1;
        return 0;
    case FAULT_HALF:
        if (*count > 1)
            *count = (*count + 1) / 2;
        return 0;
    case FAULT_PASS:
        break;
    }
    return 0;
}

ssize_t __wrap_pread(int fd, void *buffer, size_t count, off_t offset) {
    ssize_t result;
    if (plan_next(&pread_plan, &count, &result))
        return result;
    return __real_pread(fd, buffer, count, offset);
}

ssize_t __wrap_read(int fd, void *buffer, size_t count) {
    ssize_t result;
    if (plan_next(&read_plan, &count, &result))
        return result;
    return __real_read(fd, buffer, count);
}

/* A read loop that retries a 0 or EIO result forever would hang the test,
 * so a watchdog ends the program instead. */
#define WATCHDOG_SECONDS 20

static fixture_model model;
static int have_model;
static char model_path[64];

static void watchdog_fired(int signal_number) {
    (void)signal_number;
    static const char message[] =
        "test_port_faults: timed out waiting for a read to return. A read "
        "loop probably retries a failing call forever.\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    if (model_path[0])
        unlink(model_path);
    _exit(1);
}

/* Logits from the memory source: the last token of the prompt, then one
 * row per decode step. VOCAB is the vocabulary size of stories260K. */
#define VOCAB 512
#define DECODE_STEPS 2
static const int32_t prompt[4] = {1, 403, 407, 261};
static const int32_t decoded[DECODE_STEPS] = {300, 42};
static float expected[1 + DECODE_STEPS][VOCAB];

static pp_options test_options(uint32_t flags) {
    pp_options o;
    memset(&o, 0, sizeof o);
    o.max_batch = 1;
    o.max_tokens = 8;
    o.flags = flags;
    /* 0 gives one cache slot per kind of tile part, so almost every use
     * of a part reads it. */
    o.tile_cache_bytes = 0;
    return o;
}

/* Runs step `first_step` onwards, where step 0 is the prompt and step i
 * the i-th decode token, writing the logits of step i to logits[i].
 * Returns the first status other than PP_OK. */
static pp_status run_steps(pp_context *ctx, int first_step,
                           float logits[][VOCAB]) {
    pp_status st = PP_OK;
    if (first_step == 0)
        st = pp_forward(ctx, prompt, 1, 4, 0, PP_LAST_LOGITS, logits[0]);
    for (int i = first_step > 1 ? first_step : 1; st == PP_OK && i <= DECODE_STEPS;
         i++)
        st = pp_forward(ctx, &decoded[i - 1], 1, 1, 3 + i, PP_LAST_LOGITS,
                        logits[i]);
    return st;
}

/* Builds a context on `source`, and the caller frees *arena. Returns the
 * status of pp_arena_size or pp_init. */
static pp_status open_context(const pp_source *source, uint32_t flags,
                              pp_context **ctx, void **arena) {
    const pp_options o = test_options(flags);
    size_t bytes = 0;
    *ctx = NULL;
    *arena = NULL;
    pp_status st = pp_arena_size(source, &o, &bytes);
    if (st != PP_OK)
        return st;
    *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    return pp_init(ctx, *arena, bytes, source, &o);
}

/* Converts the model, writes it to a file for the file sources, and
 * computes the reference logits from memory. */
static void real_model_converts(void) {
    have_model = fixture_load(&model, 0);
    if (!have_model)
        return;

    snprintf(model_path, sizeof model_path, "/tmp/pprt-faults-%d.ppm",
             (int)getpid());
    FILE *f = fopen(model_path, "wb");
    CHECKF(f != NULL, "cannot create %s", model_path);
    if (!f) {
        have_model = 0;
        return;
    }
    const int written = fwrite(model.bytes, 1, model.size, f) == model.size;
    const int closed = fclose(f) == 0;
    CHECKF(written && closed, "cannot write %s", model_path);
    have_model = written && closed;

    pp_context *ctx;
    void *arena;
    const pp_status st = open_context(&model.source, 0, &ctx, &arena);
    CHECKF(st == PP_OK, "memory source: %s", pp_status_string(st));
    if (st == PP_OK) {
        CHECKF(pp_info(ctx)->vocab_size == VOCAB, "vocabulary of %d tokens, "
               "expected %d", (int)pp_info(ctx)->vocab_size, VOCAB);
        if (pp_info(ctx)->vocab_size != VOCAB)
            have_model = 0;
        else
            CHECK(run_steps(ctx, 0, expected) == PP_OK);
    }
    free(arena);
}

/* Reads 100 bytes at offset 1000 through the pread source under `steps`. */
static pp_status read_range(const fault *steps, int n_steps, uint8_t *buffer) {
    pp_file_source file;
    char err[256];
    const int opened = pp_file_open_read(&file, model_path, 0.0, err, sizeof err) == 0;
    CHECKF(opened, "%s", err);
    if (!opened)
        return PP_ERR_IO;

    memset(buffer, 0xA5, 100);
    plan_set(&pread_plan, steps, n_steps);
    const pp_status st = file.source.read(file.source.user, 1000, buffer, 100);
    pp_file_close(&file);
    return st;
}

/* The port retries EINTR by itself, with no help from the runtime. */
static void pread_retries_eintr(void) {
    if (!have_model)
        return;
    static const fault steps[] = {FAULT_EINTR, FAULT_EINTR, FAULT_EINTR,
                                  FAULT_EINTR, FAULT_EINTR, FAULT_PASS};
    uint8_t buffer[100];
    const pp_status st = read_range(steps, 6, buffer);
    CHECKF(st == PP_OK, "status %s", pp_status_string(st));
    CHECK(memcmp(buffer, model.bytes + 1000, 100) == 0);
    CHECKF(pread_plan.calls == 6, "%ld pread calls", pread_plan.calls);
    plans_clear();
}

/* Short counts are continued at the right offset until the range is full. */
static void pread_completes_short_reads(void) {
    if (!have_model)
        return;
    static const struct {
        fault steps[MAX_STEPS];
        int n_steps;
        long calls;  /* expected pread calls, or 0 to skip the check */
    } cases[] = {
        {{FAULT_ONE}, 1, 100},
        {{FAULT_HALF}, 1, 0},
        {{FAULT_EINTR, FAULT_ONE}, 2, 200},
        {{FAULT_HALF, FAULT_EINTR, FAULT_ONE, FAULT_PASS}, 4, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t buffer[100];
        const pp_status st = read_range(cases[i].steps, cases[i].n_steps, buffer);
        CHECKF(st == PP_OK, "case %zu: status %s", i, pp_status_string(st));
        CHECKF(memcmp(buffer, model.bytes + 1000, 100) == 0,
               "case %zu: wrong bytes", i);
        CHECKF(pread_plan.calls > 1, "case %zu: %ld pread calls", i,
               pread_plan.calls);
        if (cases[i].calls)
            CHECKF(pread_plan.calls == cases[i].calls,
                   "case %zu: %ld pread calls, expected %ld", i,
                   pread_plan.calls, cases[i].calls);
    }
    plans_clear();
}

/* EIO and an early end of file fail the read, also after a partial read,
 * and return instead of retrying forever. */
static void pread_failures_return_io_error(void) {
    if (!have_model)
        return;
    static const struct {
        fault steps[MAX_STEPS];
        int n_steps;
    } cases[] = {
        {{FAULT_EIO}, 1},
        {{FAULT_HALF, FAULT_EIO}, 2},
        {{FAULT_EOF}, 1},
        {{FAULT_ONE, FAULT_EINTR, FAULT_EOF}, 3},
    };
    alarm(WATCHDOG_SECONDS);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t buffer[100];
        const pp_status st = read_range(cases[i].steps, cases[i].n_steps, buffer);
        CHECKF(st == PP_ERR_IO, "case %zu: status %s, expected %s", i,
               pp_status_string(st), pp_status_string(PP_ERR_IO));
    }
    alarm(0);
    plans_clear();
}

/* A forward pass whose reads meet EINTR or short counts gives bitwise the
 * logits of the memory source. In the first round the faults start before
 * pp_arena_size, and PP_VERIFY_WEIGHTS sends a checksum pass over the whole
 * file through them. In the second they start after pp_init, so only the
 * forward pass's reads meet them, behind the runtime's retries. */
static void faulty_reads_match_memory(void) {
    if (!have_model)
        return;
    static const struct {
        const char *name;
        fault steps[MAX_STEPS];
        int n_steps;
    } cases[] = {
        {"three EINTR before each read",
         {FAULT_EINTR, FAULT_EINTR, FAULT_EINTR, FAULT_PASS}, 4},
        {"EINTR on every other call", {FAULT_EINTR, FAULT_PASS}, 2},
        {"one byte per call", {FAULT_ONE}, 1},
        {"half the request per call", {FAULT_HALF}, 1},
        {"EINTR and short counts mixed",
         {FAULT_EINTR, FAULT_EINTR, FAULT_EINTR, FAULT_HALF, FAULT_EINTR,
          FAULT_ONE},
         6},
    };
    static const char *const rounds[] = {"from init", "after init"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            pp_file_source file;
            char err[256];
            const int opened =
                pp_file_open_read(&file, model_path, 0.0, err, sizeof err) == 0;
            CHECKF(opened, "%s", err);
            if (!opened)
                return;

            if (round == 0)
                plan_set(&pread_plan, cases[i].steps, cases[i].n_steps);
            pp_context *ctx;
            void *arena;
            pp_status st = open_context(&file.source, round == 0 ? PP_VERIFY_WEIGHTS : 0,
                                        &ctx, &arena);
            CHECKF(st == PP_OK, "%s, %s: init: %s", cases[i].name, rounds[round],
                   pp_status_string(st));
            if (st == PP_OK) {
                if (round == 1)
                    plan_set(&pread_plan, cases[i].steps, cases[i].n_steps);
                static float logits[1 + DECODE_STEPS][VOCAB];
                st = run_steps(ctx, 0, logits);
                CHECKF(st == PP_OK, "%s, %s: forward: %s", cases[i].name,
                       rounds[round], pp_status_string(st));
                CHECKF(memcmp(expected, logits, sizeof logits) == 0,
                       "%s, %s: logits differ from the memory source",
                       cases[i].name, rounds[round]);
            }
            CHECKF(pread_plan.injected > 100, "%s, %s: only %ld faults injected",
                   cases[i].name, rounds[round], pread_plan.injected);
            plans_clear();
            free(arena);
            pp_file_close(&file);
        }
    }
}

/* Fault plans for a decode step. Two of them read half a request before
 * the failure, so the read fails with part of its buffer filled. */
typedef struct step_failure {
    const char *name;
    fault steps[MAX_STEPS];
    int n_steps;
} step_failure;

static const step_failure step_failures[] = {
    {"EIO", {FAULT_EIO}, 1},
    {"half a read, then EIO", {FAULT_HALF, FAULT_EIO}, 2},
    {"early end of file", {FAULT_EOF}, 1},
    {"half a read, then early end of file", {FAULT_HALF, FAULT_EOF}, 2},
};

/*
 * Runs the prompt, then the first decode step with `failure` starting at
 * pread call `pass_first` of that step, then both decode steps without
 * faults. Returns the pread calls of the failing step, or -1 when the
 * context could not be built.
 */
static long fail_step_once(const step_failure *failure, long pass_first) {
    pp_file_source file;
    char err[256];
    const int opened = pp_file_open_read(&file, model_path, 0.0, err, sizeof err) == 0;
    CHECKF(opened, "%s", err);
    if (!opened)
        return -1;

    pp_context *ctx;
    void *arena;
    pp_status st = open_context(&file.source, 0, &ctx, &arena);
    CHECKF(st == PP_OK, "%s: init: %s", failure->name, pp_status_string(st));
    static float logits[1 + DECODE_STEPS][VOCAB];
    if (st == PP_OK)
        st = pp_forward(ctx, prompt, 1, 4, 0, PP_LAST_LOGITS, logits[0]);
    CHECKF(st == PP_OK, "%s: prompt: %s", failure->name, pp_status_string(st));
    if (st != PP_OK) {
        free(arena);
        pp_file_close(&file);
        return -1;
    }

    plan_set(&pread_plan, failure->steps, failure->n_steps);
    pread_plan.pass_first = pass_first;
    st = pp_forward(ctx, &decoded[0], 1, 1, 4, PP_LAST_LOGITS, logits[1]);
    const long calls = pread_plan.calls;
    CHECKF(st == PP_ERR_IO, "%s from call %ld: failing step: %s, expected %s",
           failure->name, pass_first, pp_status_string(st),
           pp_status_string(PP_ERR_IO));
    CHECKF(pread_plan.injected > 0, "%s from call %ld: no fault injected",
           failure->name, pass_first);
    plans_clear();

    st = run_steps(ctx, 1, logits);
    CHECKF(st == PP_OK, "%s from call %ld: retried steps: %s", failure->name,
           pass_first, pp_status_string(st));
    CHECKF(memcmp(expected[1], logits[1], sizeof expected[1]) == 0,
           "%s from call %ld: retried step differs from the memory source",
           failure->name, pass_first);
    CHECKF(memcmp(expected[2], logits[2], sizeof expected[2]) == 0,
           "%s from call %ld: next step differs from the memory source",
           failure->name, pass_first);
    free(arena);
    pp_file_close(&file);
    return calls;
}

/* A decode step whose reads fail returns PP_ERR_IO. Once reads work again
 * the same step gives the memory source's logits, so no partly read tile
 * stayed in the cache. The failure starts at up to 64 evenly spaced pread
 * calls of the step. The watchdog turns a hang into a failure. */
static void failed_step_recovers(void) {
    if (!have_model)
        return;

    /* Counts the pread calls of a decode step without faults, because the
     * failure can start at any of them. */
    pp_file_source file;
    char err[256];
    const int opened = pp_file_open_read(&file, model_path, 0.0, err, sizeof err) == 0;
    CHECKF(opened, "%s", err);
    if (!opened)
        return;
    pp_context *ctx;
    void *arena;
    pp_status st = open_context(&file.source, 0, &ctx, &arena);
    static float logits[1 + DECODE_STEPS][VOCAB];
    if (st == PP_OK)
        st = pp_forward(ctx, prompt, 1, 4, 0, PP_LAST_LOGITS, logits[0]);
    plans_clear();
    if (st == PP_OK)
        st = pp_forward(ctx, &decoded[0], 1, 1, 4, PP_LAST_LOGITS, logits[1]);
    const long step_calls = pread_plan.calls;
    CHECKF(st == PP_OK, "clean step: %s", pp_status_string(st));
    CHECKF(step_calls > 10, "a decode step made only %ld pread calls", step_calls);
    free(arena);
    pp_file_close(&file);
    if (st != PP_OK)
        return;

    const long stride = step_calls / 64 + 1;
    alarm(WATCHDOG_SECONDS);
    for (size_t i = 0; i < sizeof step_failures / sizeof *step_failures; i++)
        for (long first = 0; first < step_calls; first += stride)
            if (fail_step_once(&step_failures[i], first) < 0)
                break;
    alarm(0);
}

/* pp_arena_size and pp_init return PP_ERR_IO when reading the header
 * fails with EIO or an early end of file. */
static void init_reports_read_failures(void) {
    if (!have_model)
        return;
    static const fault eio[] = {FAULT_EIO}, eof[] = {FAULT_EOF};
    const fault *plans[] = {eio, eof};
    alarm(WATCHDOG_SECONDS);
    for (int i = 0; i < 2; i++) {
        pp_file_source file;
        char err[256];
        const int opened =
            pp_file_open_read(&file, model_path, 0.0, err, sizeof err) == 0;
        CHECKF(opened, "%s", err);
        if (!opened)
            break;

        const pp_options o = test_options(0);
        size_t bytes = 0;
        plan_set(&pread_plan, plans[i], 1);
        pp_status st = pp_arena_size(&file.source, &o, &bytes);
        CHECKF(st == PP_ERR_IO, "plan %d: pp_arena_size: %s", i,
               pp_status_string(st));

        plans_clear();
        st = pp_arena_size(&file.source, &o, &bytes);
        CHECKF(st == PP_OK, "plan %d: pp_arena_size: %s", i, pp_status_string(st));
        void *arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
        pp_context *ctx = NULL;
        plan_set(&pread_plan, plans[i], 1);
        st = pp_init(&ctx, arena, bytes, &file.source, &o);
        CHECKF(st == PP_ERR_IO, "plan %d: pp_init: %s", i, pp_status_string(st));
        plans_clear();
        free(arena);
        pp_file_close(&file);
    }
    alarm(0);
}

/* PP_FILE_MEMORY reads the whole file with read(): EINTR and short counts
 * still give the exact bytes, and EIO or an early end of file fail with a
 * message naming the cause. */
static void memory_mode_read_faults(void) {
    if (!have_model)
        return;
    static const fault retried[] = {FAULT_EINTR, FAULT_HALF, FAULT_EINTR,
                                    FAULT_EINTR, FAULT_EINTR, FAULT_PASS};
    pp_file_source file;
    char err[256] = "";
    plan_set(&read_plan, retried, 6);
    int opened = pp_file_open(&file, model_path, PP_FILE_MEMORY, err, sizeof err) == 0;
    CHECKF(opened, "%s", err);
    CHECKF(read_plan.injected >= 5, "only %ld faults injected", read_plan.injected);
    if (opened) {
        CHECK(file.source.size == model.size);
        CHECK(memcmp(file.source.data, model.bytes, model.size) == 0);
        pp_file_close(&file);
    }

    static const struct {
        fault steps[MAX_STEPS];
        int n_steps;
        const char *message;  /* NULL: the C library's text for EIO */
    } failures[] = {
        {{FAULT_EIO}, 1, NULL},
        {{FAULT_HALF, FAULT_EIO}, 2, NULL},
        {{FAULT_EOF}, 1, "unexpected end of file"},
        {{FAULT_ONE, FAULT_EOF}, 2, "unexpected end of file"},
    };
    alarm(WATCHDOG_SECONDS);
    for (size_t i = 0; i < sizeof failures / sizeof *failures; i++) {
        plan_set(&read_plan, failures[i].steps, failures[i].n_steps);
        err[0] = '\0';
        opened = pp_file_open(&file, model_path, PP_FILE_MEMORY, err, sizeof err) == 0;
        CHECKF(!opened, "case %zu: opened despite the fault", i);
        const char *message =
            failures[i].message ? failures[i].message : strerror(EIO);
        CHECKF(strstr(err, message) != NULL,
               "case %zu: message \"%s\" lacks \"%s\"", i, err, message);
        if (opened)
            pp_file_close(&file);
    }
    alarm(0);
    plans_clear();
}

/* Without --wrap=pread the faults never reach the port and every other
 * check would pass without testing anything. */
static void pread_is_wrapped(void) {
    if (!have_model)
        return;
    uint8_t buffer[100];
    (void)read_range(NULL, 0, buffer);
    CHECKF(pread_plan.calls > 0, "pread is not wrapped; link with "
                                 "-Wl,--wrap=pread -Wl,--wrap=read");
    plans_clear();
}

int main(void) {
    signal(SIGALRM, watchdog_fired);
    RUN(real_model_converts);
    RUN(pread_is_wrapped);
    RUN(pread_retries_eintr);
    RUN(pread_completes_short_reads);
    RUN(pread_failures_return_io_error);
    RUN(faulty_reads_match_memory);
    RUN(failed_step_recovers);
    RUN(init_reports_read_failures);
    RUN(memory_mode_read_faults);
    if (model_path[0])
        remove(model_path);
    fixture_free(&model);
    return check_summary("test_port_faults");
}
