#!/usr/bin/env bash
# pi.sh - build pprt natively and benchmark it on a Raspberry Pi (or on any
# Linux machine, skipping the Pi-only parts), then write one JSON and one
# Markdown report under bench/results/.
#
#   bench/pi.sh [--quick] [--no-build] [--threads N] [--shapes "A B ..."]
#               [--work DIR] [--out DIR]
#
#   --quick       short prompts and decodes, the kernel benchmark's --quick
#                 sizes: the whole run takes a few minutes on an x86-64 CI
#                 machine, so CI can keep this script working
#   --no-build    use the existing build/ instead of running make
#   --threads N   the multi-thread runs use N threads (default: online CPUs)
#   --shapes LIST synthetic shapes for `pprt synth` (default: stories15M
#                 stories110M tinyllama-1.1b)
#   --work DIR    converted and synthetic models (default build/pi); they are
#                 reused by later runs
#   --out DIR     reports (default bench/results)
#
# What it records: the board (Pi 4 or Pi 5 from the device tree), the CPU
# and its SIMD features from /proc/cpuinfo, and the CPU frequency governor.
# On a Pi it adds the SoC temperature and throttling flags (vcgencmd). It
# also records memory (free -m), the storage the repository lives on (SD
# card, eMMC, NVMe, USB), and the kernel variant and thread count that pprt
# reports for every run.
#
# What it runs, each step skipped with a message when its command is missing:
#   kernels   bench_kernels: gemm_q8 of every kernel variant, read bandwidth
#   real      stories260K (converted from PPRT_SHARED, default ../shared):
#             greedy text, prefill and decode speed dense and with Probe
#             Pruning at ratio 0.4, perplexity dense and pruned
#   synthetic `pprt synth` models of real shapes with random weights: speed
#             and bytes read per token only, their text means nothing
#   isa       every kernel variant of this architecture on the first shape
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1

quick=0
build=1
threads=$(nproc 2>/dev/null || echo 1)
shapes="stories15M stories110M tinyllama-1.1b"
work=build/pi
out=bench/results
shared=${PPRT_SHARED:-../shared}

usage() {
    sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; shift ;;
    --no-build) build=0; shift ;;
    --threads) threads=${2:?--threads needs a number}; shift 2 ;;
    --shapes) shapes=${2:?--shapes needs a list}; shift 2 ;;
    --work) work=${2:?--work needs a folder}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "pi.sh: unknown option '$1'; see bench/pi.sh --help" >&2; exit 2 ;;
    esac
done
case $threads in
'' | *[!0-9]* | 0) echo "pi.sh: invalid --threads '$threads': expected a positive integer" >&2; exit 2 ;;
esac

# Tokens per run: (prompt, decode) for small shapes and for shapes of 1B
# parameters or more.
if [ "$quick" -eq 1 ]; then
    prompt=32; decode=16; big_prompt=16; big_decode=8; ppl_batches=4
else
    prompt=128; decode=64; big_prompt=128; big_decode=32; ppl_batches=16
fi

mkdir -p "$work" "$out" || exit 1
stamp=$(date -u +%Y%m%d-%H%M%S)
logs="$work/logs-$stamp"
mkdir -p "$logs"
records="$logs/records.jsonl"   # one JSON object per step
: >"$records"

say() { echo "pi.sh: $*" >&2; }

# ---- JSON helpers ---------------------------------------------------------

