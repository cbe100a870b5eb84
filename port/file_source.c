/* Model files through read() into memory, through mmap(), or through
 * pread() on demand. */
#define _DEFAULT_SOURCE 1  /* madvise and MADV_HUGEPAGE on Linux */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file_source.h"

void pp_huge_pages(void *memory, size_t size) {
#ifdef MADV_HUGEPAGE
    /* Decoding streams through every kept tile for each token. On a Zen 4
     * VM, 4 KiB pages held a 1.2 GB model (synthetic TinyLlama-1.1B) to
     * 4.0 decode tokens/s and huge pages gave 14.1. Best effort: the call
     * fails harmlessly where huge pages are off. */
    madvise(memory, size, MADV_HUGEPAGE);
#else
    (void)memory;
    (void)size;
#endif
}

int pp_file_open(pp_file_source *file, const char *path, pp_file_mode mode,
                 char *err, size_t err_size) {
    if (mode == PP_FILE_READ)
        return pp_file_open_read(file, path, 0.0, err, err_size);
    memset(file, 0, sizeof *file);
    const int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    const size_t size = (size_t)st.st_size;

    if (mode == PP_FILE_MMAP && size > 0) {
        void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED) {
            snprintf(err, err_size, "cannot mmap %s: %s", path, strerror(errno));
            return -1;
        }
        /* Pruned tiles are skipped, so kernel readahead would mostly pull
         * in tiles that are never used. */
        posix_madvise(map, size, POSIX_MADV_RANDOM);
        file->map = map;
        file->map_bytes = size;
        file->source.data = map;
        file->source.size = size;
        return 0;
    }

    /* Aligned at least as the file's 64-byte matrix boundaries (and to
     * 2 MiB, for huge pages). */
    void *buffer = NULL;
    if (posix_memalign(&buffer, 2u << 20, size ? size : 1) != 0) {
        snprintf(err, err_size, "out of memory reading %s (%zu bytes)", path, size);
        close(fd);
        return -1;
    }
    pp_huge_pages(buffer, size);

    size_t done = 0;
    while (done < size) {
        const ssize_t n = read(fd, (char *)buffer + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, err_size, "cannot read %s: %s", path,
                     n < 0 ? strerror(errno) : "unexpected end of file");
            free(buffer);
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    close(fd);
    file->memory = buffer;
    file->source.data = buffer;
    file->source.size = size;
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_until(double t) {
    for (;;) {
        const double left = t - now_seconds();
        if (left <= 0)
            return;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static pp_status read_file(void *user, uint64_t offset, void *dst, size_t length) {
    pp_file_source *file = user;
    size_t done = 0;
    while (done < length) {
        const ssize_t n = pread(file->fd, (char *)dst + done, length - done,
                                (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return PP_ERR_IO;
        done += (size_t)n;
    }

    if (file->flash_mbps > 0) {
        pthread_mutex_lock(&file->lock);
        const double start = file->busy_until > now_seconds() ? file->busy_until
                                                               : now_seconds();
        file->busy_until = start + (double)length / (file->flash_mbps * 1e6);
        const double until = file->busy_until;
        file->reads++;
        pthread_mutex_unlock(&file->lock);
        sleep_until(until);
    } else {
        __atomic_fetch_add(&file->reads, 1, __ATOMIC_RELAXED);
    }
    return PP_OK;
}

int pp_file_open_read(pp_file_source *file, const char *path,
                      double flash_mbps, char *err, size_t err_size) {
    memset(file, 0, sizeof *file);
    file->fd = open(path, O_RDONLY);
    if (file->fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(file->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s is not a regular file", path);
        close(file->fd);
        return -1;
    }
    pthread_mutex_init(&file->lock, NULL);
    file->flash_mbps = flash_mbps;
    file->source.size = (uint64_t)st.st_size;
    file->source.read = read_file;
    file->source.user = file;
    return 0;
}

void pp_file_close(pp_file_source *file) {
    if (file->map)
        munmap(file->map, file->map_bytes);
    free(file->memory);
    if (file->source.read == read_file) {
        close(file->fd);
        pthread_mutex_destroy(&file->lock);
    }
    memset(file, 0, sizeof *file);
}
