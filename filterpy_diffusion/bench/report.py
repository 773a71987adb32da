"""Reports of benchmark documents: strict JSON, side-by-side tables, plots.

The document is ``{"meta", "records", "tuning", "snapshots"}``
(:mod:`filterpy_diffusion.bench.runner`). NaN (diverged runs) is written as
``null`` and read back as NaN. Plots need matplotlib (extra ``bench``).
"""
import json
import math
import os
import sys
from collections import defaultdict

import numpy as np

__all__ = ["write_json", "read_json", "read_results", "format_tables", "make_plots"]

# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None     # NaN/inf -> null (strict JSON)
    return obj


def write_json(doc, path):
    """Write the benchmark document as strict JSON (NaN -> null)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(_jsonable(doc), fh, indent=1, allow_nan=False)
        fh.write("\n")


def read_json(path):
    """Read a benchmark document; null metrics of diverged runs become NaN again."""
    with open(path) as fh:
        doc = json.load(fh)
    for r in doc.get("records", []) + doc.get("tuning", []):
        for k in ("rmse", "spread", "analysis_time"):
            if r.get(k) is None:
                r[k] = float("nan")
        if r.get("w2") is None and r.get("diverged") and r["problem"] in _reference_problems(doc):
            r["w2"] = float("nan")
    return doc


def _reference_problems(doc):
    return {p for p, c in doc.get("meta", {}).get("problems", {}).items() if c.get("reference")}



def read_results(paths):
    """Read one or more benchmark JSON files into one document.

    A sweep can be split over several runs (one per group of filters, each
    with the same problems, N and seeds); their records, tuning records and
    snapshots are concatenated and the commands kept in order.
    """
    docs = [read_json(p) for p in paths]
    doc = {"meta": dict(docs[0].get("meta", {})), "records": [], "tuning": [], "snapshots": []}
    doc["meta"]["commands"] = [d.get("meta", {}).get("command") for d in docs]
    # The settings name the union of what the runs covered, in order.
    settings = [d.get("meta", {}).get("settings", {}) for d in docs]
    merged = dict(settings[0])
    for key in set().union(*settings):
        values = [st[key] for st in settings if key in st]
        if all(isinstance(v, dict) for v in values):
            merged[key] = {k: v for d in values for k, v in d.items()}
        elif all(isinstance(v, list) for v in values):
            merged[key] = list(dict.fromkeys(x for v in values for x in v))
    doc["meta"]["settings"] = merged
    for d in docs:
        for key in ("records", "tuning", "snapshots"):
            doc[key].extend(d.get(key) or [])
    return doc


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def _finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _cell(runs, field):
    n = len(runs)
    if n == 0:
        return "-"
    lost = sum(bool(r["lost"]) and not r["diverged"] for r in runs)
    div = sum(bool(r["diverged"]) for r in runs)
    vals = [r[field] for r in runs if not r["lost"] and not r["diverged"] and _finite(r[field])]
    if vals:
        m = float(np.mean(vals))
        s = f"{m:.3g} ± {np.std(vals, ddof=1):.2g}" if len(vals) > 1 else f"{m:.3g}"
    else:
        s = "-"
    tags = []
    if lost:
        tags.append(f"lost {lost}/{n}")
    if div:
        tags.append(f"div {div}/{n}")
    return s + (f" [{', '.join(tags)}]" if tags else "")


def _render(title, header, rows, markdown):
    if markdown:
        out = [f"**{title}**", "", "| " + " | ".join(header) + " |",
               "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [title, line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out) + "\n"


def format_tables(doc, markdown=False):
    """Side-by-side tables of a benchmark document.

    Rows are (problem, N), columns filters. Cells are "mean ± std over the
    reporting seeds that kept track [lost k/n, div k/n]". Tables: RMSE; W2
    (problems with a reference); the chosen knobs; median analysis time per
    cycle (ms) with score evaluations per update.

    Parameters
    ----------
    doc : dict
        As returned by :func:`run_benchmark` or :func:`read_json`.
    markdown : bool
        GitHub Markdown tables instead of aligned text.

    Returns
    -------
    str
    """
    recs = doc["records"]
    settings = doc.get("meta", {}).get("settings", {})
    problems = settings.get("problems") or list(dict.fromkeys(r["problem"] for r in recs))
    filters = settings.get("filters") or list(dict.fromkeys(r["filter"] for r in recs))
    Ns = sorted({r["N"] for r in recs})
    groups = defaultdict(list)
    for r in recs:
        groups[(r["problem"], r["filter"], r["N"])].append(r)
    keys = [(p, N) for p in problems for N in Ns if any((p, f, N) in groups for f in filters)]
    header = ["problem", "N"] + list(filters)
    parts = []

    def table(title, cell, keep=lambda p: True):
        rows = [[p, str(N)] + [cell(groups.get((p, f, N), [])) for f in filters]
                for p, N in keys if keep(p)]
        if rows:
            parts.append(_render(title, header, rows, markdown))

    table("RMSE of the analysis mean (mean ± std over seeds that kept track)",
          lambda runs: _cell(runs, "rmse"))
    with_ref = {p for p in problems if any(r["w2"] is not None for r in recs if r["problem"] == p)}
    with_ref |= _reference_problems(doc) & set(problems)
    table("W2 to the reference posterior (mean ± std over seeds that kept track)",
          lambda runs: _cell(runs, "w2"), keep=lambda p: p in with_ref)

    tuned = [f for f in filters if any(r["knob"] is not None for r in recs if r["filter"] == f)]
    if tuned:
        knob_names = settings.get("knob_names", {})
        th = ["problem", "N"] + [f"{f} ({knob_names.get(f) or 'knob'})" for f in tuned]
        rows = []
        for p, N in keys:
            row = [p, str(N)]
            for f in tuned:
                ks = sorted({r["knob"] for r in groups.get((p, f, N), []) if r["knob"] is not None})
                row.append(", ".join(f"{k:g}" for k in ks) or "-")
            rows.append(row)
        ts = sorted({s for r in recs if r["tuning_seeds"] for s in r["tuning_seeds"]})
        parts.append(_render(f"Chosen knobs (tuned on seeds {ts})", th, rows, markdown))

    def timing(runs):
        t = [r["analysis_time"] for r in runs if _finite(r["analysis_time"])]
        if not t:
            return "-"
        s = f"{1e3 * float(np.median(t)):.3g}"
        ev = [r["n_evaluations"] for r in runs if r["n_evaluations"] is not None]
        return s + (f" ({int(np.median(ev))} ev)" if ev else "")

    table("Analysis time per cycle [ms] (median over seeds; score evaluations per update)", timing)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def make_plots(doc, outdir):
    """Save PNG plots of a benchmark document to ``outdir``.

    ``error_vs_N.png`` (RMSE against N per problem, one line per filter,
    error bars over the seeds that kept track, log x), ``w2_vs_N.png`` (the
    same for W2, problems with a reference), and ``posterior_<problem>.png``
    for the snapshots of the bimodal problems (l63-z: x against y of the
    analysis ensemble and the reference sample at three cycles; toy-abs:
    histograms). Needs matplotlib (extra ``bench``); without it prints a
    message and returns an empty list.

    Returns
    -------
    list of str
        The files written.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots", file=sys.stderr)
        return []
    os.makedirs(outdir, exist_ok=True)
    recs = doc["records"]
    settings = doc.get("meta", {}).get("settings", {})
    problems = settings.get("problems") or list(dict.fromkeys(r["problem"] for r in recs))
    filters = settings.get("filters") or list(dict.fromkeys(r["filter"] for r in recs))
    written = []

    def vs_N(field, names, fname, ylabel):
        names = [p for p in names if any(_finite(r[field]) for r in recs if r["problem"] == p)]
        if not names:
            return
        ncol = min(3, len(names))
        nrow = -(-len(names) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
        for ax, p in zip(axes.flat, names):
            for f in filters:
                pts = []
                for N in sorted({r["N"] for r in recs if r["problem"] == p and r["filter"] == f}):
                    vals = [r[field] for r in recs if r["problem"] == p and r["filter"] == f
                            and r["N"] == N and not r["lost"] and not r["diverged"] and _finite(r[field])]
                    if vals:
                        pts.append((N, np.mean(vals), np.std(vals, ddof=1) if len(vals) > 1 else 0.0))
                if pts:
                    n, m, s = map(np.array, zip(*pts))
                    ax.errorbar(n, m, yerr=s, marker="o", capsize=3, label=f)
            ax.set_xscale("log")
            ax.set_title(p)
            ax.set_xlabel("N")
            ax.set_ylabel(ylabel)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize="small")
        fig.tight_layout()
        path = os.path.join(outdir, fname)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    vs_N("rmse", problems, "error_vs_N.png", "RMSE (seeds that kept track)")
    vs_N("w2", problems, "w2_vs_N.png", "W2 to reference")

    by_problem = defaultdict(list)
    for s in doc.get("snapshots", []):
        by_problem[s["problem"]].append(s)
    for p, snaps in by_problem.items():
        ncyc = max(len(s["cycles"]) for s in snaps)
        fig, axes = plt.subplots(len(snaps), ncyc, figsize=(3.4 * ncyc, 3.0 * len(snaps)),
                                 squeeze=False)
        for row, s in zip(axes, snaps):
            for ax, k, ens, ref in zip(row, s["cycles"], s["ensembles"], s["reference"]):
                E = np.asarray(ens, dtype=float)
                R = None if ref is None else np.asarray(ref, dtype=float)
                if E.shape[1] == 1:
                    lo = min(E.min(), R.min() if R is not None else E.min())
                    hi = max(E.max(), R.max() if R is not None else E.max())
                    bins = np.linspace(lo, hi, 31)
                    if R is not None:
                        ax.hist(R[:, 0], bins, density=True, alpha=0.5, color="0.5", label="reference")
                    ax.hist(E[:, 0], bins, density=True, histtype="step", lw=2, label=s["filter"])
                    ax.set_xlabel("x")
                else:
                    if R is not None:
                        ax.scatter(R[:, 0], R[:, 1], s=8, c="0.6", label="reference")
                    ax.scatter(E[:, 0], E[:, 1], s=8, label=s["filter"])
                    ax.set_xlabel("x")
                    ax.set_ylabel("y")
                ax.set_title(f"{s['filter']} cycle {k}", fontsize="small")
            row[0].legend(fontsize="x-small")
        fig.suptitle(f"{p}: analysis ensemble vs reference posterior (N = {snaps[0]['N']}, "
                     f"seed {snaps[0]['seed']})", fontsize="small")
        fig.tight_layout()
        path = os.path.join(outdir, f"posterior_{p}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
