#!/usr/bin/python3
"""Draw the benchmark results as one PNG: asyncio, uvloop and asyncuv side
by side, one row of panels per Python version measured.

    /usr/bin/python3 bench/chart.py -o bench/results/chart.png \\
        bench/results/*.json

Each FILE is the --json output of one of

    bench/workload.py     the main job: jobs per second of wall time and
                          of CPU time (higher is better)
    bench/callgrind.py    the micro-benchmarks: instructions per operation
                          (Ir/op, lower is better)
    bench/net/run.py      echo, HTTP (and HTTPS) servers: CPU time per
                          request, or memory per idle connection (lower
                          is better)

and names the Python version it ran on; files of the same version share a
row.  Micro-benchmark and network bars are drawn relative to asyncio (its
bar is 1.0), each labelled with its own figure; the main job is drawn in
jobs per second.  The date, machine and versions the files record are
printed under the panels, with --note text if given.  Needs Debian's
python3-matplotlib.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import sys
import textwrap

LOOPS = ("asyncio", "uvloop", "asyncuv")
COLORS = {"asyncio": "#9e9e9e", "uvloop": "#4c72b0", "asyncuv": "#dd8452"}
KINDS = ("workload", "callgrind", "net")
TITLES = {
    "workload": "main job (bench/workload.py)\njobs per second, higher is better",
    "callgrind": "micro-benchmarks (bench/callgrind.py)\n"
                 "instructions per op vs asyncio, lower is better",
    "net": "network (bench/net/run.py)\n"
           "CPU per request (memory per idle connection)\n"
           "vs asyncio, lower is better",
}


class ChartError(Exception):
    pass


def _version(text):
    """'3.13.5' out of a version string such as sys.version or
    'Python 3.13.5 (main, ...)'."""
    m = re.search(r"(\d+\.\d+\.\d+\S*)", text or "")
    if not m:
        raise ChartError(f"no Python version in {text!r}")
    return m.group(1)


def _loop_version(text):
    """'0.21.0' out of callgrind's '0.21.0 (/usr/lib/...)'."""
    return (text or "").split(" (")[0] or None


