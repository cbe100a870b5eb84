/*
 * tile_cache.c - weight tiles from a read source (pread, SPI flash, an SD
 * card) through a cache in the arena.
 *
 * The cache has one pool of equal slots per kind of tile part (q rows, o
 * columns, k/v rows, gate/up rows, down columns, classifier row blocks),
 * so slots never fragment. The byte budget is split between the pools in
 * proportion to the bytes of each kind in the model, with at least one
 * slot each.
 *
 * Replacement, when a part is missing and no slot is free:
 *   1. the least recently used part that the current kept set prunes: a
 *      tile that was just pruned will not be read until the next probe;
 *   2. otherwise the most recently used kept part. Decoding reads the same
 *      kept parts in the same order for every token, a cyclic pattern on
 *      which LRU misses every time once the kept set is larger than the
 *      cache; evicting the most recent instead leaves a stable part of the
 *      kept set resident, so the hit rate approaches cache / kept set.
 * Parts handed out for the operation being built are pinned until the
 * operation runs (pp_cache_unpin); when every slot of a pool is pinned the
 * caller runs what it has and asks again.
 *
 * NOTE: the victim search scans the pool, O(slots) per miss. That is small
 * next to the read it precedes on the storage this cache is for.
 */
#include <string.h>

#include "internal.h"

#define CLASSIFIER_BLOCK_ROWS 256

/* Bytes of one item of each pool (the largest, for MLP tiles). */
static uint64_t pool_item_bytes(const pp_context *c, int pool) {
    const pp_dims *d = &c->dims;
    const uint64_t qkv = pp_matrix_geometry(d->head_dim, d->dim, d->group).bytes;
    switch (pool) {
    case PP_POOL_Q: return qkv;
    case PP_POOL_O: return pp_matrix_geometry(d->dim, d->head_dim, d->group).bytes;
    case PP_POOL_KV: return 2 * qkv;
    case PP_POOL_GATE_UP: return 2 * pp_matrix_geometry(d->tile, d->dim, d->group).bytes;
    case PP_POOL_DOWN: return pp_matrix_geometry(d->dim, d->tile, d->group).bytes;
    default: {
        const uint64_t rows = CLASSIFIER_BLOCK_ROWS < d->vocab_size
                                  ? CLASSIFIER_BLOCK_ROWS
                                  : d->vocab_size;
        return pp_align_up(rows * d->dim, 64) +
               4 * rows * pp_group_count(d->dim, d->group);
    }
    }
}

static uint64_t pool_item_count(const pp_context *c, int pool) {
    const pp_dims *d = &c->dims;
    switch (pool) {
    case PP_POOL_Q:
    case PP_POOL_O: return d->n_layers * d->n_heads;
    case PP_POOL_KV: return d->n_layers * d->n_kv_heads;
    case PP_POOL_GATE_UP:
    case PP_POOL_DOWN: return d->n_layers * pp_mlp_tile_count(d);
    default:
        return (d->vocab_size + CLASSIFIER_BLOCK_ROWS - 1) / CLASSIFIER_BLOCK_ROWS;
    }
}

size_t pp_classifier_block_rows(void) { return CLASSIFIER_BLOCK_ROWS; }

void pp_cache_allocate(pp_context *c, pp_arena *a, uint64_t budget) {
    pp_tile_cache *cache = &c->cache;
    uint64_t total = 0;

    for (int p = 0; p < PP_POOL_COUNT; p++)
        total += pool_item_bytes(c, p) * pool_item_count(c, p);
    for (int p = 0; p < PP_POOL_COUNT; p++) {
        pp_cache_pool *pool = &cache->pool[p];
        const uint64_t item = pool_item_bytes(c, p);
        const uint64_t items = pool_item_count(c, p);
        const uint64_t share = (uint64_t)((double)budget * (double)(item * items) /
                                          (double)total);
        uint64_t slots = share / item;
        if (slots < 1)
            slots = 1;
        if (slots > items)
            slots = items;
        pool->slot_bytes = item;
        pool->n_slots = (int32_t)slots;
        pool->n_items = (int32_t)items;
        pool->slots = pp_arena_alloc(a, (size_t)slots, (size_t)item, 64);
        pool->slot_item = pp_arena_alloc(a, (size_t)slots, 4, 4);
        pool->slot_used = pp_arena_alloc(a, (size_t)slots, 4, 4);
        pool->slot_pin = pp_arena_alloc(a, (size_t)slots, 4, 4);
        pool->item_slot = pp_arena_alloc(a, (size_t)items, 4, 4);
    }
}