json_string() {
    printf '"%s"' "$(printf '%s' "$1" | tr '\n\t\r' '   ' |
                     sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# Prints the value of a top-level key of a one-line JSON object (strings
# without their quotes).
json_field() {
    printf '%s\n' "$1" |
        sed -n "s/.*\"$2\": *\(\"[^\"]*\"\|[^,}]*\).*/\1/p" | head -n 1 | tr -d '"'
}

# Prints a field of a step record itself, not of its result.
record_field() {
    json_field "${1%%\"result\":*}" "$2"
}

# Appends a step record: STEP LABEL STATUS MESSAGE COMMAND RESULT_JSON.
record() {
    printf '{"step": %s, "model": %s, "status": %s, "message": %s, "command": %s, "result": %s}\n' \
        "$(json_string "$1")" "$(json_string "$2")" "$(json_string "$3")" \
        "$(json_string "$4")" "$(json_string "$5")" "${6:-null}" >>"$records"
}

skip() {
    say "skipped $1 for $2: $3"
    record "$1" "$2" skipped "$3" "" null
}

# Runs a command that prints one JSON object on its last stdout line and
# records it: run STEP LABEL COMMAND...
run() {
    local step=$1 label=$2
    shift 2
    local log="$logs/$step-${label//\//_}-$(( $(wc -l <"$records") + 1 )).log"
    say "$step $label: $*"
    local output
    output=$("$@" 2>"$log")
    local status=$?
    local result
    result=$(printf '%s\n' "$output" | grep '^{' | tail -n 1)
    if [ "$status" -ne 0 ] || [ -z "$result" ]; then
        local message
        message=$(grep -v '^$' "$log" | tail -n 1)
        say "  failed (exit $status): $message"
        record "$step" "$label" failed "exit $status: $message" "$*" null
        return 1
    fi
    record "$step" "$label" ok "" "$*" "$result"
}

# ---- The machine ----------------------------------------------------------

read_file() { [ -r "$1" ] && tr -d '\0' <"$1"; }

# Case-sensitive: x86 has "model" (a number) where a Pi has "Model".
cpuinfo_value() {
    grep -m 1 "^$1[[:space:]]*:" /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*:[[:space:]]*//'
}

board=$(read_file /proc/device-tree/model)
[ -n "$board" ] || board=$(cpuinfo_value Model)
if [ -z "$board" ]; then
    vendor=$(read_file /sys/devices/virtual/dmi/id/sys_vendor)
    product=$(read_file /sys/devices/virtual/dmi/id/product_name)
    board=$(echo "$vendor $product" | sed 's/^ *//; s/ *$//')
fi
[ -n "$board" ] || board="unknown (no device tree or DMI model)"

case $board in
*"Raspberry Pi 5"* | *"Compute Module 5"*) pi=pi5 ;;
*"Raspberry Pi 4"* | *"Compute Module 4"* | *"Raspberry Pi 400"*) pi=pi4 ;;
*"Raspberry Pi"*) pi=other-pi ;;
*) pi=none ;;
esac

arch=$(uname -m)
cpu=$(cpuinfo_value "model name")
if [ -z "$cpu" ]; then
    # Arm cores name themselves by part number (MIDR_EL1.PartNum).
    case $(cpuinfo_value "CPU part") in
    0xd03) cpu="Cortex-A53" ;;
    0xd08) cpu="Cortex-A72" ;;
    0xd0b) cpu="Cortex-A76" ;;
    0xd05) cpu="Cortex-A55" ;;
    "") cpu=unknown ;;
    *) cpu="Arm CPU part $(cpuinfo_value "CPU part")" ;;
    esac
fi
cores=$(nproc 2>/dev/null || echo 1)

# SIMD features the kernels select on.
if [ "$arch" = aarch64 ]; then
    flags=" $(cpuinfo_value Features) "
    wanted="asimd asimddp i8mm"
    isas="scalar neon dotprod"
else
    flags=" $(cpuinfo_value flags) "
    wanted="avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni"
    isas="scalar avx2 vnni"
fi
features=""
for f in $wanted; do
    case $flags in *" $f "*) features="$features $f" ;; esac
