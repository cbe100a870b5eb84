/*
 * tile_cache.c - weight tiles from a read source (pread, SPI flash, an SD
 * card) through a cache in the arena.
 *
 * The cache has one pool of equal slots per kind of tile part (q rows, o
 * columns, k/v rows, gate/up rows, down columns, classifier row blocks),
 * so slots never fragment. Decoding misses, per token, the kept parts of
 * each pool beyond its slots, so slots beyond a pool's kept set are
 * wasted. Pruning shrinks only the head and MLP kinds, while the k/v rows
 * and the classifier are read for every token. So when those two fit in the
 * byte budget, they get all the slots they need and the other pools split
 * the rest in proportion to their bytes in the model. Otherwise all pools
 * share the budget in that proportion. Every pool has at least one slot.
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
 * operation runs (pp_cache_unpin). When every slot of a pool is pinned, the
 * caller runs what it has and requests the part again. A pool smaller than
 * its parts also makes the caller run after stream_slots misses (an eighth
 * of its slots). Otherwise an operation would pin a pool's worth of new
 * parts, each taking the slot of a resident one, and the pool would turn
 * over completely on every pass. Prefetch reserves no more slots than that.
 *
 * NOTE: the victim search scans the pool, O(slots) per miss. That is small
 * next to the read it precedes on the storage this cache is for.
 */
#include <string.h>

#include "internal.h"

#define CLASSIFIER_BLOCK_ROWS 256
/* slot_pin of a slot reserved for a planned read that has not run yet. */
#define PREFETCH_PIN 0xFFFFFFFFu

/* Bytes of one item of each pool: the largest, which for MLP parts is
 * that of tile 0 (only the last tile can be narrower). */
static uint64_t pool_item_bytes(const pp_context *c, int pool) {
    const pp_dims *d = &c->dims;
    if (pool != PP_POOL_CLASSIFIER)
        return pp_part_bytes(d, (pp_part)pool, 0);
    const uint64_t rows = CLASSIFIER_BLOCK_ROWS < d->vocab_size
                              ? CLASSIFIER_BLOCK_ROWS
                              : d->vocab_size;
    return pp_q8_matrix_bytes((size_t)rows, (size_t)d->dim, (size_t)d->group);
}

static uint64_t pool_item_count(const pp_context *c, int pool) {
    const pp_dims *d = &c->dims;
    if (pool != PP_POOL_CLASSIFIER)
        return d->n_layers * pp_part_count(d, (pp_part)pool);
    return (d->vocab_size + CLASSIFIER_BLOCK_ROWS - 1) / CLASSIFIER_BLOCK_ROWS;
}

size_t pp_classifier_block_rows(void) { return CLASSIFIER_BLOCK_ROWS; }

/* Whether every token reads all of pool p's parts, whatever is pruned. */
static int pool_always_read(int p) {
    return p == PP_POOL_KV || p == PP_POOL_CLASSIFIER;
}

