#!/usr/bin/env python3
"""Turn the runs of bench/eval_table.sh into eval_table.json, eval_table.md
and eval_ppl_vs_runtime.svg.

Each input line is the --json output of one `pprt perplexity` run. Runtime
reduction is reported two ways. From the multiply-accumulate counts it is
1 - run_flops_share - probe_flops_share, with the classifier included and
the probe counted as a cost. Measured, it is 1 - cpu_seconds / dense
cpu_seconds in the same mode, from the process CPU time of the scoring
loop, because other jobs on a shared machine inflate wall time more.
"""

import argparse
import json
import math
import os
import sys

# Table and plot order; methods not listed here follow in the order they ran.
METHODS = ["dense", "pp", "fullprobe", "wandasp", "flap"]
MODES = [
    ("batch", "batch mode"),
    ("gen0", "generate, prompt 32, no re-probe"),
    ("gen16", "generate, prompt 32, re-probe every 16"),
]
# The reference names full-batch probing "full".
REFERENCE_NAME = {"fullprobe": "full"}
COLORS = {
    "dense": "#000000",
    "pp": "#d62728",
    "fullprobe": "#9467bd",
    "wandasp": "#1f77b4",
    "flap": "#2ca02c",
}
EXTRA_COLORS = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
TOLERANCE = 0.05  # relative PPL difference accepted against the reference


def methods_of(runs):
    """Returns the methods that ran, in table order."""
    ran = []
    for run in runs:
        if run["method"] not in ran:
            ran.append(run["method"])
    return [m for m in METHODS if m in ran] + [m for m in ran if m not in METHODS]


def color_of(method, methods):
    if method in COLORS:
        return COLORS[method]
    extra = [m for m in methods if m not in COLORS]
    return EXTRA_COLORS[extra.index(method) % len(EXTRA_COLORS)]


def mode_key(run):
    if run["mode"] == "batch":
        return "batch"
    return "gen%d" % run["reprobe"]


def load_reference(path):
    """Returns {(method, ratio): ppl} for the wikitext-calibrated rows."""
    with open(path) as f:
        table = json.load(f)
    out = {}
    for row in table["rows"]:
        if row["calib"] not in (None, "wikitext"):
            continue
        out[(row["method"], round(row["ratio"], 2))] = row["ppl"]
    return out


def reference_ppl(reference, method, ratio):
    name = REFERENCE_NAME.get(method, method)
    if method == "dense":
        ratio = 0.0
    return reference.get((name, round(ratio, 2)))


def add_derived(runs, reference):
    dense_seconds = {}
    for run in runs:
        if run["method"] == "dense":
            dense_seconds[mode_key(run)] = run["cpu_seconds"]
    for run in runs:
        key = mode_key(run)
        run["mode_key"] = key
        run["bytes_read_fraction"] = run["weight_bytes_read"] / run["weight_bytes_dense"]
        run["flops_reduction"] = 1.0 - run["run_flops_share"] - run["probe_flops_share"]
        base = dense_seconds.get(key)
        run["cpu_seconds_vs_dense"] = run["cpu_seconds"] / base if base else None
        run["time_reduction"] = 1.0 - run["cpu_seconds"] / base if base else None
        ref = reference_ppl(reference, run["method"], run["prune_ratio"])
        if key == "batch" and ref is not None:
            run["reference_ppl"] = ref
            run["reference_diff"] = run["ppl"] / ref - 1.0
        else:
            run["reference_ppl"] = None
            run["reference_diff"] = None


def find(runs, mode, method, ratio):
    for run in runs:
        if (run["mode_key"] == mode and run["method"] == method
                and abs(run["prune_ratio"] - ratio) < 1e-9):
            return run
    return None


def ratios_of(runs):
    return sorted({round(r["prune_ratio"], 2) for r in runs})


def order_at(values):
    """Method names sorted by ascending PPL."""
    return [m for m, _ in sorted(values.items(), key=lambda kv: kv[1])]


def compare_orders(runs, reference):
    """Per pruned ratio, the methods ranked by PPL in pprt's batch mode and
    in the reference."""
    out = []
    for ratio in ratios_of(runs):
        if ratio == 0:
            continue
        ours, ref = {}, {}
        for method in methods_of(runs):
            if method == "dense":
                continue
            run = find(runs, "batch", method, ratio)
            r = reference_ppl(reference, method, ratio)
            if run is not None and r is not None:
                ours[method] = run["ppl"]
                ref[method] = r
        if ours:
            out.append({
                "ratio": ratio,
                "pprt": order_at(ours),
                "reference": order_at(ref),
                "same": order_at(ours) == order_at(ref),
            })
    return out