void pp_cache_reset(pp_context *c) {
    pp_tile_cache *cache = &c->cache;
    for (int p = 0; p < PP_POOL_COUNT; p++) {
        pp_cache_pool *pool = &cache->pool[p];
        memset(pool->slot_item, 0xFF, (size_t)pool->n_slots * 4);
        memset(pool->slot_used, 0, (size_t)pool->n_slots * 4);
        memset(pool->slot_pin, 0, (size_t)pool->n_slots * 4);
        memset(pool->item_slot, 0xFF, (size_t)pool->n_items * 4);
    }
    cache->clock = 0;
    cache->epoch = 1;
}

void pp_cache_unpin(pp_context *c) { c->cache.epoch++; }

/* Is item `item` of pool `p` in the current kept set? */
static int item_kept(const pp_context *c, int p, int32_t item) {
    switch (p) {
    case PP_POOL_Q:
    case PP_POOL_O: return c->pruning.head_kept[item];
    case PP_POOL_GATE_UP:
    case PP_POOL_DOWN: return c->pruning.tile_kept[item];
    default: return 1;
    }
}

static int32_t choose_victim(const pp_context *c, int p) {
    const pp_cache_pool *pool = &c->cache.pool[p];
    int32_t pruned = -1, kept = -1;

    for (int32_t s = 0; s < pool->n_slots; s++) {
        if (pool->slot_item[s] < 0)
            return s;
        if (pool->slot_pin[s] == c->cache.epoch)
            continue;
        if (!item_kept(c, p, pool->slot_item[s])) {
            if (pruned < 0 || pool->slot_used[s] < pool->slot_used[pruned])
                pruned = s;
        } else if (kept < 0 || pool->slot_used[s] > pool->slot_used[kept]) {
            kept = s;
        }
    }
    return pruned >= 0 ? pruned : kept;
}

/* Reads with one retry per failure: a port reports transient errors (an
 * interrupted or short read it could not complete) as PP_ERR_IO. */
static pp_status read_retrying(const pp_source *source, uint64_t offset,
                               void *dst, size_t length) {
    pp_status st = PP_ERR_IO;
    for (int attempt = 0; attempt < 3 && st == PP_ERR_IO; attempt++)
        st = source->read(source->user, offset, dst, length);
    return st;
}

const uint8_t *pp_cache_get(pp_context *c, int p, int32_t item,
                            const pp_cache_span *spans, int n_spans) {
    pp_tile_cache *cache = &c->cache;
    pp_cache_pool *pool = &cache->pool[p];
    int32_t s = pool->item_slot[item];

    if (s >= 0) {
        cache->hits++;
    } else {
        s = choose_victim(c, p);
        if (s < 0)
            return NULL;  /* every slot is pinned: run what is built */
        if (pool->slot_item[s] >= 0)
            pool->item_slot[pool->slot_item[s]] = -1;
        pool->slot_item[s] = -1;

        uint8_t *dst = pool->slots + (size_t)s * pool->slot_bytes;
        for (int i = 0; i < n_spans; i++) {
            const pp_status st = read_retrying(c->source, spans[i].offset,
                                               dst + spans[i].at, spans[i].length);
            if (st != PP_OK) {
                c->io_status = st;
                return NULL;
            }
            cache->backing_bytes += spans[i].length;
        }
        pool->slot_item[s] = item;
        pool->item_slot[item] = s;
        cache->misses++;
    }
    pool->slot_used[s] = ++cache->clock;
    pool->slot_pin[s] = cache->epoch;
    return pool->slots + (size_t)s * pool->slot_bytes;
}