void pp_cache_allocate(pp_context *c, pp_arena *a, uint64_t budget) {
    pp_tile_cache *cache = &c->cache;
    uint64_t total = 0, always = 0;

    for (int p = 0; p < PP_POOL_COUNT; p++) {
        const uint64_t bytes = pool_item_bytes(c, p) * pool_item_count(c, p);
        total += bytes;
        if (pool_always_read(p))
            always += bytes;
    }
    const int always_first = always <= budget;
    for (int p = 0; p < PP_POOL_COUNT; p++) {
        pp_cache_pool *pool = &cache->pool[p];
        const uint64_t item = pool_item_bytes(c, p);
        const uint64_t items = pool_item_count(c, p);
        uint64_t share;
        if (always_first && pool_always_read(p))
            share = item * items;
        else if (always_first)
            share = (uint64_t)((double)(budget - always) * (double)(item * items) /
                               (double)(total - always));
        else
            share = (uint64_t)((double)budget * (double)(item * items) /
                               (double)total);
        uint64_t slots = share / item;
        if (slots < 1)
            slots = 1;
        if (slots > items)
            slots = items;
        pool->slot_bytes = item;
        pool->n_slots = (int32_t)slots;
        pool->n_items = (int32_t)items;
        pool->stream_slots = slots >= items ? (int32_t)slots
                                            : (int32_t)(slots >= 16 ? slots / 8 : 1);
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
        pool->run_misses = 0;
        pool->run_epoch = 0;
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
        if (pool->slot_pin[s] == c->cache.epoch || pool->slot_pin[s] == PREFETCH_PIN)
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

/* Reads with up to two retries: a port reports transient errors (an
 * interrupted or short read it could not complete) as PP_ERR_IO. */
static pp_status read_retrying(const pp_source *source, uint64_t offset,
                               void *dst, size_t length);

pp_status pp_read_weights(pp_context *c, uint64_t offset, void *dst,
                          size_t length) {
    return read_retrying(c->source, offset, dst, length);
}

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

    if (s >= 0 && pool->slot_pin[s] == PREFETCH_PIN) {
        /* Planned but not read yet: do the planned reads now. */
        for (int i = 0; i < cache->n_prefetch; i++)
            pp_cache_prefetch_read(c, (size_t)i);
        pp_cache_finish_prefetch(c);
        s = pool->item_slot[item];
    }
    if (s >= 0) {
        cache->hits++;
    } else {
        if (pool->run_epoch != cache->epoch) {
            pool->run_epoch = cache->epoch;
            pool->run_misses = 0;
        }
        if (pool->run_misses >= pool->stream_slots)
            return NULL;  /* run what is built first (see the top) */
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
        pool->run_misses++;
        cache->misses++;
    }
    pool->slot_used[s] = ++cache->clock;
    pool->slot_pin[s] = cache->epoch;
    return pool->slots + (size_t)s * pool->slot_bytes;
}

/* ---- Prefetch ------------------------------------------------------------ */

/*
 * While decoding with a fixed kept set, the parts of the next layer are
 * known before it runs. pp_cache_plan_prefetch reserves slots for the
 * missing ones (at most stream_slots and half of each pool, never a slot
 * pinned by the current operation), and their reads then run as extra tasks of the next
 * heavy parallel run (pp_parallel_heavy), on whichever worker is free,
 * while the others compute. With one thread the reads simply run first.
 */
static void reserve(pp_context *c, int p, int32_t item, uint64_t offset,
                    uint64_t bytes, int *reserved) {
    pp_tile_cache *cache = &c->cache;
    pp_cache_pool *pool = &cache->pool[p];
    if (pool->item_slot[item] >= 0 || *reserved >= pool->stream_slots ||
        *reserved >= pool->n_slots / 2)
        return;
    const int32_t s = choose_victim(c, p);
    if (s < 0 || pool->slot_pin[s] == PREFETCH_PIN)
        return;
    if (pool->slot_item[s] >= 0)
        pool->item_slot[pool->slot_item[s]] = -1;
    pool->slot_item[s] = item;
    pool->item_slot[item] = s;
    pool->slot_pin[s] = PREFETCH_PIN;
    pool->slot_used[s] = ++cache->clock;

    pp_prefetch *f = &cache->prefetch[cache->n_prefetch++];
    f->pool = p;
    f->slot = s;
    f->offset = offset;
    f->bytes = bytes;
    f->status = PP_OK;
    (*reserved)++;
}

void pp_cache_plan_prefetch(pp_context *c, int layer) {
    const pp_dims *d = &c->dims;
    int reserved[PP_POOL_COUNT] = {0};
    if (!c->cache.enabled || layer >= c->info.n_layers)
        return;

    /* The kept parts in file order, so the reads run front to back. */
    const uint8_t *heads = c->pruning.head_kept + (size_t)layer * d->n_heads;
    const uint8_t *tiles = c->pruning.tile_kept + (size_t)layer * pp_mlp_tile_count(d);
    for (int part = PP_PART_Q; part <= PP_PART_DOWN; part++) {
        const uint64_t count = pp_part_count(d, (pp_part)part);
        const uint8_t *kept = part == PP_PART_KV        ? NULL
                              : part >= PP_PART_GATE_UP ? tiles
                                                        : heads;
        for (uint64_t i = 0; i < count; i++) {
            if (kept && !kept[i])
                continue;
            uint64_t offset, bytes;
            pp_tile_part_range(c, layer, (pp_part)part, (int)i, &offset, &bytes);
            reserve(c, part, (int32_t)((uint64_t)layer * count + i), offset,
                    bytes, &reserved[part]);
        }
    }
}

/* Runs on a worker: one planned read. */
void pp_cache_prefetch_read(pp_context *c, size_t index) {
    pp_prefetch *f = &c->cache.prefetch[index];
    pp_cache_pool *pool = &c->cache.pool[f->pool];
    f->status = read_retrying(c->source, f->offset,
                              pool->slots + (size_t)f->slot * pool->slot_bytes,
                              (size_t)f->bytes);
}

/* After the run: failed reads free their slot (a later demand read retries
 * and reports), the others become ordinary cached parts. */
void pp_cache_finish_prefetch(pp_context *c) {
    pp_tile_cache *cache = &c->cache;
    for (int i = 0; i < cache->n_prefetch; i++) {
        const pp_prefetch *f = &cache->prefetch[i];
        pp_cache_pool *pool = &cache->pool[f->pool];
        pool->slot_pin[f->slot] = 0;
        if (f->status != PP_OK) {
            pool->item_slot[pool->slot_item[f->slot]] = -1;
            pool->slot_item[f->slot] = -1;
            continue;
        }
        cache->backing_bytes += f->bytes;
        cache->prefetched++;
    }
    cache->n_prefetch = 0;
}