def check_threads(runs, path):
    """Compares the table's batch-mode pp run at 0.4 with the same run on
    another thread count."""
    with open(path) as f:
        other = json.loads(f.readline())
    table_run = find(runs, "batch", "pp", 0.4)
    result = {"other_threads": other["threads"], "other_ppl": other["ppl"],
              "other_mean_nll": other["mean_nll"]}
    if table_run is None:
        result["checked"] = False
        return result
    result["checked"] = True
    result["threads"] = table_run["threads"]
    result["table_ppl"] = table_run["ppl"]
    result["table_mean_nll"] = table_run["mean_nll"]
    result["identical"] = (other["ppl"] == table_run["ppl"]
                           and other["mean_nll"] == table_run["mean_nll"])
    return result


# ---- Markdown --------------------------------------------------------------


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def markdown(args, runs, orders, thread_check):
    lines = []
    add = lines.append
    add("# Perplexity and cost of the pruning methods on stories260K")
    add("")
    add("Real stories260K weights (llama2.c checkpoint converted to pprt's int8 "
        "format, tile 4, group 32). Evaluation: the first %d batches of "
        "`tinystories-valid-a.txt` (B = 8 windows of S = 128 tokens, every "
        "position scored; generate mode scores the prompt from the prefill and "
        "then one token per decode step). Calibration: the first 16 batches of "
        "`wikitext-2-test.raw`. Reference: the independent NumPy implementation "
        "with float32 weights, batch mode, wikitext calibration."
        % runs[0]["batches"])
    add("")
    add("Machine: `%s`, %s, %s cores, kernels `%s`, %d worker threads. Load "
        "average (1, 5, 15 min) %s before and %s after the %s s of runs: other "
        "jobs may have shared the CPU, which inflates wall seconds more than "
        "CPU seconds."
        % (args.machine, args.cpu, args.cores, runs[0]["isa"], args.threads,
           args.load_before, args.load_after, args.elapsed))
    add("")
    add("Produced by `%s` at revision `%s` (`-dirty`: with uncommitted "
        "changes). Each run:" % (args.script, args.revision))
    add("")
    add("    " + args.command)
    add("")
    add("with MODE_OPTIONS `--mode batch`, `--mode generate --prompt-len 32 "
        "--reprobe 0` or `--mode generate --prompt-len 32 --reprobe 16`.")
    add("")
    if thread_check.get("checked"):
        add("Thread check: pp at 0.4 in batch mode gives PPL %.6f on %d "
            "thread(s) and %.6f on %d (%s)."
            % (thread_check["table_ppl"], thread_check["threads"],
               thread_check["other_ppl"], thread_check["other_threads"],
               "identical" if thread_check["identical"] else "DIFFERENT"))
        add("")
    add("Columns: *bytes* is weight bytes read over a dense run's (the "
        "embedding row of every token, the classifier and the norms "
        "included); *probe* and *pruned pass* are MACs over a dense run's; "
        "*FLOPs cut* is 1 - pruned pass - probe, negative when the probe "
        "costs more than pruning saves; *wall s* and *CPU s* time the "
        "scoring loop (calibration excluded); *time cut* is 1 - CPU s / "
        "dense CPU s in the same mode.")
    add("")

    for key, title in MODES:
        mode_runs = [r for r in runs if r["mode_key"] == key]
        if not mode_runs:
            continue
        add("## %s" % title.capitalize())
        add("")
        if key == "batch":
            add("| method | ratio | PPL | reference | diff | bytes | probe | "
                "pruned pass | FLOPs cut | wall s | CPU s | time cut |")
            add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        else:
            add("| method | ratio | PPL | batch-mode PPL | bytes | probe | "
                "pruned pass | FLOPs cut | wall s | CPU s | time cut |")
            add("|---|---|---|---|---|---|---|---|---|---|---|")
        for method in methods_of(runs):
            for ratio in ratios_of(mode_runs):
                run = find(mode_runs, key, method, ratio)
                if run is None:
                    continue
                common = ("%.3f | %.4f | %.4f | %.3f | %.2f | %.2f | %s |"
                          % (run["bytes_read_fraction"], run["probe_flops_share"],
                             run["run_flops_share"], run["flops_reduction"],
                             run["seconds"], run["cpu_seconds"],
                             fmt(run["time_reduction"], ".3f")))
                if key == "batch":
                    diff = run["reference_diff"]
                    add("| %s | %.1f | %.4f | %s | %s | %s"
                        % (method, ratio, run["ppl"],
                           fmt(run["reference_ppl"], ".4f"),
                           "-" if diff is None else "%+.1f%%" % (100 * diff),
                           common))
                else:
                    batch_run = find(runs, "batch", method, ratio)
                    add("| %s | %.1f | %.4f | %s | %s"
                        % (method, ratio, run["ppl"],
                           fmt(batch_run["ppl"] if batch_run else None, ".4f"),
                           common))
        add("")

    batch = [r for r in runs if r["mode_key"] == "batch"
             and r["reference_diff"] is not None and r["prune_ratio"] in (0.2, 0.4)]
    if batch:
        add("## Against the reference")
        add("")
        inside = ["%s %.1f (%+.1f%%)" % (r["method"], r["prune_ratio"],
                                         100 * r["reference_diff"])
                  for r in batch if abs(r["reference_diff"]) <= TOLERANCE]
        outside = ["%s %.1f (%+.1f%%)" % (r["method"], r["prune_ratio"],
                                          100 * r["reference_diff"])
                   for r in batch if abs(r["reference_diff"]) > TOLERANCE]
        add("Within %d%% of the reference at 0.2 and 0.4: %s."
            % (100 * TOLERANCE, ", ".join(inside) if inside else "none"))
        add("")
        add("Outside: %s." % (", ".join(outside) if outside else "none"))
        add("")
    if orders:
        add("Methods ranked by PPL, best first (batch mode):")
        add("")
        add("| ratio | pprt | reference | same order |")
        add("|---|---|---|---|")
        for o in orders:
            add("| %.1f | %s | %s | %s |" % (o["ratio"], " < ".join(o["pprt"]),
                                           " < ".join(o["reference"]),
                                           "yes" if o["same"] else "no"))
        add("")
    add("![PPL against runtime reduction](eval_ppl_vs_runtime.svg)")
    add("")
    return "\n".join(lines)


