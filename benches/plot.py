#!/usr/bin/env python3
"""Plots and tabulates the klp-wasm benchmarks from criterion's JSON estimates.

Usage (after `cargo bench`):  python3 benches/plot.py [TARGET_DIR]

Reads target/criterion/**/new/{benchmark,estimates}.json (medians) and
target/criterion/klp_memory.json (written by the patch_ops bench), writes
benches/dispatch.png (per-call ns by dispatch kind and func_stack depth) and prints the
Markdown tables of benches/REPORT.md. Installs matplotlib with pip when it is missing.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# full_id -> bytes per iteration, for benchmarks with a byte throughput.
BYTES = {}


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load(criterion_dir):
    """full_id -> median in ns (criterion's time per iteration)."""
    medians = {}
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(root, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(root, "estimates.json")) as f:
            est = json.load(f)
        medians[bench["full_id"]] = est["median"]["point_estimate"]
        tp = bench.get("throughput") or {}
        if "Bytes" in tp:
            BYTES[bench["full_id"]] = tp["Bytes"]
    return medians


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.2f} ns"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "target")
    cdir = os.path.join(target, "criterion")
    m = load(cdir)
    if not m:
        sys.exit(f"no criterion results under {cdir}: run `cargo bench` first")
    sections = []

    # 1. dispatch
    d = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("dispatch/")}
    if "direct" in d:
        names = [
            ("direct", "direct `call` (notrace twin)"),
            ("slot", "ftrace slot, unpatched"),
            ("slot_patched", "ftrace slot, patched (patch module's instance)"),
            ("stub", "entry stub (trampoline) + slot"),
            ("uninstrumented", "kernel as built (no pass): direct `call`"),
            ("direct_inlining", "direct, Cranelift inliner on"),
            ("slot_inlining", "ftrace slot, Cranelift inliner on"),
        ]
        rows = [
            (label, f"{d[k]:.3f}", f"{d[k] / d['direct']:.2f}×")
            for k, label in names
            if k in d
        ]
        sections.append("### 1. Per-call dispatch\n\n" + table(["kind", "ns/call", "vs direct"], rows))

    # 2. hook shapes
    h = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("hook_shapes/")}
    if h:
        shapes = [
            "direct",
            "call_indirect",
            "call_indirect_other_instance",
            "typed_table",
            "typed_table_non_null",
            "table_get_call_ref",
            "call_ref_global",
            "entry_stub",
        ]
        base = h.get("no_inlining/direct")
        rows = []
        for s in shapes:
            off, on = h.get(f"no_inlining/{s}"), h.get(f"inlining/{s}")
            if off is None or on is None:
                continue
            rows.append((f"`{s}`", f"{off:.3f}", f"{off / base:.2f}×", f"{on:.3f}", f"{on / base:.2f}×"))
        sections.append(
            "### 2. Hook shapes (hand-written WAT)\n\n"
            + table(
                ["shape", "ns/call, inliner off", "vs direct", "ns/call, inliner on", "vs direct (off)"],
                rows,
            )
        )

    # 3. func_stack
    fs = {int(k.split("/")[1]): v for k, v in m.items() if k.startswith("func_stack/")}
    if 1 in fs:
        rows = [(depth, f"{fs[depth]:.3f}", f"{fs[depth] / fs[1]:.3f}×") for depth in sorted(fs)]
        sections.append("### 3. func_stack depth\n\n" + table(["depth", "ns/call", "vs depth 1"], rows))

    # 4. whole kernel
    k = {key.split("/", 1)[1]: v for key, v in m.items() if key.startswith("kernel/")}
    if "uninstrumented" in k:
        rows = [
            (name, fmt_ns(k[name]), f"{k[name] / k['uninstrumented']:.3f}×")
            for name in ["uninstrumented", "instrumented", "patched"]
            if name in k
        ]
        sections.append(
            "### 4. Whole kernel (one round: open/read/close `/proc/cmdline` and a ramfs file)\n\n"
            + table(["kernel", "time/round", "vs uninstrumented"], rows)
        )

    # 5. patch operations
    rows = []
    for n in [1, 10, 100, 1000]:
        en, dis = m.get(f"patch_ops/enable/{n}"), m.get(f"patch_ops/disable/{n}")
        if en is None or dis is None:
            continue
        rows.append((n, fmt_ns(en), fmt_ns(en / n), fmt_ns(dis), fmt_ns(dis / n)))
    if rows:
        sections.append(
            "### 5a. Enable / disable (`echo 1|0 > enabled`)\n\n"
            + table(["functions", "enable", "per function", "disable", "per function"], rows)
        )
    ins = []
    for key, v in m.items():
        if key.startswith("insmod/"):
            _, name, size = key.split("/")
            ins.append((int(size), name, v))
    if ins:
        rows = [
            (f"`{name}`", f"{size:,}", fmt_ns(v), f"{size / v * 1e3:.2f}")
            for size, name, v in sorted(ins)
        ]
        sections.append(
            "### 5b. insmod (load, link, compile, instantiate, init)\n\n"
            + table(["module", "bytes", "insmod", "MB/s"], rows)
        )
    kp = {key.split("/", 1)[1]: v for key, v in m.items() if key.startswith("kernel_passes/")}
    if kp:
        sizes = {k.split("/", 1)[1]: v for k, v in BYTES.items() if k.startswith("kernel_passes/")}
        rows = []
        for name in ["instrument", "kallsyms_raw", "kallsyms_instrumented"]:
            if name not in kp:
                continue
            size = sizes.get(name)
            rate = f"{size / kp[name] * 1e3:.1f}" if size else "?"
            rows.append((f"`{name}`", f"{size:,}" if size else "?", fmt_ns(kp[name]), rate))
        sections.append("### 5c. Kernel passes\n\n" + table(["pass", "input bytes", "time", "MB/s"], rows))
    # The size sweep over synthetic kernels: kernel_passes/synth_<pass>/<input bytes>.
    sweep = {}
    for key, v in kp.items():
        if key.startswith("synth_"):
            name, size = key.split("/")
            sweep.setdefault(int(size), {})[name] = (v, BYTES.get(f"kernel_passes/{key}"))
    if sweep:
        def cell(entry):
            if entry is None:
                return ["—", "—"]
            v, b = entry
            return [fmt_ns(v), f"{b / v * 1e3:.1f}" if b else "?"]

        rows = []
        for size in sorted(sweep):
            e = sweep[size]
            inst = e.get("synth_kallsyms_instrumented")
            inst_bytes = f"{inst[1]:,}" if inst and inst[1] else "?"
            rows.append(
                [f"{size:,}"]
                + cell(e.get("synth_instrument"))
                + cell(e.get("synth_kallsyms_raw"))
                + [inst_bytes]
                + cell(inst)
            )
        sections.append(
            "#### Instrumentation and kallsyms vs kernel size\n\n"
            + table(
                ["kernel bytes", "instrument", "MB/s", "kallsyms (raw)", "MB/s",
                 "instrumented bytes", "kallsyms (instrumented)", "MB/s"],
                rows,
            )
        )
    try:
        mem = json.load(open(os.path.join(cdir, "klp_memory.json")))
        rows = [
            (f"`{name}`", f"{v['module_bytes']:,}", v["cycles"], f"{v['rss_growth_bytes'] / 1024:.0f} KiB", f"{v['bytes_per_cycle'] / 1024:.1f} KiB")
            for name, v in mem.items()
        ]
        sections.append(
            "### 5d. Host memory per insmod/rmmod cycle (RSS, /proc/self/statm)\n\n"
            + table(["module", "bytes", "cycles", "RSS growth", "per cycle"], rows)
        )
    except OSError:
        pass

    # 6. flipping
    fl = {key.split("/", 1)[1]: v for key, v in m.items() if key.startswith("flipping/")}
    if fl:
        rows = []
        if "no_flip" in fl:
            rows.append(("no flip", "1 call", fmt_ns(fl["no_flip"]), f"{1e9 / fl['no_flip'] / 1e6:.0f} M", "—"))
        for calls in [1, 1000]:
            v = fl.get(f"flip_every_{calls}")
            if v is not None:
                rows.append((f"flip every {calls} call{'s' if calls > 1 else ''}", f"{calls} call{'s' if calls > 1 else ''} + 1 flip", fmt_ns(v), f"{calls * 1e9 / v / 1e6:.2f} M", f"{1e9 / v:,.0f}"))
        sections.append(
            "### 6. Calls while flipping (every result checked in the guest)\n\n"
            + table(["mode", "iteration", "time/iteration", "checked calls/s", "flips/s"], rows)
        )

    # 8. engine calls on a fresh kernel and after many insmod/rmmod cycles
    eh = {key.split("/", 1)[1]: v for key, v in m.items() if key.startswith("engine_history/")}
    rows = []
    for op, label in [
        ("cat_proc_cmdline", "`cat /proc/cmdline` (`fs::read_file`)"),
        ("call_sys_close", "one export call (`sys_close(-1)`)"),
        ("read_4_bytes", "`Engine::read` of 4 bytes"),
    ]:
        fresh = eh.get(f"{op}/fresh")
        after = [(k.split("/")[1], v) for k, v in eh.items() if k.startswith(f"{op}/after_")]
        if fresh is not None and after:
            when, v = after[0]
            rows.append((label, fmt_ns(fresh), f"{fmt_ns(v)} ({when})", f"{v / fresh:.2f}×"))
    if rows:
        sections.append(
            "### 8. Engine calls after a long module history\n\n"
            + table(["operation", "fresh kernel", "after the cycles", "after / fresh"], rows)
        )

    print("\n\n".join(sections))

    # The plot: per-call ns by dispatch kind, and by func_stack depth.
    plt = ensure_matplotlib()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    kinds = [
        ("direct", "direct"),
        ("slot", "slot"),
        ("slot_patched", "slot,\npatched"),
        ("stub", "entry\nstub"),
        ("uninstrumented", "no pass"),
        ("direct_inlining", "direct,\ninliner"),
        ("slot_inlining", "slot,\ninliner"),
    ]
    kinds = [(key, label) for key, label in kinds if key in d]
    colors = ["#4c72b0" if "slot" in key else "#999999" if key != "stub" else "#c44e52" for key, _ in kinds]
    ax1.bar([label for _, label in kinds], [d[key] for key, _ in kinds], color=colors)
    for i, (key, _) in enumerate(kinds):
        ax1.text(i, d[key], f"{d[key]:.2f}", ha="center", va="bottom", fontsize=8)
    ax1.set_ylabel("ns per call (median)")
    ax1.set_title("Dispatch of one small kernel function (wasmtime)")
    depths = sorted(fs)
    ax2.bar([str(x) for x in depths], [fs[x] for x in depths], color="#55a868")
    for i, x in enumerate(depths):
        ax2.text(i, fs[x], f"{fs[x]:.2f}", ha="center", va="bottom", fontsize=8)
    ax2.set_xlabel("func_stack depth (0 = unpatched)")
    ax2.set_ylabel("ns per call (median)")
    ax2.set_title("Patches stacked on one function")
    fig.tight_layout()
    out = os.path.join(HERE, "dispatch.png")
    fig.savefig(out, dpi=110)
    print(f"\n(plot written to {os.path.relpath(out)})", file=sys.stderr)


if __name__ == "__main__":
    main()
