/* pprt convert: llama2.c checkpoint + tokenizer, or a GGUF file -> pprt
 * model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "emit_c.h"
#include "file_source.h"
#include "gguf.h"
#include "text.h"

static const char *help =
    "usage: pprt convert --llama2c MODEL.bin --tokenizer TOK.bin -o OUT.ppm\n"
    "       pprt convert --gguf MODEL.gguf -o OUT.ppm\n"
    "                    [--tile T] [--group G] [--align BYTES] [--emit-c FILE.c]\n"
    "  --llama2c FILE    llama2.c checkpoint: legacy float32 or version-2 int8\n"
    "  --tokenizer FILE  llama2.c tokenizer.bin\n"
    "  --gguf FILE       GGUF file (version 2 or 3) of the llama architecture\n"
    "                    with F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K tensors;\n"
    "                    the tokenizer comes from its metadata\n"
    "  -o FILE           output pprt model\n"
    "  --tile T          MLP channels per tile (default: 4 up to dim 256, 16\n"
    "                    below dim 768, else 32)\n"
    "  --group G         int8 values per scale (default 32)\n"
    "  --align BYTES     tile alignment, a power of two >= 64 (default 64; 4096\n"
    "                    suits mmap and flash page reads)\n"
    "  --emit-c FILE.c   also write the model as C source defining\n"
    "                    `const unsigned char pp_model[]` (64-byte aligned) and\n"
    "                    `const size_t pp_model_size`, for firmware that links\n"
    "                    the weights\n";

/* Converts a llama2.c checkpoint and tokenizer.bin; exits on error. */
static void convert_llama2c(const char *input, const char *tokenizer,
                            const char *output, const pp_write_options *options) {
    pp_write_options o = *options;
    char err[512];

    size_t model_size, tok_size;
    char *model_bytes = pp_read_text_file(input, &model_size, err, sizeof err);
    if (!model_bytes)
        pp_die("%s", err);
    char *tok_bytes = pp_read_text_file(tokenizer, &tok_size, err, sizeof err);
    if (!tok_bytes)
        pp_die("%s", err);

    pp_llama2c m;
    if (pp_llama2c_parse((const uint8_t *)model_bytes, model_size, &m, err,
                         sizeof err) != 0)
        pp_die("%s: %s", input, err);
    free(model_bytes);

    const pp_weight_provider *p = &m.provider;
    fprintf(stderr,
            "convert: %s (llama2.c %s): dim %d, hidden %d, %d layers, %d heads, "
            "%d kv heads, vocab %d, %s classifier\n",
            input, m.version == 2 ? "int8 v2" : "float32", p->dim, p->hidden_dim,
            p->n_layers, p->n_heads, p->n_kv_heads, p->vocab_size,
            p->shared_classifier ? "tied" : "separate");
    if (pp_write_model(output, p, (const uint8_t *)tok_bytes, tok_size, &o, err,
                       sizeof err) != 0)
        pp_die("%s", err);
    pp_llama2c_free(&m);
    free(tok_bytes);
}

/* Converts a GGUF file of the llama architecture; exits on error. */
static void convert_gguf(const char *input, const char *output,
                         const pp_write_options *options) {
    char err[512];
    pp_file_source file;
    if (pp_file_open(&file, input, PP_FILE_MMAP, err, sizeof err) != 0)
        pp_die("%s", err);

    pp_gguf_llama m;
    if (pp_gguf_llama_open(file.source.data, (size_t)file.source.size, &m, err,
                           sizeof err) != 0)
        pp_die("%s: %s", input, err);
    for (const char *line = m.warnings; *line;) {
        const char *end = strchr(line, '\n');
        fprintf(stderr, "convert: warning: %.*s\n", (int)(end - line), line);
        line = end + 1;
    }

    const pp_weight_provider *p = &m.provider;
    fprintf(stderr,
            "convert: %s (GGUF v%u, %s tokenizer): dim %d, hidden %d, %d layers, "
            "%d heads, %d kv heads, vocab %d, %s classifier, BOS %d, EOS %d\n",
            input, m.file.version, p->tokenizer_bpe ? "byte-level BPE" : "SentencePiece",
            p->dim, p->hidden_dim, p->n_layers, p->n_heads, p->n_kv_heads,
            p->vocab_size, p->shared_classifier ? "tied" : "separate",
            p->bos_id, p->eos_id);
    if (pp_write_model(output, p, m.tokenizer, m.tokenizer_size, options, err,
                       sizeof err) != 0)
        pp_die("%s", err);
    pp_gguf_llama_free(&m);
    pp_file_close(&file);
}

int pp_cmd_convert(int argc, char **argv) {
    const char *input = NULL, *tokenizer = NULL, *output = NULL;
    const char *gguf = NULL;
    const char *emit_c = NULL;
    pp_write_options o = {0, 0, 0, 1};
    char err[512];

    /* Every option takes a value, so options come in pairs. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--llama2c") == 0 && v) {
            input = v;
        } else if (strcmp(a, "--gguf") == 0 && v) {
            gguf = v;
        } else if (strcmp(a, "--tokenizer") == 0 && v) {
            tokenizer = v;
        } else if (strcmp(a, "-o") == 0 && v) {
            output = v;
        } else if (strcmp(a, "--emit-c") == 0 && v) {
            emit_c = v;
        } else if (strcmp(a, "--tile") == 0) {
            o.tile = (int)pp_arg_int(a, v, 1, 1 << 18);
        } else if (strcmp(a, "--group") == 0) {
            o.group = (int)pp_arg_int(a, v, 1, 65536);
        } else if (strcmp(a, "--align") == 0) {
            o.alignment = (int)pp_arg_int(a, v, 64, 65536);
        } else {
            fputs(help, stderr);
            pp_die("unknown or incomplete option '%s' for convert", a);
        }
    }
    if (gguf && (input || tokenizer)) {
        fputs(help, stderr);
        pp_die("--gguf replaces --llama2c and --tokenizer: the GGUF file "
               "carries its tokenizer");
    }
    if (!output || (!gguf && (!input || !tokenizer))) {
        fputs(help, stderr);
        pp_die("convert needs --llama2c and --tokenizer, or --gguf, and -o");
    }

    if (gguf)
        convert_gguf(gguf, output, &o);
    else
        convert_llama2c(input, tokenizer, output, &o);

    /* Load what was written, as a user would, before reporting success. */
    pp_session s;
    pp_session_open(&s, output, "mem", 1, 1, 1, 1);
    fprintf(stderr, "convert: wrote %s: tile %d channels, group %d, %llu weight bytes\n",
            output, s.info.tile, s.info.group,
            (unsigned long long)s.info.weight_bytes);
    pp_session_close(&s);

    if (emit_c) {
        size_t written_size;
        char *written = pp_read_text_file(output, &written_size, err, sizeof err);
        if (!written)
            pp_die("%s", err);
        if (pp_write_c_array(emit_c, "pp_model", (const uint8_t *)written,
                             written_size, output, err, sizeof err) != 0)
            pp_die("%s", err);
        free(written);
        fprintf(stderr, "convert: wrote %s: %zu bytes as pp_model[]\n", emit_c,
                written_size);
    }
    return 0;
}
