#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

char *pp_read_text_file(const char *path, size_t *size, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        const size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        char *bigger = realloc(buf, cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
        }
        buf = bigger;
    }
    const int failed = ferror(f);
    fclose(f);
    if (!buf || failed) {
        free(buf);
        snprintf(err, err_size, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    *size = n;
    return buf;
}

static int is_space(unsigned char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
           ch == '\f' || (ch >= 0x1c && ch <= 0x1f);
}

static int append(pp_token_stream *s, size_t *cap, const int32_t *ids, size_t n) {
    if (s->n + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < s->n + n)
            c *= 2;
        int32_t *grown = realloc(s->ids, c * sizeof(int32_t));
        if (!grown)
            return -1;
        s->ids = grown;
        *cap = c;
    }
    memcpy(s->ids + s->n, ids, n * sizeof(int32_t));
    s->n += n;
    return 0;
}

int pp_tokenize_stories(pp_context *ctx, const char *text, size_t size,
                        size_t max_tokens, pp_token_stream *stream, char *err,
                        size_t err_size) {
    size_t cap = 0, story_cap = 0;
    char *story = NULL;
    int32_t *ids = NULL;
    int rc = -1;

    memset(stream, 0, sizeof *stream);
    for (size_t begin = 0; begin < size;) {
        const char *sep = NULL;
        for (size_t i = begin; i + 1 < size; i++)
            if (text[i] == '\n' && text[i + 1] == '\n') {
                sep = text + i;
                break;
            }
        size_t end = sep ? (size_t)(sep - text) : size;
        const size_t next = sep ? end + 2 : size;

        while (begin < end && is_space((unsigned char)text[begin]))
            begin++;
        while (end > begin && is_space((unsigned char)text[end - 1]))
            end--;
        const size_t len = end - begin;
        if (len > 0) {
            if (len + 1 > story_cap) {
                story_cap = 2 * len + 1;
                free(story);
                free(ids);
                story = malloc(story_cap);
                ids = malloc((story_cap + 3) * sizeof(int32_t));
                if (!story || !ids) {
                    snprintf(err, err_size, "out of memory");
                    goto done;
                }
            }
            for (size_t i = 0; i < len; i++)
                story[i] = text[begin + i] == '\n' ? ' ' : text[begin + i];
            int32_t n = 0;
            pp_status st = pp_tokenize(ctx, story, len, 1, ids,
                                       (int32_t)(story_cap + 3), &n);
            if (st != PP_OK) {
                snprintf(err, err_size, "tokenizing a story failed: %s",
                         pp_status_string(st));
                goto done;
            }
            if (append(stream, &cap, ids, (size_t)n) != 0) {
                snprintf(err, err_size, "out of memory");
                goto done;
            }
            if (max_tokens && stream->n >= max_tokens)
                break;
        }
        begin = next;
    }
    rc = 0;

done:
    free(story);
    free(ids);
    if (rc != 0) {
        free(stream->ids);
        memset(stream, 0, sizeof *stream);
    }
    return rc;
}

size_t pp_stream_batches(const pp_token_stream *s, int S, int B) {
    if (s->n < 1)
        return 0;
    /* Window i needs stream[i*S + S] as its last target. */
    const size_t windows = (s->n - 1) / (size_t)S;
    return windows / (size_t)B;
}

void pp_stream_batch(const pp_token_stream *s, int S, int B, size_t index,
                     int32_t *out) {
    for (int b = 0; b < B; b++) {
        const size_t w = index * (size_t)B + (size_t)b;
        memcpy(out + (size_t)b * (S + 1), s->ids + w * (size_t)S,
               (size_t)(S + 1) * sizeof(int32_t));
    }
}
