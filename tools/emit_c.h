/*
 * emit_c.h - writing a file's bytes as C source, so firmware can link a
 * model as a const array (`pprt convert --emit-c`).
 */
#ifndef PP_EMIT_C_H
#define PP_EMIT_C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writes `path` as a C11 source file that defines
 *
 *     _Alignas(64) const unsigned char NAME[size];
 *     const size_t NAME_size;
 *
 * with `bytes` as the array's contents. The 64-byte alignment meets the
 * tile alignment of every pprt model file, so tiles stay aligned in memory.
 * `origin` is written in the file's header comment. Returns 0, or -1 with a
 * message naming the file in err.
 */
int pp_write_c_array(const char *path, const char *name, const uint8_t *bytes,
                     size_t size, const char *origin, char *err,
                     size_t err_size);

#endif /* PP_EMIT_C_H */
