#include <string.h>

#include "arena.h"

void pp_arena_init(pp_arena *arena, void *base, size_t capacity) {
    arena->base = base;
    arena->capacity = base ? capacity : SIZE_MAX;
    arena->used = 0;
    arena->failed = 0;
}

void *pp_arena_alloc(pp_arena *arena, size_t count, size_t size, size_t align) {
    if (arena->failed)
        return NULL;

    if (size != 0 && count > SIZE_MAX / size) {
        arena->failed = 1;
        return NULL;
    }
    const size_t bytes = count * size;
    const size_t start = (arena->used + (align - 1)) & ~(align - 1);
    if (start < arena->used || start > arena->capacity ||
        bytes > arena->capacity - start) {
        arena->failed = 1;
        return NULL;
    }
    arena->used = start + bytes;

    if (!arena->base)
        return NULL;
    uint8_t *p = arena->base + start;
#ifdef PP_DEBUG
    memset(p, 0xA5, bytes);
#else
    memset(p, 0, bytes);
#endif
    return p;
}
