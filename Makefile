# pprt build.
#
#   make                         build/libpprt.a and build/pprt for this machine
#   make CC=clang                the same with clang
#   make CROSS=aarch64-linux-gnu-   cross-build for 64-bit ARM into build-aarch64/
#   make test                    build and run the tests (and the aarch64 tests
#                                under qemu when the cross compiler is installed)
#   make DEBUG=1                 -O0 -g, arena poisoning
#   make SLEEF=1                 vectorized exp from SLEEF (libsleef-dev)
#
# ISA flags apply only to the kernel files whose names end in that ISA, so the
# rest of the library runs on any CPU of the target architecture.

CROSS ?=
CC ?= cc
ifeq ($(origin CC),default)
CC = $(CROSS)gcc
endif
AR = $(CROSS)ar

ARCH := $(shell $(CC) -dumpmachine | cut -d- -f1)
ifeq ($(ARCH),)
$(error cannot run '$(CC) -dumpmachine'; set CC to a working C compiler)
endif
ifneq ($(filter-out x86_64 aarch64 arm,$(ARCH)),)
$(error unsupported target architecture '$(ARCH)' from '$(CC)'; expected x86_64 or aarch64)
endif

ifeq ($(CROSS),)
BUILD ?= build
else
BUILD ?= build-$(ARCH)
endif

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wpointer-arith -Wvla -Wformat=2 -Wconversion -Wno-sign-conversion
ifeq ($(DEBUG),1)
OPT = -O0 -g -DPP_DEBUG=1
else
OPT = -O2 -g
endif
CFLAGS ?=
CFLAGS += -std=c11 $(OPT) $(WARN) -D_POSIX_C_SOURCE=200809L -Iruntime -Ikernels -Iport
LDLIBS = -lm -lpthread

ifeq ($(SLEEF),1)
CFLAGS += -DPP_HAVE_SLEEF=1
LDLIBS += -lsleef
endif

# Kernel files by ISA suffix; only those of the target architecture build.
KERNEL_SCALAR = $(filter-out $(wildcard kernels/*_avx2.c kernels/*_avx512vnni.c \
                  kernels/*_neon.c kernels/*_dotprod.c),$(wildcard kernels/*.c))
ifeq ($(ARCH),x86_64)
KERNEL_SIMD = $(wildcard kernels/*_avx2.c kernels/*_avx512vnni.c)
else ifeq ($(ARCH),aarch64)
KERNEL_SIMD = $(wildcard kernels/*_neon.c kernels/*_dotprod.c)
endif

FLAGS_avx2 = -mavx2 -mfma -mf16c
FLAGS_avx512vnni = -mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512vnni
FLAGS_neon =
FLAGS_dotprod = -march=armv8.2-a+dotprod

# port/ holds the hosted (POSIX) port; port/none/ is the bare-metal one.
PORT = $(wildcard port/*.c)
LIB_SRC = $(wildcard runtime/*.c) $(KERNEL_SCALAR) $(KERNEL_SIMD) $(PORT)
TOOL_SRC = $(wildcard tools/*.c)
TEST_SRC = $(wildcard tests/test_*.c)

LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ = $(TOOL_SRC:%.c=$(BUILD)/%.o)
TESTS = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test test-native test-aarch64 check-no-libc clean
all: $(BUILD)/libpprt.a $(BUILD)/pprt

$(BUILD)/libpprt.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/pprt: $(TOOL_OBJ) $(BUILD)/libpprt.a
	$(CC) $(CFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libpprt.a $(LDLIBS)

# The ISA flags come from the part of the file name after the last '_'.
$(BUILD)/kernels/%.o: kernels/%.c kernels/kernels.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FLAGS_$(lastword $(subst _, ,$*))) -c $< -o $@

$(BUILD)/%.o: %.c $(wildcard runtime/*.h kernels/*.h port/*.h tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Tests link the library and the tools' objects except main.
TOOL_LIB_OBJ = $(filter-out $(BUILD)/tools/main.o,$(TOOL_OBJ))
$(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libpprt.a $(TOOL_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -Itests -o $@ $< $(TOOL_LIB_OBJ) $(BUILD)/libpprt.a $(LDLIBS)

# The runtime and the kernels must not allocate, print or exit: the firmware
# that links them may have no heap and no console.
check-no-libc: $(BUILD)/libpprt.a
	@sh tests/check_no_libc.sh $(BUILD) runtime kernels

test: test-native test-aarch64

test-native: $(TESTS) $(BUILD)/pprt check-no-libc
	@sh tests/run.sh $(BUILD) "" $(TESTS)

# Cross-built tests under qemu, once as a CPU without dotprod and once with.
test-aarch64:
	@if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then \
	    $(MAKE) --no-print-directory CROSS=aarch64-linux-gnu- CC=aarch64-linux-gnu-gcc aarch64-tests && \
	    sh tests/run.sh build-aarch64 "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72" build-aarch64/tests/test_kernels && \
	    sh tests/run.sh build-aarch64 "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max" build-aarch64/tests/test_kernels; \
	else \
	    echo "aarch64 tests skipped: install gcc-aarch64-linux-gnu and qemu-user"; \
	    if [ "$$CI" = true ]; then exit 1; fi; \
	fi

aarch64-tests: $(BUILD)/pprt $(TESTS)

clean:
	rm -rf build build-*
