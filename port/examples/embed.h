/*
 * embed.h - the interface between the firmware example (embed.c) and the
 * board it runs on.
 */
#ifndef PP_EMBED_H
#define PP_EMBED_H

#include <stddef.h>

/*
 * Loads the model linked into the binary as pp_model[] and writes the
 * prompt and its greedy continuation, then one line with the arena size and
 * the kernel variant, through embed_write(). Returns 0, or 1 after writing
 * a line that starts with "embed: " and says what failed.
 */
int embed_run(void);

/* Writes `length` bytes of text to the board's console; provided by the
 * board (a UART driver, semihosting, a buffer a debugger reads). */
void embed_write(const char *text, size_t length);

#endif /* PP_EMBED_H */
