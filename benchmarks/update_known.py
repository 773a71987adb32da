"""Rewrite the ``KNOWN`` numbers of every problem module from the committed JSON they name.

After rerunning a problem's command (``KNOWN["command"]``, or a new one
given with ``--command`` for the problems of that JSON), this puts the
means it measured beside the problem, as ``tests/test_bench_problems.py``
checks them: the mean over the seeds that kept track, 3 significant
digits, None if none did, and the lost counts.

    python benchmarks/update_known.py [--json docs/data/bench_quick.json --command "..."]
"""
import argparse
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from filterpy_diffusion.bench import problems  # noqa: E402
from filterpy_diffusion.bench.report import read_results  # noqa: E402


def _table(recs, metric):
    out = {}
    for r in recs:
        out.setdefault(r["filter"], {}).setdefault(r["N"], [])
    for f, by_N in out.items():
        for N in by_N:
            ok = [r[metric] for r in recs if (r["filter"], r["N"]) == (f, N)
                  and not (r["lost"] or r["diverged"])]
            by_N[N] = float(f"{np.mean(ok):.3g}") if ok else None
    return out


def known_text(json_path, command, name):
    doc = read_results([os.path.join(ROOT, json_path)])
    recs = [r for r in doc["records"] if r["problem"] == name]
    if not recs:
        return None
    lines = ['KNOWN = {', f'    "json": "{json_path}",',
             f'    "command": {command!r},']
    for metric in ("rmse", "w2"):
        if metric == "w2" and all(r["w2"] is None for r in recs):
            lines.append('    "w2": None,')
            continue
        lines.append(f'    "{metric}": {{')
        for f, by_N in _table(recs, metric).items():
            lines.append(f'        "{f}": {{' + ", ".join(f"{N}: {v}" for N, v in by_N.items()) + "},")
        lines.append('    },')
    lost = {}
    for r in recs:
        if r["lost"] or r["diverged"]:
            lost.setdefault(r["filter"], {}).setdefault(r["N"], 0)
            lost[r["filter"]][r["N"]] += 1
    lines.append(f'    "lost": {lost!r},')
    lines.append('}')
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--json', help='only the problems of this JSON')
    ap.add_argument('--command', help="the command that made --json (its meta['command'])")
    a = ap.parse_args()
    for m in problems.MODULES:
        if m.KNOWN is None:
            continue
        path, command = m.KNOWN["json"], m.KNOWN["command"]
        if a.json:
            if os.path.normpath(path) != os.path.normpath(a.json):
                continue
            command = a.command or read_results([os.path.join(ROOT, path)])["meta"]["command"]
        text = known_text(path, command, m.PROBLEM.name)
        src = m.__file__
        s = open(src).read()
        s2 = re.sub(r'^KNOWN = \{.*?^\}\n', lambda _: text, s, count=1, flags=re.S | re.M)
        if s2 != s:
            open(src, 'w').write(s2)
            print(f"updated {os.path.relpath(src, ROOT)}")


if __name__ == '__main__':
    main()
