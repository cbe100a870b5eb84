/*
 * embed_qemu_arm.c - a board file that runs the Cortex-M7 build of
 * port/examples/embed.c under qemu-arm, QEMU's Linux user-mode emulator.
 *
 * The program is linked without the C library's start files. qemu loads
 * the ELF, zeroes .bss and starts _start on its stack. The only system
 * services are two Linux EABI system calls, write and exit, made with
 * `svc 0` and the call number in r7. The library, the example and the model
 * are the same objects a Cortex-M7 firmware links; qemu's "max" AArch32 CPU
 * executes their Thumb-2 and FPv5 instructions. It does not model the M7's
 * memory map, caches, timing or exceptions.
 */
#include <stddef.h>

#include "embed.h"

enum { LINUX_EXIT = 1, LINUX_WRITE = 4 };

static long linux_syscall(long number, long a, long b, long c) {
    register long r0 __asm__("r0") = a;
    register long r1 __asm__("r1") = b;
    register long r2 __asm__("r2") = c;
    register long r7 __asm__("r7") = number;
    __asm__ volatile("svc 0" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r7) : "memory");
    return r0;
}

void embed_write(const char *text, size_t length) {
    while (length > 0) {
        const long n = linux_syscall(LINUX_WRITE, 1, (long)text, (long)length);
        if (n <= 0)
            return;
        text += n;
        length -= (size_t)n;
    }
}

_Noreturn void _start(void);

_Noreturn void _start(void) {
    const int status = embed_run();
    linux_syscall(LINUX_EXIT, status, 0, 0);
    for (;;) {
    }
}