# ---- SVG -------------------------------------------------------------------


def nice_step(span, target=6):
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def log_ticks(lo, hi):
    ticks = []
    decade = 10 ** math.floor(math.log10(lo))
    while decade <= hi:
        for m in (1, 2, 5):
            v = m * decade
            if lo <= v <= hi:
                ticks.append(v)
        decade *= 10
    return ticks


def panel(parts, x0, y0, width, height, runs, xfield, xlabel, title):
    """Draws one scatter panel of PPL (log) against runs[i][xfield]."""
    left, right, top, bottom = 56, 28, 28, 44
    pw, ph = width - left - right, height - top - bottom
    points = [r for r in runs if r[xfield] is not None]
    xs = [r[xfield] for r in points]
    ys = [r["ppl"] for r in points]
    xmin, xmax = min(xs + [0.0]), max(xs + [0.0])
    pad = 0.05 * (xmax - xmin or 1.0)
    xmin, xmax = xmin - pad, xmax + pad
    ymin, ymax = min(ys) / 1.15, max(ys) * 1.15
    lmin, lmax = math.log10(ymin), math.log10(ymax)

    def px(x):
        return x0 + left + (x - xmin) / (xmax - xmin) * pw

    def py(y):
        return y0 + top + (lmax - math.log10(y)) / (lmax - lmin) * ph

    add = parts.append
    add('<text x="%.1f" y="%.1f" font-size="13" text-anchor="middle">%s</text>'
        % (x0 + left + pw / 2, y0 + 16, title))
    add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" '
        'stroke="#444"/>' % (x0 + left, y0 + top, pw, ph))

    step = nice_step(xmax - xmin)
    tick = math.ceil(xmin / step) * step
    while tick <= xmax + 1e-12:
        x = px(tick)
        add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>'
            % (x, y0 + top, x, y0 + top + ph))
        add('<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%g</text>'
            % (x, y0 + top + ph + 14, round(tick, 6)))
        tick += step
    for v in log_ticks(ymin, ymax):
        y = py(v)
        add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>'
            % (x0 + left, y, x0 + left + pw, y))
        add('<text x="%.1f" y="%.1f" font-size="10" text-anchor="end">%g</text>'
            % (x0 + left - 4, y + 3, v))
    add('<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>'
        % (x0 + left + pw / 2, y0 + height - 8, xlabel))
    add('<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" '
        'transform="rotate(-90 %.1f %.1f)">perplexity (log scale)</text>'
        % (x0 + 14, y0 + top + ph / 2, x0 + 14, y0 + top + ph / 2))

    dense = [r for r in points if r["method"] == "dense"]
    if dense:
        y = py(dense[0]["ppl"])
        add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" '
            'stroke-dasharray="4 3" stroke-width="0.8"/>'
            % (x0 + left, y, x0 + left + pw, y))

    methods = methods_of(runs)
    for method in methods:
        mine = sorted((r for r in points if r["method"] == method),
                      key=lambda r: r["prune_ratio"])
        if not mine:
            continue
        color = color_of(method, methods)
        if len(mine) > 1:
            add('<polyline fill="none" stroke="%s" stroke-width="1.5" '
                'points="%s"/>' % (color, " ".join(
                    "%.1f,%.1f" % (px(r[xfield]), py(r["ppl"])) for r in mine)))
        for r in mine:
            add('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>'
                % (px(r[xfield]), py(r["ppl"]), color))
            if r["prune_ratio"] > 0:
                add('<text x="%.1f" y="%.1f" font-size="9" fill="%s">%g</text>'
                    % (px(r[xfield]) + 5, py(r["ppl"]) - 4, color,
                       r["prune_ratio"]))


