# pprt build.
#
#   make                         build/libpprt.a and build/pprt for this machine
#   make CC=clang                the same with clang
#   make CROSS=aarch64-linux-gnu-   cross-build for 64-bit ARM into build-aarch64/
#   make test                    build and run the tests (and the aarch64 tests
#                                under qemu when the cross compiler is installed)
#   make DEBUG=1                 -O0 -g, arena poisoning
#   make SLEEF=1                 take the vector exp from SLEEF (libsleef-dev)
#   make test-sleef              the kernel and model tests with SLEEF
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
CFLAGS += -std=c11 -ffp-contract=off $(OPT) $(WARN) -D_POSIX_C_SOURCE=200809L -Iruntime -Ikernels -Iport
LDLIBS = -lm -lpthread

# SLEEF's vector exp replaces pprt's own in kernels/exp_*.h (softmax,
# SwiGLU); both are tested against the same error bound.
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
FLAGS_avx512vnni = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni
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

.PHONY: all demo bench test test-native test-aarch64 check-no-libc clean
all: $(BUILD)/libpprt.a $(BUILD)/pprt

# The main job on the bundled model: convert the real stories260K to pprt's
# tiled int8 format, generate with Probe Pruning at ratio 0.4 (history from
# WikiText-2), and print the kept fraction and the weight bytes read.
PPRT_SHARED ?= ../shared
DEMO_PROMPT ?= Once upon a time
demo: $(BUILD)/pprt
	@test -f $(PPRT_SHARED)/models/stories260K/stories260K.bin || { \
	    echo "demo: $(PPRT_SHARED)/models/stories260K/stories260K.bin not found;" \
	         "set PPRT_SHARED to the folder with models/ and data/"; exit 1; }
	$(BUILD)/pprt convert --llama2c $(PPRT_SHARED)/models/stories260K/stories260K.bin \
	    --tokenizer $(PPRT_SHARED)/models/stories260K/tok512.bin -o $(BUILD)/stories260K.ppm
	$(BUILD)/pprt generate -m $(BUILD)/stories260K.ppm -p "$(DEMO_PROMPT)" -n 100 \
	    --method pp --prune 0.4 --calib $(PPRT_SHARED)/data/wikitext-2-test.raw

