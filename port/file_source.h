/*
 * file_source.h - model files as pp_source on a hosted OS.
 */
#ifndef PP_FILE_SOURCE_H
#define PP_FILE_SOURCE_H

#include <stddef.h>

#include "pprt.h"

#include <pthread.h>

typedef enum pp_file_mode {
    PP_FILE_MEMORY,  /* read the whole file into a heap buffer */
    PP_FILE_MMAP,    /* map it read-only; pages load on first touch */
    PP_FILE_READ,    /* pread on demand into the runtime's tile cache */
} pp_file_mode;

typedef struct pp_file_source {
    pp_source source;
    void *memory;     /* heap copy (PP_FILE_MEMORY) */
    void *map;        /* mapping (PP_FILE_MMAP) */
    size_t map_bytes;
    int fd;           /* PP_FILE_READ */
    double flash_mbps;      /* > 0: throttle reads to this many MB/s */
    double busy_until;      /* throttle: when the simulated device is free */
    pthread_mutex_t lock;   /* serializes the throttle's device clock */
    uint64_t reads;         /* read calls served */
} pp_file_source;

/*
 * Opens `path`; returns 0, or -1 with a message naming the file in err.
 * PP_FILE_READ reads through source.read (pread, retried on EINTR and
 * short reads). With flash_mbps > 0 each read also waits as long as a
 * device of that bandwidth would take, reads queueing behind each other as
 * on one bus, so flash behaviour can be measured on a machine with fast
 * storage; a real device needs no throttle. flash_mbps applies to
 * PP_FILE_READ only.
 */
int pp_file_open(pp_file_source *file, const char *path, pp_file_mode mode,
                 char *err, size_t err_size);
int pp_file_open_read(pp_file_source *file, const char *path,
                      double flash_mbps, char *err, size_t err_size);
void pp_file_close(pp_file_source *file);

/* Asks the OS to back `memory` (2 MiB aligned, not yet touched) with huge
 * pages, where it supports that; a hint, so it cannot fail. */
void pp_huge_pages(void *memory, size_t size);

#endif /* PP_FILE_SOURCE_H */
