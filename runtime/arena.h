/*
 * arena.h - the bump allocator behind pp_init.
 *
 * All of a context's memory comes from one caller-provided buffer. An arena
 * with base == NULL only measures: allocations return NULL and advance
 * `used`, so pp_arena_size() runs the same allocation sequence as pp_init()
 * and gets the exact byte count. Offsets are aligned relative to the base,
 * which must itself be aligned to PP_ARENA_ALIGN, so the measured size does
 * not depend on where the buffer lives.
 */
#ifndef PP_ARENA_H
#define PP_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define PP_ARENA_ALIGN 16

typedef struct pp_arena {
    uint8_t *base;    /* NULL: measure only */
    size_t capacity;  /* bytes available from base */
    size_t used;      /* bytes handed out, including alignment padding */
    int failed;       /* set once an allocation did not fit */
} pp_arena;

void pp_arena_init(pp_arena *arena, void *base, size_t capacity);

/*
 * Hands out `count * size` bytes aligned to `align` (a power of two up to
 * 64). Returns NULL when measuring, on overflow, or when the arena is full;
 * the last two set `failed`. Fresh memory is zeroed, or filled with 0xA5 in
 * debug builds so that reads of unset scratch show up.
 */
void *pp_arena_alloc(pp_arena *arena, size_t count, size_t size, size_t align);

#endif /* PP_ARENA_H */