$(BUILD)/libpprt.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/pprt: $(TOOL_OBJ) $(BUILD)/libpprt.a
	$(CC) $(CFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libpprt.a $(LDLIBS)

# The ISA flags come from the part of the file name after the last '_'.
$(BUILD)/kernels/%.o: kernels/%.c $(wildcard kernels/*.h port/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FLAGS_$(lastword $(subst _, ,$*))) -c $< -o $@

$(BUILD)/%.o: %.c $(wildcard runtime/*.h kernels/*.h port/*.h tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Benchmark programs (the scripts in bench/ build what they run).
bench: $(BUILD)/bench/bench_kernels
$(BUILD)/bench/%: bench/%.c $(BUILD)/libpprt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpprt.a $(LDLIBS)

# Tests link the library and the tools' objects except main.
TOOL_LIB_OBJ = $(filter-out $(BUILD)/tools/main.o,$(TOOL_OBJ))
$(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libpprt.a $(TOOL_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools -Itests -o $@ $< $(TOOL_LIB_OBJ) $(BUILD)/libpprt.a $(LDLIBS)

# This test replaces the port's pread() and read() with fault injectors.
$(BUILD)/tests/test_port_faults: LDLIBS += -Wl,--wrap=pread -Wl,--wrap=read

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
	    sh tests/run.sh build-aarch64 "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72" build-aarch64/tests/test_kernels build-aarch64/tests/test_determinism && \
	    sh tests/run.sh build-aarch64 "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max" build-aarch64/tests/test_kernels build-aarch64/tests/test_determinism; \
	else \
	    echo "aarch64 tests skipped: install gcc-aarch64-linux-gnu and qemu-user"; \
	    if [ "$$CI" = true ]; then exit 1; fi; \
	fi

aarch64-tests: $(BUILD)/pprt $(TESTS)

clean:
	rm -rf build build-*

# ---- sanitizers and fuzzing ----
#
#   make test-sanitize           build the tests with clang, AddressSanitizer
#                                and UndefinedBehaviorSanitizer into
#                                build-san/ and run them
#   make fuzz FUZZ_SECONDS=N     run each libFuzzer target for N seconds
#                                (default 60) on tests/fuzz/corpus/; new inputs
#                                go to build-fuzz/corpus/, and a crash fails
#                                the build with the input in build-fuzz/crashes/
#   make -j2 fuzz                the same, two targets at a time
#   make fuzz-seeds              regenerate tests/fuzz/corpus/ (tests/fuzz/make_seeds.c)
#
# Both call this Makefile again with BUILD, CC and OPT set, so every object
# is built by the rules above with its ISA flags. The sanitizer flags go
# through the environment, because a CFLAGS on the make command line would
# replace the flags this file appends to it.

SANITIZE_CC ?= clang
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer
SANITIZE_BUILD = build-san
SANITIZE_TESTS = $(TEST_SRC:tests/%.c=$(SANITIZE_BUILD)/tests/%)

FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 30
FUZZ_BUILD = build-fuzz
FUZZ_TARGETS = fuzz_model fuzz_llama2c fuzz_tokenizer fuzz_gguf
# Largest input per target in bytes; the model seeds are up to 64 KiB and
# the GGUF seed 65 KiB.
FUZZ_MAX_LEN_fuzz_model = 65536
FUZZ_MAX_LEN_fuzz_llama2c = 16384
FUZZ_MAX_LEN_fuzz_tokenizer = 8192
FUZZ_MAX_LEN_fuzz_gguf = 131072

.PHONY: test-sanitize test-sleef fuzz fuzz-build fuzz-seeds

# The kernel, model and determinism tests with SLEEF's exp (libsleef-dev).
SLEEF_TESTS = $(addprefix build-sleef/tests/,test_kernels test_model test_determinism)
test-sleef:
	$(MAKE) --no-print-directory SLEEF=1 BUILD=build-sleef $(SLEEF_TESTS)
	@sh tests/run.sh build-sleef "" $(SLEEF_TESTS)

test-sanitize:
	CFLAGS="$(SANITIZE_FLAGS)" $(MAKE) --no-print-directory \
	    BUILD=$(SANITIZE_BUILD) CC=$(SANITIZE_CC) OPT="-O1 -g" \
	    $(SANITIZE_BUILD)/pprt $(SANITIZE_TESTS)
	@sh tests/run.sh $(SANITIZE_BUILD) "" $(SANITIZE_TESTS)

# A fuzz target links libFuzzer's main; the objects it links were built with
# -fsanitize=fuzzer-no-link for coverage.
$(BUILD)/fuzzers/%: tests/fuzz/%.c $(BUILD)/libpprt.a $(TOOL_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -DPP_FUZZ_MAIN -Itools -Itests -o $@ $< \
	    $(TOOL_LIB_OBJ) $(BUILD)/libpprt.a $(LDLIBS)

fuzz-build:
	CFLAGS="$(SANITIZE_FLAGS) -fsanitize=fuzzer-no-link" $(MAKE) \
	    --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(SANITIZE_CC) OPT="-O1 -g" \
	    $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzzers/%)

fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)

fuzz-run-%: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/crashes/$*
	@echo "fuzz: running $* for $(FUZZ_SECONDS) s"
	@$(FUZZ_BUILD)/fuzzers/$* -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=$(FUZZ_TIMEOUT) -max_len=$(FUZZ_MAX_LEN_$*) \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crashes/$*/ \
	    $(FUZZ_BUILD)/corpus/$* tests/fuzz/corpus/$* || { \
	    echo "fuzz: $* failed; the input is in $(FUZZ_BUILD)/crashes/$*/." \
	         "Copy it to tests/fuzz/regress/$*/ so test_fuzz_regress replays it."; \
	    exit 1; }

fuzz-seeds: $(BUILD)/tests/fuzz/make_seeds
	@mkdir -p $(FUZZ_TARGETS:%=tests/fuzz/corpus/%)
	$(BUILD)/tests/fuzz/make_seeds tests/fuzz/corpus

# ---- firmware example, firmware build, install ----
#
#   make check-embed             build port/examples/embed.c with the model
#                                linked in as a const array and with
#                                allocators that abort, run it and check its
#                                text (part of `make test`)
#   make firmware                build-firmware/libpprt.a for Cortex-M7
#                                (arm-none-eabi-gcc, hard float, scalar
#                                kernels, the no-OS port in port/none/), check
#                                that it uses no heap, stdio, threads or exit,
#                                and run the example's Cortex-M7 build under
#                                qemu-arm when qemu-user is installed
#   make install PREFIX=DIR      install libpprt.a, pprt.h and pprt.pc under
#                                DIR (default /usr/local; DESTDIR stages)

EMBED_LLAMA2C = $(PPRT_SHARED)/models/stories260K/stories260K.bin
EMBED_TOKENIZER = $(PPRT_SHARED)/models/stories260K/tok512.bin
# Tokens the example generates; the check compares them with pprt generate.
EMBED_GENERATE = 24

.PHONY: check-embed firmware firmware-check firmware-qemu install
test-native: check-embed

ifneq ($(wildcard $(EMBED_LLAMA2C)),)
check-embed: $(BUILD)/embed/embed $(BUILD)/pprt
	@sh tests/check_embed.sh --heap-trap \
	    --compare $(BUILD)/pprt $(BUILD)/embed/model.ppm $(EMBED_GENERATE) \
	    $(BUILD)/embed/embed
else
check-embed:
	@echo "check-embed skipped: $(EMBED_LLAMA2C) not found; set PPRT_SHARED"
	@[ "$$CI" != true ]
endif

# The model as C source; convert also writes model.ppm for the comparison.
$(BUILD)/embed/model.c: $(BUILD)/pprt
	@mkdir -p $(dir $@)
	@$(BUILD)/pprt convert --llama2c $(EMBED_LLAMA2C) \
	    --tokenizer $(EMBED_TOKENIZER) -o $(BUILD)/embed/model.ppm \
	    --emit-c $@ >$(BUILD)/embed/convert.log 2>&1 || \
	    { cat $(BUILD)/embed/convert.log; exit 1; }

$(BUILD)/embed/embed: port/examples/embed.c port/examples/embed.h \
                      tests/embed_harness.c $(BUILD)/embed/model.c \
                      $(BUILD)/libpprt.a
	$(CC) $(CFLAGS) -Iport/examples -DEMBED_GENERATE=$(EMBED_GENERATE) -o $@ \
	    port/examples/embed.c tests/embed_harness.c $(BUILD)/embed/model.c \
	    $(BUILD)/libpprt.a $(LDLIBS)

# The firmware archive: runtime/, the scalar kernels and port/none/, which
# replaces the hosted port's CPU feature detection. Programs link it with
# the C library's libm. arm-none-eabi-gcc makes enums as small as their
# values allow (pp_status is one byte), so code that includes pprt.h must
# be compiled with the same enum size.
FW_CROSS ?= arm-none-eabi-
FW_CC = $(FW_CROSS)gcc
FW_AR = $(FW_CROSS)ar
FW_NM = $(FW_CROSS)nm
FW_BUILD = build-firmware
FW_CPU = -mcpu=cortex-m7 -mfloat-abi=hard -mfpu=fpv5-d16 -mthumb
FW_CFLAGS = -std=c11 $(FW_CPU) -ffreestanding -O2 $(WARN) \
            -Iruntime -Ikernels -Iport
FW_SRC = $(wildcard runtime/*.c) $(KERNEL_SCALAR) $(wildcard port/none/*.c)
FW_OBJ = $(FW_SRC:%.c=$(FW_BUILD)/%.o)
FW_TOOLS = CC=$(FW_CC) AR=$(FW_AR) NM=$(FW_NM)

firmware: firmware-check

firmware-check: $(FW_BUILD)/libpprt.a $(FW_BUILD)/port/examples/embed.o
	@$(FW_TOOLS) sh tests/check_firmware.sh $(FW_BUILD)/libpprt.a

$(FW_BUILD)/libpprt.a: $(FW_OBJ)
	@rm -f $@
	$(FW_AR) rcs $@ $^

$(FW_BUILD)/%.o: %.c $(wildcard runtime/*.h kernels/*.h port/*.h)
	@mkdir -p $(dir $@)
	$(FW_CC) $(FW_CFLAGS) -c $< -o $@

$(FW_BUILD)/port/examples/embed.o: port/examples/embed.h
$(FW_BUILD)/port/examples/embed.o: FW_CFLAGS += -Iport/examples \
    -DEMBED_GENERATE=$(EMBED_GENERATE)

# The example's Cortex-M7 objects under qemu-arm (see tests/embed_qemu_arm.c).
ifneq ($(wildcard $(EMBED_LLAMA2C)),)
firmware: firmware-qemu
endif

firmware-qemu: firmware-check $(FW_BUILD)/embed-qemu.elf
	@$(FW_TOOLS) sh tests/check_firmware.sh --program $(FW_BUILD)/embed-qemu.elf
	@if command -v qemu-arm >/dev/null; then \
	    sh tests/check_embed.sh --runner "qemu-arm -cpu max" \
	        $(FW_BUILD)/embed-qemu.elf; \
	else \
	    echo "firmware-qemu skipped: install qemu-user for qemu-arm"; \
	    [ "$$CI" != true ]; \
	fi

$(FW_BUILD)/embed/model.o: $(BUILD)/embed/model.c
	@mkdir -p $(dir $@)
	$(FW_CC) $(FW_CFLAGS) -c $< -o $@

$(FW_BUILD)/embed-qemu.elf: tests/embed_qemu_arm.c \
                            $(FW_BUILD)/port/examples/embed.o \
                            $(FW_BUILD)/embed/model.o $(FW_BUILD)/libpprt.a
	$(FW_CC) $(FW_CFLAGS) -Iport/examples -nostartfiles -o $@ $^ -lm -lc -lgcc

# pkg-config metadata. The archive is static, so Libs lists the system
# libraries it needs (libm; pthreads for port/pool.c).
PREFIX ?= /usr/local
DESTDIR ?=
PPRT_VERSION = 0.1.0

install: $(BUILD)/libpprt.a runtime/pprt.h
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(BUILD)/libpprt.a $(DESTDIR)$(PREFIX)/lib/libpprt.a
	install -m 644 runtime/pprt.h $(DESTDIR)$(PREFIX)/include/pprt.h
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
	    'includedir=$${prefix}/include' '' 'Name: pprt' \
	    'Description: LLaMA-family inference with Probe Pruning for small CPUs' \
	    'Version: $(PPRT_VERSION)' 'Cflags: -I$${includedir}' \
	    'Libs: -L$${libdir} -lpprt $(LDLIBS)' \
	    >$(DESTDIR)$(PREFIX)/lib/pkgconfig/pprt.pc
