/*
 * gemm_q8_driver.h - the loop order and the entry points of the SIMD
 * gemm_q8 and gemv_q8 kernels, the same on every ISA. Included at the end
 * of gemm_q8_x86.h and gemm_q8_arm.h, which define before it:
 *   GEMM_Q8_NAME, GEMV_Q8_NAME   the symbols, from the including .c file
 *   Q8_ROW_CHUNK_BYTES           weight bytes kept in cache while all
 *                                activation rows pass over them
 *   Q8_TILE_ROWS                 activation rows per block pass, 4 (the
 *                                remainders 1 to 3 get their own passes)
 *   q8_isum, q8_facc             a block's 8 int32 row sums and 8 float
 *                                row sums, in registers
 *   q8_isum_zero, q8_isum_add, q8_facc_zero, q8_facc_store
 *   q8_run(t, run, x, c, count, isum)
 *       adds a 32-byte run (4 columns of 8 rows) times activation rows
 *       x[j] at column c (count of them left in the row, at most 4 read)
 *       to isum[j], for j < t
 *   q8_xquad, q8_xquad_make(x, count), q8_run1(run, xquad, isum)
 *       the same for one activation row, with its quad prepared apart
 *   q8_facc_add(acc, isum, scales, xs)
 *       acc + (float)isum * (scales * xs), lane by lane, with the 8 half
 *       scales at `scales`
 */
#ifndef PP_GEMM_Q8_DRIVER_H
#define PP_GEMM_Q8_DRIVER_H

/* The int32 sums of one group of one block: `quads` runs at `run` from
 * column c0, with `left` columns left in the row. A constant `quads` with
 * left >= 4 * quads unrolls to straight loads. With one activation row,
 * runs go to 4 partial sums in turn, which makes the chains of dependent
 * dot product instructions 4 times shorter. */
Q8_INLINE void q8_group_sums(size_t t, const uint8_t *run, size_t quads,
                             const int8_t *const *x, size_t c0, size_t left,
                             q8_isum *isum) {
#pragma GCC unroll 4
    for (size_t j = 0; j < t; j++)
        isum[j] = q8_isum_zero();
    const size_t full = left >= 4 * quads ? quads : left / 4;
    size_t q = 0;
    if (t == 1) {
        q8_isum part1 = q8_isum_zero(), part2 = q8_isum_zero();
        q8_isum part3 = q8_isum_zero();
        for (; q + 4 <= full; q += 4) {
            q8_run(1, run + 32 * q, x, c0 + 4 * q, 4, isum);
            q8_run(1, run + 32 * (q + 1), x, c0 + 4 * (q + 1), 4, &part1);
            q8_run(1, run + 32 * (q + 2), x, c0 + 4 * (q + 2), 4, &part2);
            q8_run(1, run + 32 * (q + 3), x, c0 + 4 * (q + 3), 4, &part3);
        }
        isum[0] = q8_isum_add(q8_isum_add(isum[0], part1),
                              q8_isum_add(part2, part3));
    }
    for (; q < full; q++)
        q8_run(t, run + 32 * q, x, c0 + 4 * q, 4, isum);
    if (full < quads)
        q8_run(t, run + 32 * full, x, c0 + 4 * full, left - 4 * full, isum);
}

/* Adds group g, whose record starts at `record`, to acc[j], for j < t. */
Q8_INLINE void q8_group(size_t t, const uint8_t *record, size_t quads,
                        const int8_t *const *x, const float *const *xs,
                        size_t g, size_t begin, size_t left, q8_facc *acc) {
    q8_isum isum[Q8_TILE_ROWS];
    q8_group_sums(t, record, quads, x, begin, left, isum);
#pragma GCC unroll 4
    for (size_t j = 0; j < t; j++)
        acc[j] = q8_facc_add(acc[j], isum[j], record + 32 * quads, xs[j][g]);
}

/*
 * out[j][r] = row r of the block of 8 weight rows at `block` times
 * activation row x[j] (scales xs[j]), for j < t, as the scalar kernel
 * computes it. Full groups of a size that is a multiple of 4 take the
 * unrolled path; group 32, the default, with a constant run count. With a
 * stream `ahead` (GEMV), each group also prefetches Q8_PREFETCH_BYTES
 * ahead into the next product; `offset` is the block's place in the stream.
 */