def svg(runs):
    batch = [r for r in runs if r["mode_key"] == "batch"]
    width, height = 960, 400
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" font-family="sans-serif">' % (width, height + 30,
                                                               width, height + 30),
             '<rect width="100%" height="100%" fill="white"/>']
    panel(parts, 0, 0, width / 2, height, batch, "flops_reduction",
          "runtime reduction from MAC counts: 1 - pruned pass - probe",
          "stories260K, batch mode: PPL vs FLOPs reduction")
    panel(parts, width / 2, 0, width / 2, height, batch, "time_reduction",
          "runtime reduction measured: 1 - CPU seconds / dense CPU seconds",
          "stories260K, batch mode: PPL vs measured CPU time reduction")
    x = 60
    methods = methods_of(runs)
    for method in methods:
        parts.append('<circle cx="%d" cy="%d" r="4" fill="%s"/>'
                     % (x, height + 12, color_of(method, methods)))
        parts.append('<text x="%d" y="%d" font-size="11">%s</text>'
                     % (x + 8, height + 16, method))
        x += 110
    parts.append('<text x="%d" y="%d" font-size="10" fill="#555">labels: '
                 'pruning ratio</text>' % (x, height + 16))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--machine", required=True)
    p.add_argument("--cpu", required=True)
    p.add_argument("--cores", required=True)
    p.add_argument("--load-before", default="unknown")
    p.add_argument("--load-after", default="unknown")
    p.add_argument("--elapsed", default="unknown")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--other-threads", required=True,
                   help="--json output of pp at 0.4 on another thread count")
    p.add_argument("--command", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--revision", default="unknown")
    args = p.parse_args()

    with open(args.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        sys.exit("eval_report: no runs in %s" % args.runs)
    reference = load_reference(args.reference)
    add_derived(runs, reference)
    thread_check = check_threads(runs, args.other_threads)
    if thread_check.get("checked") and not thread_check["identical"]:
        sys.exit("eval_report: pp at 0.4 gives PPL %.6f on %d thread(s) but "
                 "%.6f on %d; the result depends on the thread count"
                 % (thread_check["table_ppl"], thread_check["threads"],
                    thread_check["other_ppl"], thread_check["other_threads"]))
    orders = compare_orders(runs, reference)

    result = {
        "weights": "stories260K (real), pprt int8, tile 4, group 32",
        "protocol": {"eval": "tinystories-valid-a.txt", "batches": runs[0]["batches"],
                     "seq_len": 128, "batch": 8, "calibration": "wikitext-2-test.raw",
                     "calibration_batches": 16},
        "machine": {"arch": args.machine, "cpu": args.cpu, "cores": args.cores,
                    "isa": runs[0]["isa"], "threads": args.threads,
                    "load_before": args.load_before, "load_after": args.load_after,
                    "elapsed_seconds": args.elapsed},
        "command": args.command,
        "script": args.script,
        "revision": args.revision,
        "thread_check": thread_check,
        "reference_tolerance": TOLERANCE,
        "method_order": orders,
        "runs": runs,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "eval_table.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "eval_table.md"), "w") as f:
        f.write(markdown(args, runs, orders, thread_check))
    with open(os.path.join(args.out, "eval_ppl_vs_runtime.svg"), "w") as f:
        f.write(svg(runs))
    print("eval_report: wrote %s/eval_table.json, eval_table.md and "
          "eval_ppl_vs_runtime.svg" % args.out)


if __name__ == "__main__":
    main()
