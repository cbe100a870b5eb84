/*
 * embed.c - pprt as firmware runs it: the model is a const array linked
 * into the binary, every buffer is static, and nothing allocates, prints
 * through stdio or exits.
 *
 * The model array comes from
 *
 *     pprt convert --llama2c MODEL.bin --tokenizer TOK.bin -o MODEL.ppm \
 *                  --emit-c model.c
 *
 * and the program is this file, model.c, a board file that defines
 * embed_write() and calls embed_run(), libpprt.a and the C library's libm.
 * On Linux, tests/embed_harness.c is that board file (`make test` builds
 * and runs it); `make firmware` compiles this file for Cortex-M7.
 *
 * The sizes below are compile-time constants, as a firmware image needs
 * them; override them with -D. EMBED_MEMORY_BYTES must hold what
 * pp_arena_size() reports for this model and these options plus the logits,
 * and embed_run() stops with a message naming that size when it does not.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "embed.h"
#include "pprt.h"

/* Static memory for the arena and the logits. stories260K needs about
 * 250 KiB with the options below; the example prints the exact figure. */
#ifndef EMBED_MEMORY_BYTES
#define EMBED_MEMORY_BYTES (384 * 1024)
#endif

/* KV cache positions: the prompt plus the generated tokens. */
#ifndef EMBED_MAX_CONTEXT
#define EMBED_MAX_CONTEXT 64
#endif

/* Tokens of the prompt, which runs as one forward call. */
#ifndef EMBED_MAX_PROMPT_TOKENS
#define EMBED_MAX_PROMPT_TOKENS 16
#endif

/* A string literal: its size sets the token buffer. */
#ifndef EMBED_PROMPT
#define EMBED_PROMPT "Once upon a time"
#endif

#ifndef EMBED_GENERATE
#define EMBED_GENERATE 24
#endif

/* The model, from `pprt convert --emit-c`. */
extern const unsigned char pp_model[];
extern const size_t pp_model_size;

/* The arena first, then the logits. pp_init needs a 16-byte aligned arena;
 * 64 keeps its buffers on cache lines. */
static _Alignas(64) unsigned char memory[EMBED_MEMORY_BYTES];

/* pp_tokenize uses its output as working space: one id per prompt byte plus
 * a leading space and BOS. */
static int32_t tokens[sizeof EMBED_PROMPT + 2 + EMBED_GENERATE];

static void write_text(const char *text) {
    embed_write(text, strlen(text));
}

static void write_size(size_t value) {
    char digits[24];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n] = (char)('0' + value % 10);
        value /= 10;
        n++;
    } while (value > 0);
    embed_write(digits + sizeof digits - n, n);
}

static int fail(const char *description, pp_status status) {
    write_text("embed: ");
    write_text(description);
    write_text(": ");
    write_text(pp_status_string(status));
    write_text("\n");
    return 1;
}

int embed_run(void) {
    const pp_source source = {pp_model, pp_model_size, NULL, NULL};
    pp_options options;
    memset(&options, 0, sizeof options);
    options.max_batch = 1;
    options.max_tokens = EMBED_MAX_PROMPT_TOKENS;
    options.max_context = EMBED_MAX_CONTEXT;
    /* Dense decoding keeps no pruning history; one slot is the minimum. */
    options.history_len = 1;

    /* Check the static memory against what this model needs. */
    pp_model_info info;
    pp_status st = pp_model_probe(&source, &info);
    if (st != PP_OK)
        return fail("pp_model is not a valid pprt model", st);
    size_t arena_bytes;
    st = pp_arena_size(&source, &options, &arena_bytes);
    if (st != PP_OK)
        return fail("cannot size the arena for pp_model", st);
    arena_bytes = (arena_bytes + 63) / 64 * 64;
    const size_t needed = arena_bytes + (size_t)info.vocab_size * sizeof(float);
    if (needed > sizeof memory) {
        write_text("embed: the static memory is too small: the model needs ");
        write_size(needed);
        write_text(" bytes, EMBED_MEMORY_BYTES is ");
        write_size(sizeof memory);
        write_text("; rebuild with -DEMBED_MEMORY_BYTES=");
        write_size(needed);
        write_text("\n");
        return 1;
    }
    float *logits = (float *)(void *)(memory + arena_bytes);

    pp_context *context;
    st = pp_init(&context, memory, arena_bytes, &source, &options);
    if (st != PP_OK)
        return fail("cannot load pp_model", st);

    /* Prefill: the whole prompt in one call, logits of its last token. */
    const char *prompt = EMBED_PROMPT;
    int32_t n_tokens;
    st = pp_tokenize(context, prompt, strlen(prompt), 1, tokens,
                     (int32_t)(sizeof tokens / sizeof tokens[0]), &n_tokens);
    if (st != PP_OK)
        return fail("cannot tokenize the prompt", st);
    if (n_tokens > EMBED_MAX_PROMPT_TOKENS ||
        n_tokens + EMBED_GENERATE > EMBED_MAX_CONTEXT)
        return fail("the prompt does not fit EMBED_MAX_PROMPT_TOKENS and "
                    "EMBED_MAX_CONTEXT", PP_ERR_CAPACITY);
    st = pp_forward(context, tokens, 1, n_tokens, 0, PP_LAST_LOGITS, logits);
    if (st != PP_OK)
        return fail("prefill failed", st);
    write_text(prompt);

    /* Decode: greedy, one token per call, until EOS or EMBED_GENERATE. */
    pp_sampler sampler;
    pp_sampler_init(&sampler, 0.0f, 1.0f, 0);
    for (int generated = 0; generated < EMBED_GENERATE; generated++) {
        const int32_t next = pp_sample(&sampler, logits, info.vocab_size, NULL);
        if (next < 0 || next == info.eos_id || next == info.bos_id)
            break;
        size_t length;
        const char *piece = pp_token_text(context, tokens[n_tokens - 1], next,
                                          &length);
        if (piece)
            embed_write(piece, length);
        tokens[n_tokens++] = next;
        if (generated + 1 == EMBED_GENERATE)
            break;
        st = pp_forward(context, &tokens[n_tokens - 1], 1, 1, n_tokens - 1,
                        PP_LAST_LOGITS, logits);
        if (st != PP_OK) {
            write_text("\n");
            return fail("decoding failed", st);
        }
    }
    write_text("\n");

    write_text("memory: ");
    write_size(needed);
    write_text(" of ");
    write_size(sizeof memory);
    write_text(" bytes (arena ");
    write_size(pp_arena_used(context));
    write_text("); kernels: ");
    write_text(pp_isa(context));
    write_text("\n");
    return 0;
}