done
features=${features# }

governor=$(read_file /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor)
max_khz=$(read_file /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq)
max_mhz=${max_khz:+$((max_khz / 1000))}

soc_state() {
    if command -v vcgencmd >/dev/null 2>&1; then
        echo "$(vcgencmd measure_temp 2>/dev/null) $(vcgencmd get_throttled 2>/dev/null)"
    fi
}
soc_before=$(soc_state)
[ "$pi" != none ] && [ -z "$soc_before" ] &&
    say "vcgencmd not found: temperature and throttling are not recorded"

memory=$(free -m 2>/dev/null | awk '/^Mem:/ { print $2, $7 }')
memory_total_mb=${memory% *}
memory_available_mb=${memory#* }
free_m=$(free -m 2>/dev/null)

# The block device under the repository, and what kind of storage it is.
storage_source=$(findmnt -n -o SOURCE --target "$repo" 2>/dev/null | head -n 1)
storage_fstype=$(findmnt -n -o FSTYPE --target "$repo" 2>/dev/null | head -n 1)
storage_disk=""
storage_kind=unknown
if [ -b "$storage_source" ]; then
    storage_disk=$(lsblk -no PKNAME "$storage_source" 2>/dev/null | head -n 1)
    [ -n "$storage_disk" ] || storage_disk=$(basename "$storage_source")
    transport=$(lsblk -dno TRAN "/dev/$storage_disk" 2>/dev/null | tr -d ' ')
    case $storage_disk in
    mmcblk*)
        # The MMC core names the card type: SD for SD cards, MMC for eMMC.
        case $(read_file "/sys/block/$storage_disk/device/type") in
        MMC) storage_kind=eMMC ;;
        *) storage_kind="SD card" ;;
        esac ;;
    nvme*) storage_kind=NVMe ;;
    vd*) storage_kind="virtio disk (virtual machine)" ;;
    *) [ "$transport" = usb ] && storage_kind="USB drive" || storage_kind=${transport:-disk} ;;
    esac
    storage_model=$(lsblk -dno MODEL "/dev/$storage_disk" 2>/dev/null | sed 's/ *$//')
else
    storage_kind="${storage_fstype:-unknown} filesystem (no block device)"
    storage_model=""
fi

os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") )
compiler=$(${CC:-cc} --version 2>/dev/null | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (modified)"
load_before=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)

say "board: $board ($pi); $cpu x $cores, $arch; features: ${features:-none}"
say "memory: ${memory_total_mb} MB total, ${memory_available_mb} MB available; storage: $storage_kind${storage_model:+ ($storage_model)} at $storage_source"

# ---- Build ------------------------------------------------------------------

if [ "$build" -eq 1 ]; then
    say "building with make -j$cores"
    if ! make -j"$cores" >"$logs/make.log" 2>&1; then
        say "make failed; the end of $logs/make.log:"
        tail -n 20 "$logs/make.log" >&2
        exit 1
    fi
fi
pprt=build/pprt
if [ ! -x "$pprt" ]; then
    say "$pprt not found; run make first or drop --no-build"
    exit 1
fi

has_command() { "$pprt" "$1" --help >/dev/null 2>&1; }

# ---- Kernels ---------------------------------------------------------------

bench_kernels=""
for candidate in build/bench/bench_kernels bench/bench_kernels; do
    [ -x "$candidate" ] && { bench_kernels=$candidate; break; }
done
if [ -z "$bench_kernels" ] && [ -f bench/bench_kernels.c ]; then
    # NOTE: built here with the library's include folders until the
    # Makefile has a rule for it.
    say "building bench_kernels from bench/bench_kernels.c"
    if ${CC:-cc} -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iruntime -Ikernels -Iport \
        -o "$work/bench_kernels" bench/bench_kernels.c build/libpprt.a -lm -lpthread \
        >"$logs/bench_kernels-build.log" 2>&1; then
        bench_kernels=$work/bench_kernels
    else
        say "building bench_kernels failed; see $logs/bench_kernels-build.log"
    fi
fi
kernels_json="$logs/kernels.json"
if [ -n "$bench_kernels" ]; then
    say "kernels: $bench_kernels"
    quick_flag=""
    [ "$quick" -eq 1 ] && quick_flag=--quick
    if "$bench_kernels" --json "$kernels_json" --threads "$threads" $quick_flag \
        >"$logs/kernels.txt" 2>&1 && [ -s "$kernels_json" ]; then
        record kernels bench_kernels ok "table in $logs/kernels.txt" \
            "$bench_kernels --json FILE --threads $threads $quick_flag" \
            "$(tr -d '\n' <"$kernels_json")"
    else
        record kernels bench_kernels failed "$(tail -n 1 "$logs/kernels.txt")" "$bench_kernels" null
    fi
