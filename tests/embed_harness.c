/*
 * embed_harness.c - the Linux "board" for port/examples/embed.c.
 *
 * It writes the example's output to stdout with write(2), so no stdio
 * buffer is allocated, and it replaces the C library's allocator with
 * functions that abort: if anything in the example or in libpprt.a reaches
 * the heap, the program dies with SIGABRT and names the function on
 * stderr. With EMBED_HEAP_TRAP_TEST=1 in the environment it calls malloc
 * once before running the example, so tests/check_embed.sh can see that the
 * trap works.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed.h"

static void write_all(int fd, const char *text, size_t length) {
    while (length > 0) {
        const ssize_t n = write(fd, text, length);
        if (n <= 0)
            return;
        text += n;
        length -= (size_t)n;
    }
}

static _Noreturn void heap_used(const char *function) {
    const char *message = ": the heap was used; the example must not allocate\n";
    write_all(2, function, strlen(function));
    write_all(2, message, strlen(message));
    abort();
}

void *malloc(size_t size) {
    (void)size;
    heap_used("malloc");
}

void *calloc(size_t count, size_t size) {
    (void)count;
    (void)size;
    heap_used("calloc");
}

void *realloc(void *pointer, size_t size) {
    (void)pointer;
    (void)size;
    heap_used("realloc");
}

void *aligned_alloc(size_t alignment, size_t size) {
    (void)alignment;
    (void)size;
    heap_used("aligned_alloc");
}

int posix_memalign(void **pointer, size_t alignment, size_t size) {
    (void)pointer;
    (void)alignment;
    (void)size;
    heap_used("posix_memalign");
}

void free(void *pointer) {
    /* free(NULL) does nothing in any allocator, so it is not a heap use. */
    if (pointer)
        heap_used("free");
}

void embed_write(const char *text, size_t length) {
    write_all(1, text, length);
}

/* Keeps the test allocation from being optimized away. */
static void *volatile trap_test_pointer;

int main(void) {
    const char *trap_test = getenv("EMBED_HEAP_TRAP_TEST");
    if (trap_test && strcmp(trap_test, "1") == 0)
        trap_test_pointer = malloc(16);
    return embed_run();
}
