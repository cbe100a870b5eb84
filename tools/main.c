/*
 * main.c - the `pprt` command: convert, generate, perplexity, info.
 *
 * Flags follow llama.cpp's names where one exists (-m, -p, -n, -f, -t,
 * --ctx, --temp, --top-p, --seed). Errors name the file or value and what
 * to do; long work prints progress on stderr; --json prints one object on
 * stdout.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "file_source.h"

/* ---- Commands ------------------------------------------------------------- */

static void usage(void) {
    fputs("usage: pprt COMMAND [options]\n"
          "commands:\n"
          "  convert     write a pprt model from a llama2.c checkpoint\n"
          "  generate    generate text from a prompt\n"
          "  perplexity  measure perplexity on a text file\n"
          "  synth       write a model of a real shape with random weights\n"
          "  bench       measure prefill and decode speed and bytes per token\n"
          "  info        print a model's configuration\n"
          "`pprt COMMAND --help` lists a command's options.\n",
          stderr);
}

static int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    int verify = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--verify") == 0) {
            verify = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: pprt info -m MODEL.ppm [--verify]\n"
                 "  prints the model's configuration as one JSON object\n"
                 "  --verify   also checks the CRC-32 of the weights (reads the "
                 "whole file)");
            return 0;
        } else {
            pp_die("unknown option '%s' for info; usage: pprt info -m MODEL.ppm "
                   "[--verify]",
                   argv[i]);
        }
    }
    if (!model)
        pp_die("usage: pprt info -m MODEL.ppm [--verify]");
    char err[512];
    pp_file_source f;
    if (pp_file_open(&f, model, PP_FILE_MMAP, err, sizeof err) != 0)
        pp_die("%s", err);
    pp_model_info info;
    pp_status st = verify ? pp_model_verify(&f.source, &info)
                          : pp_model_probe(&f.source, &info);
    if (st != PP_OK)
        pp_die("%s: %s", model, pp_model_error(&f.source, st, err, sizeof err));
    printf("{\"dim\": %d, \"hidden_dim\": %d, \"n_layers\": %d, \"n_heads\": %d, "
           "\"n_kv_heads\": %d, \"vocab_size\": %d, \"max_seq_len\": %d, "
           "\"tile\": %d, \"group\": %d, \"alignment\": %d, "
           "\"shared_classifier\": %s, \"synthetic\": %s, \"weight_bytes\": %llu}\n",
           info.dim, info.hidden_dim, info.n_layers, info.n_heads, info.n_kv_heads,
           info.vocab_size, info.max_seq_len, info.tile, info.group, info.alignment,
           info.shared_classifier ? "true" : "false",
           info.synthetic ? "true" : "false",
           (unsigned long long)info.weight_bytes);
    pp_file_close(&f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage();
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "convert") == 0)
        return pp_cmd_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "generate") == 0)
        return pp_cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "perplexity") == 0)
        return pp_cmd_perplexity(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0)
        return pp_cmd_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return pp_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 1, argv + 1);
    fprintf(stderr, "pprt: unknown command '%s'\n", cmd);
    usage();
    return 1;
}