else
    skip kernels bench_kernels "no bench_kernels binary or source"
fi

# ---- Benchmarks of one model ----------------------------------------------

# bench_model LABEL FILE PROMPT DECODE [EXTRA PP OPTIONS...]
bench_model() {
    local label=$1 file=$2 p=$3 d=$4
    shift 4
    if ! has_command bench; then
        # A pprt without the bench command: decode speed from generate
        # (greedy, generated tokens only).
        run decode "$label" "$pprt" generate -m "$file" -p "Once upon a time" \
            -n "$d" --temp 0 --method dense --json -t "$threads"
        return
    fi
    run speed "$label" "$pprt" bench -m "$file" --prompt "$p" --decode "$d" \
        --method dense -t 1 --json
    if [ "$threads" -gt 1 ]; then
        run speed "$label" "$pprt" bench -m "$file" --prompt "$p" --decode "$d" \
            --method dense -t "$threads" --json
    fi
    run speed "$label" "$pprt" bench -m "$file" --prompt "$p" --decode "$d" \
        --method pp --prune 0.4 "$@" -t "$threads" --json
}

# ---- Real model ------------------------------------------------------------

real=$shared/models/stories260K/stories260K.bin
tokenizer=$shared/models/stories260K/tok512.bin
eval_text=$shared/data/tinystories-valid-a.txt
calib_text=$shared/data/wikitext-2-test.raw
if [ -f "$real" ] && [ -f "$tokenizer" ]; then
    real_model=$work/stories260K.ppm
    if "$pprt" convert --llama2c "$real" --tokenizer "$tokenizer" -o "$real_model" \
        >"$logs/convert.log" 2>&1; then
        run generate stories260K "$pprt" generate -m "$real_model" \
            -p "Once upon a time" -n 32 --temp 0 --method dense --json
        calib=()
        [ -f "$calib_text" ] && calib=(--calib "$calib_text")
        bench_model stories260K "$real_model" "$prompt" "$decode" "${calib[@]}"
        if [ -f "$eval_text" ] && has_command perplexity; then
            run perplexity stories260K "$pprt" perplexity -m "$real_model" \
                -f "$eval_text" --batches "$ppl_batches" --method dense -t "$threads" --json
            run perplexity stories260K "$pprt" perplexity -m "$real_model" \
                -f "$eval_text" --batches "$ppl_batches" --method pp --prune 0.4 \
                "${calib[@]}" -t "$threads" --json
        else
            skip perplexity stories260K "$eval_text or pprt perplexity missing"
        fi
    else
        record convert stories260K failed "$(tail -n 1 "$logs/convert.log")" \
            "$pprt convert --llama2c $real" null
        say "converting $real failed; see $logs/convert.log"
    fi
else
    skip real stories260K "$real not found; set PPRT_SHARED to the shared data folder"
fi

# ---- Synthetic shapes -------------------------------------------------------

first_synthetic=""
if ! has_command synth; then
    for shape in $shapes; do
        skip synthetic "$shape" "this pprt has no synth command"
    done
else
    for shape in $shapes; do
        file=$work/$shape.ppm
        # A model left by another pprt version is made again.
        if [ ! -s "$file" ] || ! "$pprt" info -m "$file" >/dev/null 2>&1; then
            say "synth $shape -> $file"
            if ! "$pprt" synth --shape "$shape" -o "$file" >"$logs/synth-$shape.log" 2>&1; then
                rm -f "$file"
                record synth "$shape" failed "$(tail -n 1 "$logs/synth-$shape.log")" \
                    "$pprt synth --shape $shape" null
                continue
            fi
        fi
        size_mb=$(( $(stat -c %s "$file") / 1048576 ))
        if [ -n "$memory_available_mb" ] && [ "$size_mb" -gt "$memory_available_mb" ]; then
            skip speed "$shape" "the model is $size_mb MB, more than the $memory_available_mb MB of available memory"
            continue
        fi
        [ -n "$first_synthetic" ] || first_synthetic=$file
        case $shape in
        tinyllama* | llama2-7b*) bench_model "$shape" "$file" "$big_prompt" "$big_decode" ;;
        *) bench_model "$shape" "$file" "$prompt" "$decode" ;;
        esac
    done