def load(path):
    """One result file as a dict: kind, python, the figures, and what it
    says about the machine and the loops' versions."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ChartError(f"{path}: {exc}") from None
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(path),
                                            datetime.timezone.utc)
    result = {"path": path, "versions": {}, "machine": None,
              "date": mtime.strftime("%Y-%m-%d")}
    if doc.get("benchmark") == "workload":
        versions = doc.get("versions", {})
        result.update(kind="workload", python=_version(versions.get("python")))
        result["versions"] = {k: v for k, v in versions.items()
                              if k in LOOPS and v}
        result["groups"] = {
            "jobs/s (wall)": doc["jobs_per_s"],
            "jobs/CPU-s": doc["jobs_per_cpu_s"]}
        result["machine"] = doc.get("machine")
        result["date"] = (doc.get("time") or result["date"])[:10]
    elif "benchmarks" in doc and "environment" in doc:
        env = doc["environment"]
        result.update(kind="callgrind", python=_version(env.get("python")))
        result["versions"] = {k: _loop_version(v)
                              for k, v in env.get("loops", {}).items()
                              if k != "asyncio"}
        result["groups"] = {
            name: {loop: m["ir_per_op"] for loop, m in per_loop.items()
                   if m.get("ir_per_op") is not None and not m.get("error")}
            for name, per_loop in doc["benchmarks"].items()}
        result["machine"] = env.get("platform")
        result["date"] = (env.get("time") or result["date"])[:10]
    elif "rows" in doc and "environment" in doc:
        env = doc["environment"]
        result.update(kind="net", python=_version(env.get("python")))
        result["versions"] = {k: env[k] for k in ("uvloop", "asyncuv", "libuv")
                              if env.get(k)}
        groups = {}
        for row in doc["rows"]:
            figures = {}
            for loop, data in row["loops"].items():
                value = data.get("median", {}).get(row["metric"])
                if loop in LOOPS and data.get("status") == "ok" and value:
                    figures[loop] = value
            if figures:
                groups[row["name"]] = figures
        result["groups"] = groups
        result["units"] = {row["name"]: row["metric"] for row in doc["rows"]}
        cpu = env.get("cpu")
        kernel = env.get("kernel")
        result["machine"] = ", ".join(x for x in (cpu, kernel and
                                                  f"Linux {kernel}") if x)
    else:
        raise ChartError(f"{path}: not the JSON of workload.py, "
                         "callgrind.py or net/run.py")
    return result


def _label(value, unit):
    if unit == "bytes_per_conn":
        return f"{value / 1024:.1f}K"
    if unit == "cpu_us_per_req":
        return f"{value:.1f}"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}"


def _draw_groups(ax, groups, relative, units=None):
    """Grouped bars, one group per key of groups, one bar per loop."""
    names = list(groups)
    loops = [loop for loop in LOOPS if any(loop in g for g in groups.values())]
    width = 0.8 / max(len(loops), 1)
    top = 0.0
    for i, loop in enumerate(loops):
        xs, heights, labels = [], [], []
        for j, name in enumerate(names):
            figures = groups[name]
            if loop not in figures:
                continue
            value = figures[loop]
            base = figures.get("asyncio")
            if relative:
                if not base:
                    continue
                height = value / base
            else:
                height = value
            xs.append(j + (i - (len(loops) - 1) / 2) * width)
            heights.append(height)
            unit = (units or {}).get(name)
            labels.append(_label(value, unit))
        if not xs:
            continue
        bars = ax.bar(xs, heights, width, label=loop, color=COLORS[loop])
        ax.bar_label(bars, labels=labels, fontsize=6, padding=1)
        top = max(top, max(heights))
    if relative:
        # A row whose asyncio figure is missing (its run failed) has no
        # scale: say so where its bars would be.
        for j, name in enumerate(names):
            if not groups[name].get("asyncio"):
                ax.text(j, 0.5, "no asyncio\nfigure", ha="center",
                        va="center", fontsize=7, color="gray")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=7, rotation=20 if len(names) > 2 else 0,
                       ha="right" if len(names) > 2 else "center")
    ax.set_ylim(0, top * 1.3 if top else 1)
    ax.tick_params(axis="y", labelsize=7)
    if relative:
        ax.axhline(1.0, color="black", linewidth=0.5)


def _version_key(version):
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def footer(results, command, note, columns=3):
    lines = []
    for python in sorted({r["python"] for r in results}, key=_version_key):
        rs = [r for r in results if r["python"] == python]
        dates = sorted({r["date"] for r in rs})
        versions = {}
        for r in rs:
            for k, v in r["versions"].items():
                versions.setdefault(k, v)
        machine = next((r["machine"] for r in rs if r["kind"] == "net"
                        and r["machine"]), None) or next(
            (r["machine"] for r in rs if r["machine"]), "?")
        vs = ", ".join(f"{k} {versions[k]}" for k in
                       ("uvloop", "asyncuv", "libuv") if versions.get(k))
        when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
        lines.append(f"Python {python}: {when}; {vs}; {machine}")
    if note:
        lines.append(note)
    if command:
        lines.append(command)
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, width=int(60 * columns),
                                 subsequent_indent="    ",
                                 break_on_hyphens=False) or [""]
    return wrapped


def chart(results, output, command=None, note=None, dpi=110):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pythons = sorted({r["python"] for r in results}, key=_version_key)
    kinds = [k for k in KINDS if any(r["kind"] == k for r in results)]
    lines = footer(results, command, note, len(kinds))
    fig, axes = plt.subplots(
        len(pythons), len(kinds), squeeze=False,
        figsize=(4.6 * len(kinds) + 0.6,
                 3.3 * len(pythons) + 0.75 + 0.13 * len(lines)),
        gridspec_kw={"width_ratios": [1.5 if k == "net" else 1 for k in kinds]})
    for row, python in enumerate(pythons):
        for col, kind in enumerate(kinds):
            ax = axes[row][col]
            found = [r for r in results if r["python"] == python
                     and r["kind"] == kind]
            if row == 0:
                ax.set_title(TITLES[kind], fontsize=8)
            if col == 0:
                ax.set_ylabel(f"Python {python}", fontsize=10,
                              fontweight="bold")
            if not found:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8, color="gray")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            groups, units = {}, {}
            for r in found:          # several files of a kind: later wins
                groups.update(r["groups"])
                units.update(r.get("units", {}))
            _draw_groups(ax, groups, relative=kind != "workload", units=units)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax_row in axes:
        for ax in ax_row:
            h, l = ax.get_legend_handles_labels()
            if len(l) > len(labels):
                handles, labels = h, l
    fig.legend(handles, labels, loc="upper center", ncol=len(labels),
               fontsize=9, frameon=False)
    height = fig.get_figheight()
    bottom = (0.13 * len(lines) + 0.45) / height
    fig.tight_layout(rect=(0, bottom, 1, 1 - 0.3 / height))
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=6.5, family="monospace",
             va="bottom")
    fig.savefig(output, dpi=dpi)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0] + " ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="JSON of workload.py, callgrind.py, net/run.py")
    parser.add_argument("-o", "--output", default="chart.png",
                        help="the PNG to write (default: %(default)s)")
    parser.add_argument("--note", help="a line to print under the chart "
                        "(the machine, say)")
    parser.add_argument("--no-command", action="store_true",
                        help="do not print the command line under the chart")
    args = parser.parse_args(argv)
    try:
        results = [load(path) for path in args.files]
    except ChartError as exc:
        parser.exit(1, f"chart.py: {exc}\n")
    try:
        import matplotlib  # noqa: F401 - imported again by chart()
    except ImportError:
        parser.exit(1, "chart.py: needs matplotlib "
                       "(apt-get install python3-matplotlib)\n")
    command = None
    if not args.no_command:
        command = "made by: bench/chart.py " + shlex.join(
            argv if argv is not None else sys.argv[1:])
    chart(results, args.output, command=command, note=args.note)
    print(f"chart.py: wrote {args.output} ({len(results)} files, Python "
          + ", ".join(sorted({r['python'] for r in results},
                             key=_version_key)) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
