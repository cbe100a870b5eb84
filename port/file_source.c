/* Model files through read() into memory or through mmap(). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_source.h"

int pp_file_open(pp_file_source *file, const char *path, pp_file_mode mode,
                 char *err, size_t err_size) {
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
        file->map = map;
        file->map_bytes = size;
        file->source.data = map;
        file->source.size = size;
        return 0;
    }

    /* 64-byte aligned, so int8 rows and float scales are as aligned in
     * memory as they are in the file. */
    void *buffer = NULL;
    if (posix_memalign(&buffer, 64, size ? size : 1) != 0) {
        snprintf(err, err_size, "out of memory reading %s (%zu bytes)", path, size);
        close(fd);
        return -1;
    }
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

void pp_file_close(pp_file_source *file) {
    if (file->map)
        munmap(file->map, file->map_bytes);
    free(file->memory);
    memset(file, 0, sizeof *file);
}