fi

# ---- Kernel variants ----------------------------------------------------------

isa_model=${first_synthetic:-${real_model:-}}
if [ -n "$isa_model" ] && has_command bench; then
    for isa in $isas; do
        run isa "$(basename "$isa_model" .ppm)" env PPRT_ISA="$isa" \
            "$pprt" bench -m "$isa_model" --prompt "$prompt" --decode "$decode" \
            --method dense -t 1 --json
    done
else
    skip isa all "no model or no bench command to compare kernel variants on"
fi

# ---- Reports -------------------------------------------------------------------

soc_after=$(soc_state)
load_after=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)
host=$(hostname -s 2>/dev/null)
name="pi-${host:-host}-$stamp"
json_out="$out/$name.json"
md_out="$out/$name.md"

{
    echo "{"
    echo "  \"script\": \"bench/pi.sh\", \"quick\": $([ "$quick" -eq 1 ] && echo true || echo false),"
    echo "  \"date_utc\": $(json_string "$stamp"), \"commit\": $(json_string "$commit"),"
    echo "  \"machine\": {"
    echo "    \"board\": $(json_string "$board"), \"raspberry_pi\": $(json_string "$pi"),"
    echo "    \"arch\": $(json_string "$arch"), \"cpu\": $(json_string "$cpu"), \"cores\": $cores,"
    echo "    \"simd_features\": $(json_string "$features"),"
    echo "    \"governor\": $(json_string "$governor"), \"max_mhz\": $(json_string "$max_mhz"),"
    echo "    \"soc_before\": $(json_string "$soc_before"), \"soc_after\": $(json_string "$soc_after"),"
    echo "    \"memory_total_mb\": $(json_string "$memory_total_mb"), \"memory_available_mb\": $(json_string "$memory_available_mb"),"
    echo "    \"free_m\": $(json_string "$free_m"),"
    echo "    \"storage\": $(json_string "$storage_kind"), \"storage_device\": $(json_string "$storage_source"),"
    echo "    \"storage_model\": $(json_string "$storage_model"), \"filesystem\": $(json_string "$storage_fstype"),"
    echo "    \"os\": $(json_string "$os"), \"kernel\": $(json_string "$(uname -r)"),"
    echo "    \"compiler\": $(json_string "$compiler"),"
    echo "    \"load_average_before\": $(json_string "$load_before"), \"load_average_after\": $(json_string "$load_after")"
    echo "  },"
    echo "  \"threads\": $threads,"
    echo "  \"steps\": ["
    sed -e 's/^/    /' -e '$!s/$/,/' "$records"
    echo "  ]"
    echo "}"
} >"$json_out"

