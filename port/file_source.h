/*
 * file_source.h - model files as pp_source on a hosted OS.
 */
#ifndef PP_FILE_SOURCE_H
#define PP_FILE_SOURCE_H

#include <stddef.h>

#include "pprt.h"

typedef enum pp_file_mode {
    PP_FILE_MEMORY,  /* read the whole file into a heap buffer */
    PP_FILE_MMAP,    /* map it read-only; pages load on first touch */
} pp_file_mode;

typedef struct pp_file_source {
    pp_source source;
    void *memory;     /* heap copy (PP_FILE_MEMORY) */
    void *map;        /* mapping (PP_FILE_MMAP) */
    size_t map_bytes;
} pp_file_source;

/* Opens `path`; returns 0, or -1 with a message naming the file in err. */
int pp_file_open(pp_file_source *file, const char *path, pp_file_mode mode,
                 char *err, size_t err_size);
void pp_file_close(pp_file_source *file);

#endif /* PP_FILE_SOURCE_H */