Q8_INLINE void q8_block(size_t t, size_t k, size_t group,
                        const uint8_t *block, const int8_t *const *x,
                        const float *const *xs, const q8_ahead *ahead,
                        size_t offset, float (*out)[PP_Q8_BLOCK_ROWS]) {
    q8_facc acc[Q8_TILE_ROWS];
#pragma GCC unroll 4
    for (size_t j = 0; j < t; j++)
        acc[j] = q8_facc_zero();

    const uint8_t *record = block;
    size_t g = 0, begin = 0;
    if (group % 4 == 0) {
        const size_t quads = group / 4;
        for (; begin + group <= k; g++, begin += group) {
            q8_prefetch_next(ahead, offset + Q8_PREFETCH_BYTES,
                             pp_q8_record_bytes(group));
            if (group == 32)
                q8_group(t, record, 8, x, xs, g, begin, 32, acc);
            else
                q8_group(t, record, quads, x, xs, g, begin, group, acc);
            record += pp_q8_record_bytes(group);
            offset += pp_q8_record_bytes(group);
        }
    }
    for (; begin < k; g++, begin += group) {
        const size_t length = k - begin < group ? k - begin : group;
        const size_t quads = pp_q8_quads(length);
        q8_group(t, record, quads, x, xs, g, begin, k - begin, acc);
        record += 32 * quads + PP_Q8_SCALE_BYTES;
    }
#pragma GCC unroll 4
    for (size_t j = 0; j < t; j++)
        q8_facc_store(out[j], acc[j]);
}

/* Stores rows [i0, i0 + 8) of each of t output rows, only those below m. */
static inline void q8_store_block(size_t t, size_t m, size_t i0, float *y,
                                  size_t ldy, float (*out)[PP_Q8_BLOCK_ROWS],
                                  int accumulate) {
    const size_t rows = m - i0 < PP_Q8_BLOCK_ROWS ? m - i0 : PP_Q8_BLOCK_ROWS;
    for (size_t j = 0; j < t; j++) {
        float *yj = y + j * ldy + i0;
        if (rows == PP_Q8_BLOCK_ROWS && accumulate) {
            for (size_t r = 0; r < PP_Q8_BLOCK_ROWS; r++)
                yj[r] += out[j][r];
        } else if (rows == PP_Q8_BLOCK_ROWS) {
            for (size_t r = 0; r < PP_Q8_BLOCK_ROWS; r++)
                yj[r] = out[j][r];
        } else {
            for (size_t r = 0; r < rows; r++)
                yj[r] = accumulate ? yj[r] + out[j][r] : out[j][r];
        }
    }
}

/* Blocks [b0, b1) with activation rows [j0, j0 + t); a constant t lets the
 * compiler unroll q8_block for it. */
Q8_INLINE void q8_blocks(size_t t, size_t m, size_t k, size_t group,
                         const uint8_t *w, size_t b0, size_t b1,
                         const int8_t *x, size_t ldx, const float *xs,
                         size_t ldxs, size_t j0, float *y, size_t ldy,
                         int accumulate, const q8_ahead *ahead) {
    const size_t block_bytes = pp_q8_block_bytes(k, group);
    const int8_t *xr[Q8_TILE_ROWS];
    const float *xsr[Q8_TILE_ROWS];
    for (size_t j = 0; j < t; j++) {
        xr[j] = x + (j0 + j) * ldx;
        xsr[j] = xs + (j0 + j) * ldxs;
    }
    for (size_t b = b0; b < b1; b++) {
        float out[Q8_TILE_ROWS][PP_Q8_BLOCK_ROWS];
        q8_block(t, k, group, w + b * block_bytes, xr, xsr, ahead,
                 b * block_bytes, out);
        q8_store_block(t, m, b * PP_Q8_BLOCK_ROWS, y + j0 * ldy, ldy, out,
                       accumulate);
    }
}

/*
 * GEMV with rows of at most Q8_SHORT_QUADS runs (k <= 64), the column
 * products (a tile's down part, a head's o part): every block multiplies
 * the same few activation quads, so they are prepared once per call, and
 * a constant k and group (from q8_short_gemv) unroll each block into
 * straight code. Groups must be a multiple of 4 values, so that run i
 * covers columns [4i, 4i + 4). Consecutive runs of a group alternate
 * between two partial sums.
 */
#define Q8_SHORT_QUADS 16

Q8_INLINE void q8_short_rows(size_t k, size_t group, size_t m,
                             const uint8_t *w, const int8_t *x,
                             const float *xs, float *y, int accumulate,
                             const q8_ahead *ahead) {
    const size_t runs = pp_q8_quads(k);
    const size_t block_bytes = pp_q8_block_bytes(k, group);
    q8_xquad xq[Q8_SHORT_QUADS];
#pragma GCC unroll 16
    for (size_t i = 0; i < runs; i++)
        xq[i] = q8_xquad_make(x + 4 * i, k - 4 * i);

    for (size_t i0 = 0; i0 < m; i0 += PP_Q8_BLOCK_ROWS) {
        const size_t offset = i0 / PP_Q8_BLOCK_ROWS * block_bytes;
        q8_prefetch_next(ahead, offset + Q8_PREFETCH_BYTES, block_bytes);
        const uint8_t *record = w + offset;
        q8_facc acc = q8_facc_zero();
        for (size_t g = 0, begin = 0; begin < k; g++, begin += group) {
            const size_t quads = pp_q8_quads(k - begin < group ? k - begin : group);
            const q8_xquad *xg = xq + begin / 4;
            q8_isum even = q8_isum_zero(), odd = q8_isum_zero();
            size_t q = 0;
#pragma GCC unroll 8
            for (; q + 2 <= quads; q += 2) {
                even = q8_run1(record + 32 * q, xg[q], even);
                odd = q8_run1(record + 32 * (q + 1), xg[q + 1], odd);
            }
            if (q < quads)
                even = q8_run1(record + 32 * q, xg[q], even);
            acc = q8_facc_add(acc, q8_isum_add(even, odd), record + 32 * quads,
                              xs[g]);
            record += 32 * quads + PP_Q8_SCALE_BYTES;
        }
        float out[1][PP_Q8_BLOCK_ROWS];
        q8_facc_store(out[0], acc);
        q8_store_block(1, m, i0, y, m, out, accumulate);
    }
}

