/*
 * pprt synth: models of real shapes with seeded random weights.
 *
 * No model larger than stories260K can be obtained here, so speed and
 * memory-traffic benchmarks run on these. The weights are random (uniform,
 * scaled like a trained model's: about 0.02 standard deviation, norms 1),
 * so text and perplexity from them mean nothing; the file is marked
 * synthetic and every run on it says so. Each weight is a hash of (seed,
 * tensor, layer, row, column), so any block can be produced in any order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"

typedef struct shape {
    const char *name;
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
} shape;

/* Configurations of the public checkpoints these names refer to. */
static const shape shapes[] = {
    {"stories15M", 288, 768, 6, 6, 6, 32000, 256, 1},
    {"stories42M", 512, 1376, 8, 8, 8, 32000, 1024, 1},
    {"stories110M", 768, 2048, 12, 12, 12, 32000, 1024, 1},
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 0},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 0},
};

typedef struct synth_weights {
    uint64_t seed;
    float scale;
} synth_weights;

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void synth_block(void *user, int tensor, int layer, size_t row0,
                        size_t nrows, size_t col0, size_t ncols, float *out) {
    const synth_weights *w = user;
    const uint64_t base = mix(w->seed ^ mix(((uint64_t)tensor << 32) | (uint32_t)layer));
    for (size_t r = 0; r < nrows; r++) {
        const uint64_t row = mix(base ^ (uint64_t)(row0 + r));
        for (size_t c = 0; c < ncols; c++) {
            const uint64_t h = mix(row ^ ((uint64_t)(col0 + c) << 1));
            /* uniform in [-1, 1) times sqrt(3) * scale: standard deviation = scale */
            const float u = (float)(int64_t)h * (1.0f / 9223372036854775808.0f);
            out[r * ncols + c] = u * 1.7320508f * w->scale;
        }
    }
}

/* A llama2.c-format vocabulary: <unk>, BOS, EOS, the 256 byte tokens, then
 * printable pieces, so encoding and decoding work on any text. */
static uint8_t *synth_tokenizer(int32_t vocab, size_t *size) {
    const size_t cap = 16 + (size_t)vocab * 24;
    uint8_t *buf = malloc(cap), *p = buf + 4;
    if (!buf)
        return NULL;
    uint32_t max_len = 0;
    for (int32_t i = 0; i < vocab; i++) {
        char text[16];
        if (i == 0)
            strcpy(text, "<unk>");
        else if (i == 1)
            strcpy(text, "\n<s>\n");
        else if (i == 2)
            strcpy(text, "\n</s>\n");
        else if (i < 259)
            snprintf(text, sizeof text, "<0x%02X>", i - 3);
        else
            snprintf(text, sizeof text, " w%d", i - 259);
        const uint32_t len = (uint32_t)strlen(text);
        const float score = i < 259 ? 0.0f : -(float)(i - 259);
        memcpy(p, &score, 4);
        memcpy(p + 4, &len, 4);
        memcpy(p + 8, text, len);
        p += 8 + len;
        if (len > max_len)
            max_len = len;
    }
    memcpy(buf, &max_len, 4);
    *size = (size_t)(p - buf);
    return buf;
}

static const char *help =
    "usage: pprt synth --shape NAME [--layers N] [--seed S] [--tile T]\n"
    "                  [--group G] -o FILE\n"
    "  --shape NAME   stories15M | stories42M | stories110M | tinyllama-1.1b |\n"
    "                 llama2-7b (real configurations, random weights)\n"
    "  --layers N     keep only the first N layers (smaller file, same widths)\n"
    "  --seed S       weight seed (default 1)\n"
    "  --tile T       MLP channels per tile (default: by model size)\n"
    "  --group G      int8 values per scale (default 32)\n"
    "  --align BYTES  tile alignment (default 64)\n";

int pp_cmd_synth(int argc, char **argv) {
    const char *name = NULL, *output = NULL;
    long layers = 0;
    synth_weights weights = {1, 0.02f};
    pp_write_options o = {0, 0, 0, 1};
    char err[512];

    /* Every option takes a value, so options come in pairs. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--shape") == 0 && v) {
            name = v;
        } else if (strcmp(a, "-o") == 0 && v) {
            output = v;
        } else if (strcmp(a, "--layers") == 0) {
            layers = pp_arg_int(a, v, 1, 1024);
        } else if (strcmp(a, "--seed") == 0) {
            weights.seed = (uint64_t)pp_arg_int(a, v, 0, 0x7fffffffL);
        } else if (strcmp(a, "--tile") == 0) {
            o.tile = (int)pp_arg_int(a, v, 1, 1 << 18);
        } else if (strcmp(a, "--group") == 0) {
            o.group = (int)pp_arg_int(a, v, 1, 65536);
        } else if (strcmp(a, "--align") == 0) {
            o.alignment = (int)pp_arg_int(a, v, 64, 65536);
        } else {
            fputs(help, stderr);
            pp_die("unknown or incomplete option '%s' for synth", a);
        }
    }
    const shape *s = NULL;
    for (size_t i = 0; name && i < sizeof shapes / sizeof *shapes; i++)
        if (strcmp(name, shapes[i].name) == 0)
            s = &shapes[i];
    if (!s || !output) {
        fputs(help, stderr);
        pp_die(name ? "unknown --shape '%s'" : "synth needs --shape and -o",
               name ? name : "");
    }

    if (layers > s->n_layers)
        pp_die("invalid --layers %ld: %s has %d layers", layers, s->name,
               (int)s->n_layers);

    pp_weight_provider p;
    memset(&p, 0, sizeof p);
    p.dim = s->dim;
    p.hidden_dim = s->hidden_dim;
    p.n_layers = layers ? (int32_t)layers : s->n_layers;
    p.n_heads = s->n_heads;
    p.n_kv_heads = s->n_kv_heads;
    p.vocab_size = s->vocab_size;
    p.max_seq_len = s->seq_len;
    p.shared_classifier = s->shared_classifier;
    p.synthetic = 1;
    p.rope_theta = 10000.0f;
    p.norm_eps = 1e-5f;

    const size_t norm_count = (2 * (size_t)p.n_layers + 1) * (size_t)p.dim;
    float *norms = malloc(norm_count * sizeof(float));
    size_t tok_size;
    uint8_t *tok = synth_tokenizer(p.vocab_size, &tok_size);
    if (!norms || !tok)
        pp_die("out of memory");
    for (size_t i = 0; i < norm_count; i++)
        norms[i] = 1.0f;
    p.attn_norm = norms;
    p.mlp_norm = norms + (size_t)p.n_layers * p.dim;
    p.final_norm = norms + 2 * (size_t)p.n_layers * p.dim;
    p.block = synth_block;
    p.user = &weights;

    fprintf(stderr, "synth: %s with %d layers, random weights (seed %llu) -> %s\n",
            s->name, p.n_layers, (unsigned long long)weights.seed, output);
    if (pp_write_model(output, &p, tok, tok_size, &o, err, sizeof err) != 0)
        pp_die("%s", err);
    free(norms);
    free(tok);
    return 0;
}
