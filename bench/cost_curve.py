#!/usr/bin/env python3
"""The cost curve (issue 11): ns/frame per frame class and the switch state's RSS and
reload times against the size of the switch, drawn from one run of

    VSWITCH_SCALES= cargo bench -p vswitch --bench pipeline -- 'process/'
    cargo test --release -p vswitch --test reload_scale -- --ignored --nocapture > scale.txt

Usage:
    bench/cost_curve.py --criterion target/criterion --scale scale.txt \
        [--baseline-criterion DIR --baseline-scale FILE] --out docs/img/cost_curve.png

--criterion is criterion's output directory (CRITERION_HOME, default target/criterion);
the medians of `process/<size>/<class>` are read from its `*/new/estimates.json`.
--scale is the output of the reload_scale benchmark (its `SCALE pure ...` and
`SCALE daemon ...` lines). The baseline options draw a second run (e.g. of main) dashed.
Prints the tables in Markdown. Needs matplotlib (Debian: python3-matplotlib).
"""

import argparse
import json
import os
import sys

SIZES = ["16p-100g-1k", "256p-10kg-64k", "1024p-100kg-1M"]
SIZE_LABELS = ["16 ports\n100 groups\n1k MACs", "256 ports\n10k groups\n64k MACs",
               "1024 ports\n100k groups\n1M MACs"]