/* Runs q8_short_rows with constants for the common shapes (group 32 with
 * rows of 16, 32 and 64 values) and returns 1, or returns 0 for a shape
 * it does not take. */
static int q8_short_gemv(size_t m, size_t k, size_t group, const uint8_t *w,
                         const int8_t *x, const float *xs, float *y,
                         int accumulate, const q8_ahead *ahead) {
    if (k > 4 * Q8_SHORT_QUADS || group % 4 != 0)
        return 0;
    if (group == 32 && k == 32)
        q8_short_rows(32, 32, m, w, x, xs, y, accumulate, ahead);
    else if (group == 32 && k == 64)
        q8_short_rows(64, 32, m, w, x, xs, y, accumulate, ahead);
    else if (group == 32 && k == 16)
        q8_short_rows(16, 32, m, w, x, xs, y, accumulate, ahead);
    else
        q8_short_rows(k, group, m, w, x, xs, y, accumulate, ahead);
    return 1;
}

/*
 * Loop order: a chunk of weight blocks (Q8_ROW_CHUNK_BYTES) stays in cache
 * while the activation rows pass over it, Q8_TILE_ROWS at a time, so the
 * weights are read from memory once per call whatever n is.
 */
static void q8_gemm(size_t m, size_t n, size_t k, size_t group,
                    const uint8_t *w, const int8_t *x, size_t ldx,
                    const float *xs, size_t ldxs, float *y, size_t ldy,
                    int accumulate, const pp_q8_next *next) {
    const size_t blocks = (m + PP_Q8_BLOCK_ROWS - 1) / PP_Q8_BLOCK_ROWS;
    const size_t block_bytes = pp_q8_block_bytes(k, group);
    size_t chunk = Q8_ROW_CHUNK_BYTES / block_bytes;
    if (chunk < 1)
        chunk = 1;
    /* Only GEMV prefetches, because prefill rereads each chunk from cache. */
    const q8_ahead stream = q8_ahead_make(m, k, group, w, next);
    const q8_ahead *ahead = n == 1 && Q8_PREFETCH_BYTES > 0 ? &stream : NULL;
    if (n == 1 && q8_short_gemv(m, k, group, w, x, xs, y, accumulate, ahead))
        return;

    for (size_t b0 = 0; b0 < blocks; b0 += chunk) {
        const size_t b1 = blocks - b0 < chunk ? blocks : b0 + chunk;
        size_t j = 0;
        for (; j + Q8_TILE_ROWS <= n; j += Q8_TILE_ROWS)
            q8_blocks(Q8_TILE_ROWS, m, k, group, w, b0, b1, x, ldx, xs, ldxs,
                      j, y, ldy, accumulate, NULL);
        switch (n - j) {
        case 0: break;
        case 1:
            q8_blocks(1, m, k, group, w, b0, b1, x, ldx, xs, ldxs, j, y, ldy,
                      accumulate, ahead);
            break;
        case 2:
            q8_blocks(2, m, k, group, w, b0, b1, x, ldx, xs, ldxs, j, y, ldy,
                      accumulate, NULL);
            break;
        default:
            q8_blocks(3, m, k, group, w, b0, b1, x, ldx, xs, ldxs, j, y, ldy,
                      accumulate, NULL);
            break;
        }
    }
}

void GEMM_Q8_NAME(size_t m, size_t n, size_t k, size_t group,
                  const uint8_t *w, const int8_t *x, size_t ldx,
                  const float *xs, size_t ldxs, float *y, size_t ldy,
                  int accumulate) {
    q8_gemm(m, n, k, group, w, x, ldx, xs, ldxs, y, ldy, accumulate, NULL);
}

void GEMV_Q8_NAME(size_t m, size_t k, size_t group, const uint8_t *w,
                  const int8_t *x, const float *xs, float *y, int accumulate,
                  const pp_q8_next *next) {
    q8_gemm(m, 1, k, group, w, x, k, xs, pp_group_count(k, group), y, m,
            accumulate, next);
}

#endif /* PP_GEMM_Q8_DRIVER_H */
