/* pprt convert: llama2.c checkpoint + tokenizer -> pprt model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "text.h"

static const char *help =
    "usage: pprt convert --llama2c MODEL.bin --tokenizer TOK.bin -o OUT.ppm\n"
    "                    [--tile T] [--group G] [--align BYTES]\n"
    "  --llama2c FILE    llama2.c checkpoint: legacy float32 or version-2 int8\n"
    "  --tokenizer FILE  llama2.c tokenizer.bin\n"
    "  -o FILE           output pprt model\n"
    "  --tile T          MLP channels per tile (default: 4 up to dim 256, 16 up\n"
    "                    to dim 1024, else 32)\n"
    "  --group G         int8 values per scale (default 32)\n"
    "  --align BYTES     tile alignment, a power of two >= 64 (default 64; 4096\n"
    "                    suits mmap and flash page reads)\n";

int pp_cmd_convert(int argc, char **argv) {
    const char *input = NULL, *tokenizer = NULL, *output = NULL;
    pp_write_options o = {0, 0, 0, 1};
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--llama2c") == 0 && v) {
            input = v;
        } else if (strcmp(a, "--tokenizer") == 0 && v) {
            tokenizer = v;
        } else if (strcmp(a, "-o") == 0 && v) {
            output = v;
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
        i++;
    }
    if (!input || !tokenizer || !output) {
        fputs(help, stderr);
        pp_die("convert needs --llama2c, --tokenizer and -o");
    }

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

    /* Load what was written, as a user would, before reporting success. */
    pp_session s;
    pp_session_open(&s, output, "mem", 1, 1, 1, 1);
    fprintf(stderr, "convert: wrote %s: tile %d channels, group %d, %llu weight bytes\n",
            output, s.info.tile, s.info.group,
            (unsigned long long)s.info.weight_bytes);
    pp_session_close(&s);
    return 0;
}
