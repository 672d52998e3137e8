#!/usr/bin/python3
"""Draw a soak run (agent/tests/soak.rs, scripts/soak.sh) into one PNG.

    /usr/bin/python3 scripts/soak-plot.py DIR OUT.png

DIR holds samples.csv, events.csv, outages.csv and summary.json as the soak writes them.
Three panels over the run's time: the switch's RSS, its open fds (one line per process
incarnation; a dashed line at every kill -9), and the VIP outages the 100 Hz prober saw, one
row per VIP, coloured by the fault they followed.

Needs matplotlib for the system python: `apt-get install python3-matplotlib` (Debian).
"""
import csv
import json
import os
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("soak-plot: matplotlib is missing: apt-get install python3-matplotlib")

COLOURS = {
    "kill": "tab:red",
    "final-kill": "darkred",
    "restart": "tab:red",
    "flap": "tab:blue",
    "tap-del": "tab:orange",
    "tap-add": "tab:orange",
    "reload": "tab:green",
    "none": "tab:gray",
}


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    d, out = sys.argv[1], sys.argv[2]
    samples = rows(os.path.join(d, "samples.csv"))
    events = rows(os.path.join(d, "events.csv"))
    outages = rows(os.path.join(d, "outages.csv"))
    with open(os.path.join(d, "summary.json")) as f:
        summary = json.load(f)
    p = summary["params"]

    fig, (ax_rss, ax_fd, ax_out) = plt.subplots(
        3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2]}
    )
    by_inc = {}
    for s in samples:
        by_inc.setdefault(int(s["incarnation"]), []).append(s)
    for n, ss in sorted(by_inc.items()):
        t = [float(s["t"]) for s in ss]
        first = n == min(by_inc)
        ax_rss.plot(t, [int(s["rss_kb"]) / 1024 for s in ss], color="tab:purple", lw=1.2,
                    label="VmRSS" if first else None)
        if "anon_kb" in ss[0]:
            ax_rss.plot(t, [int(s["anon_kb"]) / 1024 for s in ss], color="tab:blue", lw=1.2,
                        label="RssAnon (judged)" if first else None)
            ax_rss.plot(t, [int(s["file_kb"]) / 1024 for s in ss], color="tab:gray", lw=1.0,
                        label="RssFile (binary pages)" if first else None)
        ax_fd.plot(t, [int(s["fds"]) for s in ss], color="tab:brown", lw=1.2, drawstyle="steps-post")
    kills = [float(e["t"]) for e in events if e["kind"] in ("kill", "final-kill", "restart")]
    for ax in (ax_rss, ax_fd, ax_out):
        for k in kills:
            ax.axvline(k, color="tab:red", ls="--", lw=0.7, alpha=0.6)
    ax_rss.set_ylabel("memory (MiB)")
    ax_fd.set_ylabel("open fds")
    rss_all = [int(s["rss_kb"]) / 1024 for s in samples] or [0]
    low = [int(s.get("anon_kb") or s["rss_kb"]) / 1024 for s in samples] or [0]
    ax_rss.set_ylim(min(low) * 0.85, max(rss_all) * 1.1)
    fd_all = [int(s["fds"]) for s in samples] or [0]
    ax_fd.set_ylim(0, max(fd_all) + 4)
    # The +-5 % band around the reference level (the first incarnation after the warm-up).
    rss_key = "rss_anon_kb" if "rss_anon_kb" in summary else "rss_kb"
    for ax, key, scale in ((ax_rss, rss_key, 1024.0), (ax_fd, "fds", 1.0)):
        ref = [l["level"] for l in summary.get(key, []) if l["incarnation"] >= 1]
        if ref:
            r = ref[0] / scale
            ax.axhspan(r * 0.95, r * 1.05, color="tab:green", alpha=0.12, lw=0,
                       label="reference level +-5 %")
            ax.legend(loc="lower right", fontsize=8, frameon=False)

    vips = sorted({o["vip"] for o in outages} | {"va", "vb", "vc"})
    seen = set()
    for i, v in enumerate(vips):
        for o in (o for o in outages if o["vip"] == v):
            c = o["cause"]
            label = c if c not in seen else None
            seen.add(c)
            start, secs = float(o["start"]), max(float(o["seconds"]), 0.05)
            ax_out.broken_barh([(start, secs)], (i - 0.35, 0.7), color=COLOURS.get(c, "black"), label=label)
    ax_out.set_yticks(range(len(vips)))
    ax_out.set_yticklabels(vips)
    ax_out.set_ylim(-0.6, len(vips) - 0.4)
    ax_out.set_ylabel("VIP outages")
    ax_out.set_xlabel("seconds since the chaos began (dashed: kill -9 of the switch)")
    if seen:
        ax_out.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncol=len(seen), title="outage after", title_fontsize=8, frameon=False)

    own = summary.get("ownership", {})
    fig.suptitle(
        "vswitch soak: {:.0f} s, kill -9 every {:.0f} s, flap every {:.0f} s, reload every {:.0f} s, "
        "tap delete every {:.0f} s\nworst steady-state deviation: RSS (anon) {:.1f} %, fds {:.1f} % (limit 5 %); "
        "ownership after the final restart: {}".format(
            p["duration"], p["kill_every"], p["flap_every"], p["reload_every"], p["tap_every"],
            100 * (summary.get("rss_worst_dev") or 0), 100 * (summary.get("fds_worst_dev") or 0),
            "OK" if own.get("ok") else "WRONG",
        ),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