def read_criterion(root):
    """{(size, class): median ns} of the process/<size>/<class> benchmarks under root."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            meta = json.load(f)
        if meta.get("group_id") != "process":
            continue
        parts = meta.get("function_id", "").split("/")
        if len(parts) != 2 or parts[0] not in SIZES:
            continue
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        out[(parts[0], parts[1])] = est["median"]["point_estimate"]
    return out


def read_scale(path):
    """{(kind, size): {key: value}} from the SCALE lines of the reload_scale benchmark."""
    out = {}
    if not path:
        return out
    with open(path) as f:
        for line in f:
            i = line.find("SCALE ")
            if i < 0:
                continue
            words = line[i:].split()
            kind = words[1]
            kv = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            size = kv.get("size")
            vals = {}
            for k, v in kv.items():
                try:
                    vals[k] = float(v)
                except ValueError:
                    vals[k] = v
            out[(kind, size)] = vals
    return out


def classes_of(ns):
    seen = []
    for (_size, cls) in sorted(ns, key=lambda k: k[1]):
        if cls not in seen:
            seen.append(cls)
    return seen


def markdown(ns, scale, base_ns, base_scale):
    lines = []
    head = "| class | " + " | ".join(SIZES) + " | largest / smallest |"
    lines.append(head)
    lines.append("|---" * (len(SIZES) + 2) + "|")
    for cls in classes_of(ns):
        cells = []
        for s in SIZES:
            v = ns.get((s, cls))
            b = base_ns.get((s, cls))
            cell = "–" if v is None else f"{v:.1f}"
            if b is not None:
                cell += f" (main {b:.1f})"
            cells.append(cell)
        lo, hi = ns.get((SIZES[0], cls)), ns.get((SIZES[-1], cls))
        ratio = f"{hi / lo:.2f}×" if lo and hi else "–"
        lines.append(f"| `{cls}` | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    rows = [
        ("pure", "rss_state_mib", "RSS of the state, MiB"),
        ("pure", "startup_ms", "start-up (parse + build), ms"),
        ("pure", "noop_reload_ms", "`Switch::reload`, unchanged config, ms"),
        ("pure", "full_reload_ms", "full reload (parse + `Switch::reload` of an edited file), ms"),
        ("pure", "rss_after_1_mib", "RSS after 1 reload, MiB"),
        ("pure", "rss_after_n_mib", "RSS after N reloads, MiB"),
        ("daemon", "start_ms", "daemon: load + `Daemon::start`, ms"),
        ("daemon", "first_reload_ms", "daemon: `ctl reload`, first after start (parsed), ms"),
        ("daemon", "noop_reload_ms", "daemon: `ctl reload`, unchanged file, ms"),
        ("daemon", "full_reload_ms", "daemon: `ctl reload`, edited file, ms"),
        ("daemon", "rss_start_mib", "daemon RSS after start (no learned MACs), MiB"),
        ("daemon", "rss_after_n_full_mib", "daemon RSS after N edited reloads, MiB"),
    ]
    lines.append("| | " + " | ".join(SIZES) + " |")
    lines.append("|---" * (len(SIZES) + 1) + "|")
    for kind, key, label in rows:
        cells = []
        for s in SIZES:
            v = scale.get((kind, s), {}).get(key)
            b = base_scale.get((kind, s), {}).get(key)
            cell = "–" if v is None else f"{v:.1f}"
            if b is not None:
                cell += f" (main {b:.1f})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(ns, scale, base_ns, base_scale, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(SIZES)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    cmap = plt.get_cmap("tab10")
    for i, cls in enumerate(classes_of(ns)):
        ys = [ns.get((s, cls)) for s in SIZES]
        ax1.plot(xs, ys, marker="o", color=cmap(i % 10), label=cls)
        if base_ns:
            bs = [base_ns.get((s, cls)) for s in SIZES]
            ax1.plot(xs, bs, linestyle="--", color=cmap(i % 10), alpha=0.5)
    ax1.axhline(100, color="red", linewidth=0.8, linestyle=":")
    ax1.text(xs[-1], 101, "100 ns", color="red", ha="right", va="bottom", fontsize=8)
    ax1.set_xticks(xs, SIZE_LABELS, fontsize=8)
    ax1.set_ylabel("ns/frame (median, one core)")
    title = "pipeline::process per frame class"
    if base_ns:
        title += " (dashed: main)"
    ax1.set_title(title)
    ax1.set_ylim(bottom=0)
    ax1.legend(fontsize=7, ncol=2)
    ax1.grid(alpha=0.3)

    rss = [scale.get(("pure", s), {}).get("rss_state_mib") for s in SIZES]
    ax2.plot(xs, rss, marker="s", color="black", label="RSS of the state, MiB")
    ax2.axhline(64, color="red", linewidth=0.8, linestyle=":")
    ax2.set_ylabel("RSS, MiB")
    ax2.set_yscale("log")
    ax2.set_xticks(xs, SIZE_LABELS, fontsize=8)
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    for key, kind, label, color in [
        ("startup_ms", "pure", "start-up (parse + build)", "tab:blue"),
        ("full_reload_ms", "pure", "full reload (parse + apply)", "tab:orange"),
        ("noop_reload_ms", "daemon", "daemon: reload of an unchanged file", "tab:green"),
    ]:
        ys = [scale.get((kind, s), {}).get(key) for s in SIZES]
        ax3.plot(xs, ys, marker="^", color=color, label=label + ", ms")
        if base_scale:
            bs = [base_scale.get((kind, s), {}).get(key) for s in SIZES]
            ax3.plot(xs, bs, linestyle="--", color=color, alpha=0.5)
    ax3.set_ylabel("ms")
    ax3.set_yscale("log")
    h1, l1 = ax2.get_legend_handles_labels()
    h3, l3 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h3, l1 + l3, fontsize=7, loc="upper left")
    ax2.set_title("state: RSS (64 MiB dotted), start-up and reloads")
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--scale")
    ap.add_argument("--baseline-criterion")
    ap.add_argument("--baseline-scale")
    ap.add_argument("--out", default="docs/img/cost_curve.png")
    a = ap.parse_args()
    ns = read_criterion(a.criterion)
    if not ns:
        sys.exit(f"no process/<size>/<class> results under {a.criterion}")
    scale = read_scale(a.scale)
    base_ns = read_criterion(a.baseline_criterion) if a.baseline_criterion else {}
    base_scale = read_scale(a.baseline_scale)
    print(markdown(ns, scale, base_ns, base_scale))
    plot(ns, scale, base_ns, base_scale, a.out)
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