{
    echo "# pprt on $board"
    echo
    echo "Written by \`bench/pi.sh$([ "$quick" -eq 1 ] && echo " --quick")\` on $stamp (UTC), commit $commit."
    echo "Synthetic models have random weights: their speed and bytes per token"
    echo "are real, their text and perplexity are not."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| board | $board (Raspberry Pi: $pi) |"
    echo "| CPU | $cpu, $cores cores, $arch |"
    echo "| SIMD features | ${features:-none} |"
    echo "| governor, max clock | ${governor:-not reported}, ${max_mhz:-not reported}${max_mhz:+ MHz} |"
    echo "| SoC before / after | ${soc_before:-not recorded (no vcgencmd)} / ${soc_after:-not recorded} |"
    echo "| memory | $memory_total_mb MB total, $memory_available_mb MB available at start |"
    echo "| storage | $storage_kind${storage_model:+ ($storage_model)}, $storage_source, $storage_fstype |"
    echo "| OS, kernel | $os, $(uname -r) |"
    echo "| compiler | $compiler |"
    echo "| load average before / after | $load_before / $load_after |"
    echo
    echo "## Prefill and decode"
    echo
    echo "| model | weights | method | ratio | kernels | threads | prompt | prefill tok/s | decode | decode tok/s | MB read per token | of dense |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    grep '"step": "speed", .*"status": "ok"' "$records" | while IFS= read -r line; do
        r=${line#*\"result\": }
        per=$(json_field "$r" decode_weight_bytes_per_token)
        dense=$(json_field "$r" decode_dense_bytes_per_token)
        synthetic=$(json_field "$r" synthetic_weights)
        echo "| $(record_field "$line" model) | $([ "$synthetic" = true ] && echo synthetic || echo real) | $(json_field "$r" method) | $(json_field "$r" prune_ratio) | $(json_field "$r" isa) | $(json_field "$r" threads) | $(json_field "$r" prompt_tokens) | $(json_field "$r" prefill_tokens_per_second) | $(json_field "$r" decode_tokens) | $(json_field "$r" decode_tokens_per_second) | $(awk -v b="$per" 'BEGIN { printf "%.2f", b / 1e6 }') | $(awk -v b="$per" -v d="$dense" 'BEGIN { if (d > 0) printf "%.0f%%", 100 * b / d }') |"
    done
    echo
    echo "## Kernel variants (dense, 1 thread)"
    echo
    echo "| model | kernels | status | prefill tok/s | decode tok/s |"
    echo "|---|---|---|---|---|"
    grep '"step": "isa"' "$records" | while IFS= read -r line; do
        r=${line#*\"result\": }
        command=$(record_field "$line" command)
        isa=$(printf '%s\n' "$command" | sed -n 's/.*PPRT_ISA=\([a-z0-9]*\).*/\1/p')
        if [ "$(record_field "$line" status)" = ok ]; then
            echo "| $(record_field "$line" model) | $isa | ok | $(json_field "$r" prefill_tokens_per_second) | $(json_field "$r" decode_tokens_per_second) |"
        else
            echo "| $(record_field "$line" model) | $isa | $(record_field "$line" message) | | |"
        fi
    done
    echo
    echo "## Real model: text and perplexity"
    echo
    grep '"step": "generate", .*"status": "ok"' "$records" | while IFS= read -r line; do
        r=${line#*\"result\": }
        echo "Greedy text from \"Once upon a time\" (dense, $(json_field "$r" isa)):"
        echo
        echo "> Once upon a time$(printf '%s\n' "$r" | sed -n 's/^{"text": "\(\([^"\\]\|\\.\)*\)".*/\1/p')"
        echo
    done
    echo "| method | ratio | perplexity | tokens | weight bytes read / dense | seconds | kernels | threads |"
    echo "|---|---|---|---|---|---|---|---|"
    grep '"step": "perplexity", .*"status": "ok"' "$records" | while IFS= read -r line; do
        r=${line#*\"result\": }
        echo "| $(json_field "$r" method) | $(json_field "$r" prune_ratio) | $(json_field "$r" ppl) | $(json_field "$r" tokens) | $(awk -v b="$(json_field "$r" weight_bytes_read)" -v d="$(json_field "$r" weight_bytes_dense)" 'BEGIN { if (d > 0) printf "%.0f%%", 100 * b / d }') | $(json_field "$r" seconds) | $(json_field "$r" isa) | $(json_field "$r" threads) |"
    done
    echo
    if [ -s "$kernels_json" ]; then
        echo "## Kernels"
        echo
        echo "bench_kernels output (GEMV weight GB/s next to the measured read bandwidth):"
        echo
        echo '```'
        cat "$logs/kernels.txt"
        echo '```'
        echo
    fi
    echo "## Skipped and failed steps"
    echo
    if grep -q '"status": "\(skipped\|failed\)"' "$records"; then
        grep '"status": "\(skipped\|failed\)"' "$records" | while IFS= read -r line; do
            echo "- $(record_field "$line" step) $(record_field "$line" model): $(record_field "$line" status): $(record_field "$line" message)"
        done
    else
        echo "None."
    fi
} >"$md_out"

failed=$(grep -c '"status": "failed"' "$records")
say "wrote $json_out and $md_out ($failed failed steps; logs in $logs)"
[ "$failed" -eq 0 ]
