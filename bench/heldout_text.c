/*
 * heldout_text.c - writes the part of an evaluation text that the first N
 * tokens of its token stream do not reach, for tuning on text disjoint
 * from the evaluated windows.
 *
 * The stream is the evaluation protocol's (tools/text.h): stories split at
 * blank lines, each BOS followed by its tokens. The output starts at the
 * first story that begins at or after stream token N, so no window of the
 * first N / (B * S) batches overlaps it.
 *
 * Usage: heldout_text MODEL.ppm TEXT N > heldout.txt
 * Built by bench/ablation.sh against build/libpprt.a and the tools' objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "text.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: heldout_text MODEL.ppm TEXT TOKENS > OUT\n");
        return 2;
    }
    char *end;
    const unsigned long long skip = strtoull(argv[3], &end, 10);
    if (*end || end == argv[3]) {
        fprintf(stderr, "heldout_text: invalid token count '%s'\n", argv[3]);
        return 2;
    }

    pp_session s;
    pp_session_open(&s, argv[1], "mem", 1, 1, 8, 0);
    char err[256];
    size_t size;
    char *text = pp_read_text_file(argv[2], &size, err, sizeof err);
    if (!text) {
        fprintf(stderr, "heldout_text: %s\n", err);
        return 1;
    }

    /* Count each story's tokens with the protocol's own tokenizer call. */
    size_t begin = 0, counted = 0;
    while (begin < size && counted < skip) {
        const char *separator = NULL;
        for (size_t i = begin; i + 1 < size; i++)
            if (text[i] == '\n' && text[i + 1] == '\n') {
                separator = text + i;
                break;
            }
        const size_t story_end = separator ? (size_t)(separator - text) : size;
        pp_token_stream story;
        if (pp_tokenize_stories(s.ctx, text + begin, story_end - begin, 0, &story,
                                err, sizeof err) != 0) {
            fprintf(stderr, "heldout_text: %s\n", err);
            return 1;
        }
        counted += story.n;
        free(story.ids);
        begin = separator ? story_end + 2 : size;
    }
    if (counted < skip) {
        fprintf(stderr, "heldout_text: %s has only %zu tokens, fewer than %llu\n",
                argv[2], counted, skip);
        return 1;
    }

    fwrite(text + begin, 1, size - begin, stdout);
    fprintf(stderr, "heldout_text: skipped %zu stream tokens (%zu bytes of %zu)\n",
            counted, begin, size);
    free(text);
    pp_session_close(&s);
    return 0;
}
