/*
 * model.h - parsing and validation of a pprt model file (see format.h).
 */
#ifndef PP_MODEL_H
#define PP_MODEL_H

#include "format.h"
#include "pprt.h"

typedef struct pp_section {
    uint64_t offset, size;
    uint32_t crc;
    int present;
} pp_section;

/* Everything the header and directory say, after validation. */
typedef struct pp_model_file {
    pp_model_info info;
    pp_dims dims;
    pp_section section[PP_SECTION_COUNT_MAX];
    size_t tokenizer_text_bytes;  /* sum of token lengths */
    int tokenizer_kind;           /* pp_tokenizer_kind, from the flags */
} pp_model_file;

/*
 * Reads `length` bytes at `offset` from the source, from `data` when it is
 * set and through `read` otherwise. Range-checked against source->size.
 */
pp_status pp_source_read(const pp_source *source, uint64_t offset, void *dst,
                         size_t length);

/*
 * Validates the header, the section table, the tile directory, the norms,
 * the channel statistics and the tokenizer section, including the CRC-32 of
 * those sections and of the header, and fills `file`. With `verify_weights`
 * it also checks the CRC-32 of the weight sections. Reads through the
 * source in small pieces; needs no arena.
 */
pp_status pp_model_parse(const pp_source *source, int verify_weights,
                         pp_model_file *file);

/* Checks a copy of the directory (host-order offsets) as parsing checked
 * the file's: the runtime uses its copy, which a read source may deliver
 * differently the second time. */
pp_status pp_model_check_directory(const pp_model_file *file,
                                   const uint64_t *offsets);

#endif /* PP_MODEL_H */
