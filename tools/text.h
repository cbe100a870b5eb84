/*
 * text.h - turning evaluation text into the token stream and windows of the
 * evaluation protocol.
 *
 * Stories are split at every "\n\n" (a line of spaces does not split),
 * stripped of surrounding whitespace, dropped when empty, and their inner
 * newlines become spaces. The stream is, per story, BOS then the story's
 * tokens. Window i has inputs stream[i*S, i*S+S) and targets shifted by
 * one; consecutive windows form batches of B.
 */
#ifndef PP_TEXT_H
#define PP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "pprt.h"

typedef struct pp_token_stream {
    int32_t *ids;
    size_t n;
} pp_token_stream;

/* Reads a whole file; returns NULL with a message in err. */
char *pp_read_text_file(const char *path, size_t *size, char *err, size_t err_size);

/*
 * Tokenizes `text` by the story rules above into `stream` (malloc'd; free
 * ids). Stops once max_tokens are collected (0: no limit).
 */
int pp_tokenize_stories(pp_context *ctx, const char *text, size_t size,
                        size_t max_tokens, pp_token_stream *stream, char *err,
                        size_t err_size);

/* Number of complete batches of B windows of S tokens plus a target. */
size_t pp_stream_batches(const pp_token_stream *stream, int S, int B);

/* Copies batch `index` as B rows of S + 1 tokens (inputs, then the last
 * target) into out[B][S + 1]. */
void pp_stream_batch(const pp_token_stream *stream, int S, int B, size_t index,
                     int32_t *out);

#endif /* PP_TEXT_H */
