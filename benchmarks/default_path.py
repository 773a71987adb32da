"""What the default ``DiffusionKDEFilter`` update executes: conditionals, thresholds, modules, calls.

Runs default filters (no option but ``rng``) for a few cycles on four
problems and traces only their ``update`` calls (``sys.monitoring`` on
Python >= 3.12, else ``sys.settrace``), recording the executed lines of the
files under the imported package's directory. The executed lines are mapped
to the AST of each package module and counted:

* conditionals: distinct ``If`` / ``IfExp`` / ``While`` nodes whose test ran
  (any line of the test executed), and, separately, the ``BoolOp`` nodes
  (``and`` / ``or``) inside those tests. Each is also classed as a *guard*
  (an ``If`` whose body only raises or warns: a check of its input or of
  the arithmetic, which decides nothing about the update when it passes)
  or a *decision* (every other conditional: a branch of the method);
* modules: distinct package modules with an executed line; also the
  distinct cross-module call edges and the cross-module calls per update
  (a package function started from a frame of another package module);
* ``hx`` and ``fx`` calls per update (counting wrappers), and noise draws
  per update (a ``numpy.random.Generator`` subclass that counts the
  outermost calls of its sampling methods);
* thresholds: (a) named: distinct UPPERCASE module-level numeric constants
  of the package referenced (by name, through ``from .m import NAME`` or as
  ``m.NAME``) on executed lines, plus, listed apart, those reaching the path
  only as a default argument of an executed function; (b) inline: numeric
  literals other than 0, 1, 2, -1, 0.5 inside comparisons on executed
  lines; (c) policy fields: ``policy.<name>`` / ``self.policy.<name>``
  attribute accesses on executed lines.

Prints a table and, with ``--json PATH``, writes the counts, the names and
the commit (``git rev-parse HEAD``) of the checkout measured, the last
commit that changed the package directory (the code measured) and the
commit of this script. To count an older package with this script, run it
from a worktree of that commit (the "before" count below).

    PYTHONPATH=$PWD python benchmarks/default_path.py --json docs/data/default_path_after.json
    git worktree add /tmp/before f1bbbe9 && cd /tmp/before && \
        PYTHONPATH=$PWD python <this checkout>/benchmarks/default_path.py --json before.json
"""
import argparse
import ast
import contextlib
import json
import numbers
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

#: Numeric literals that are not counted as inline thresholds.
TRIVIAL_LITERALS = (0, 1, 2, -1, 0.5)
_UPPER = re.compile(r"^_*[A-Z][A-Z0-9_]*$")


# --------------------------------------------------------------------------- static analysis
@dataclass
class Conditional:
    kind: str           # 'If', 'IfExp' or 'While'
    lineno: int
    col: int
    test_lines: tuple   # (first, last) line of the test expression
    boolops: int        # BoolOp nodes in the test
    operands: int       # extra short-circuit decisions: sum(len(values) - 1)
    guard: bool = False  # an If whose body only raises or warns (see _is_guard)


@dataclass
class ModuleInfo:
    """What :func:`analyse_module` finds in one module's source."""
    name: str
    path: str
    conditionals: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)          # NAME -> value
    imports: dict = field(default_factory=dict)            # local name -> (module, name)
    module_aliases: dict = field(default_factory=dict)     # local name -> module
    refs: list = field(default_factory=list)               # (lineno, kind, a, b): 'name' local, or 'attr' alias.NAME
    compares: list = field(default_factory=list)           # ((first, last), [(lineno, col, value)])
    policy: list = field(default_factory=list)             # (lineno, field)
    functions: list = field(default_factory=list)          # ((first, last) body lines, default refs, default literals)


def _numeric(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Number):
        return True
    if isinstance(v, (tuple, list)) and v:
        return all(_numeric(u) for u in v)
    if isinstance(v, np.ndarray):
        return v.size > 0 and np.issubdtype(v.dtype, np.number)
    return False


def _literal(node):
    """Value of a numeric literal node (``-c`` included), else None."""
    if isinstance(node, ast.Constant) and _numeric(node.value) and not isinstance(node.value, (tuple, list)):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant) and _numeric(node.operand.value)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    return None


def _literals(tree):
    """(lineno, col, value) of the numeric literals in ``tree``, negation folded in."""
    out, inner = [], set()
    for n in ast.walk(tree):
        if isinstance(n, ast.UnaryOp) and _literal(n) is not None:
            inner.add(id(n.operand))
            out.append((n.lineno, n.col_offset, _literal(n)))
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and id(n) not in inner and _literal(n) is not None:
            out.append((n.lineno, n.col_offset, n.value))
    return out


def _is_warning(stmt):
    """Whether ``stmt`` is a bare call of a function named ``warn`` (``warnings.warn(...)``)."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    f = stmt.value.func
    return (isinstance(f, ast.Attribute) and f.attr == "warn") or (isinstance(f, ast.Name) and f.id == "warn")


def _is_guard(node):
    """An ``If`` whose body only raises or warns: a check, not a branch of the method.

    Its ``elif`` / ``else`` parts are conditionals of their own (an ``elif``
    is a nested ``If``), classed by the same rule.
    """
    return (isinstance(node, ast.If) and
            all(isinstance(s, ast.Raise) or _is_warning(s) for s in node.body))


def _resolve_relative(modname, level, target, package):
    """Dotted name, inside ``package``, of ``from <level dots><target> import``."""
    parts = modname.split(".") if modname else []
    # a module's own package is its name minus the last part ('__init__' is the package itself)
    base = parts[:-1] if parts else []
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def analyse_module(path, name, package, module=None):
    """Parse one module of ``package`` (``name`` relative to it, '' for ``__init__``).

    ``module``: the imported module, to read the values of its constants
    (numeric at run time counts, e.g. ``np.log(...)``).
    """
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=path)
    info = ModuleInfo(name=name, path=path)

    for stmt in tree.body:                                 # module-level constants
        targets = []
        if isinstance(stmt, ast.Assign):
            targets = [t for t in stmt.targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            targets = [stmt.target]
        for t in targets:
            if not _UPPER.match(t.id):
                continue
            if module is not None and hasattr(module, t.id):
                value = getattr(module, t.id)
            else:
                try:
                    value = ast.literal_eval(stmt.value)
                except (ValueError, SyntaxError, TypeError):
                    continue
            if _numeric(value):
                info.constants[t.id] = value.tolist() if isinstance(value, np.ndarray) else value

    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level:
                src = _resolve_relative(name, n.level, n.module, package)
            elif n.module and (n.module == package or n.module.startswith(package + ".")):
                src = n.module[len(package) + 1:] if n.module != package else ""
            else:
                continue
            for a in n.names:
                sub = f"{src}.{a.name}" if src else a.name
                # 'from . import kde' binds a module; 'from .kde import X' a name
                info.module_aliases[a.asname or a.name] = sub
                info.imports[a.asname or a.name] = (src, a.name)
        elif isinstance(n, ast.Import):
            for a in n.names:
                if a.name.startswith(package + ".") and a.asname:
                    info.module_aliases[a.asname] = a.name[len(package) + 1:]
        elif isinstance(n, (ast.If, ast.IfExp, ast.While)):
            bo = [b for b in ast.walk(n.test) if isinstance(b, ast.BoolOp)]
            info.conditionals.append(Conditional(
                type(n).__name__, n.lineno, n.col_offset, (n.test.lineno, n.test.end_lineno),
                len(bo), sum(len(b.values) - 1 for b in bo), _is_guard(n)))
        elif isinstance(n, ast.Name) and _UPPER.match(n.id):
            info.refs.append((n.lineno, "name", n.id, None))
        elif isinstance(n, ast.Attribute):
            if isinstance(n.value, ast.Name) and _UPPER.match(n.attr):
                info.refs.append((n.lineno, "attr", n.value.id, n.attr))
            base = n.value
            if ((isinstance(base, ast.Name) and base.id == "policy")
                    or (isinstance(base, ast.Attribute) and base.attr == "policy")):
                info.policy.append((n.lineno, n.attr))
        elif isinstance(n, ast.Compare):
            info.compares.append(((n.lineno, n.end_lineno), _literals(n)))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            body = n.body if isinstance(n.body, list) else [n.body]
            defaults = list(n.args.defaults) + [d for d in n.args.kw_defaults if d is not None]
            drefs, dlits = [], []
            for d in defaults:
                for m in ast.walk(d):
                    if isinstance(m, ast.Name) and _UPPER.match(m.id):
                        drefs.append(("name", m.id, None))
                    elif isinstance(m, ast.Attribute) and isinstance(m.value, ast.Name) and _UPPER.match(m.attr):
                        drefs.append(("attr", m.value.id, m.attr))
                dlits.extend(_literals(d))
            info.functions.append(((body[0].lineno, n.end_lineno), drefs, dlits))
    return info


def analyse_package(package_dir, package):
    """{absolute path: ModuleInfo} of every ``.py`` file under ``package_dir``."""
    infos = {}
    for root, _, files in os.walk(package_dir):
        for fn in sorted(files):
            if not fn.endswith(".py"):
                continue
            path = os.path.realpath(os.path.join(root, fn))
            rel = os.path.relpath(path, package_dir)[:-3].replace(os.sep, ".")
            name = "" if rel == "__init__" else rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
            dotted = f"{package}.{name}" if name else package
            module = sys.modules.get(dotted)
            infos[path] = analyse_module(path, name, package, module)
    return infos


# --------------------------------------------------------------------------- tracing
class LineRecorder:
    """Record executed lines (and cross-module calls) of the files under ``root``.

    ``with rec.recording(): ...`` traces the block and returns nothing; after
    it, ``rec.last`` is ``{path: set of line numbers}`` of that block and
    ``rec.last_calls`` a Counter of ``(caller path, callee path)`` of package
    functions started from a frame of another package file.
    """

    def __init__(self, root, backend=None):
        self.root = os.path.realpath(root) + os.sep
        if backend is None:
            backend = "monitoring" if hasattr(sys, "monitoring") else "settrace"
        if backend == "monitoring" and not hasattr(sys, "monitoring"):
            raise ValueError("backend='monitoring' needs Python >= 3.12")
        if backend not in ("monitoring", "settrace"):
            raise ValueError(f"backend must be 'monitoring' or 'settrace', got {backend!r}")
        self.backend = backend
        self._inside = {}
        self.last, self.last_calls = {}, Counter()
        self.paused = 0                   # > 0: inside a user callback (hx, fx), not recorded

    @contextlib.contextmanager
    def pause(self):
        """Within: nothing is recorded (a user's ``hx`` may live in the package, e.g. ``systems``)."""
        self.paused += 1
        try:
            yield
        finally:
            self.paused -= 1

    def _ours(self, filename):
        ok = self._inside.get(filename)
        if ok is None:
            ok = self._inside[filename] = os.path.realpath(filename).startswith(self.root)
        return ok

    def _caller(self, frame):
        """Path of the nearest package frame below ``frame`` (its callers), or None."""
        f = frame.f_back
        while f is not None:
            fn = f.f_code.co_filename
            if self._ours(fn):
                return os.path.realpath(fn)
            f = f.f_back
        return None

    def _call(self, frame, callee):
        caller = self._caller(frame)
        if caller is not None and caller != callee:
            self.calls[(caller, callee)] += 1

    @contextlib.contextmanager
    def recording(self):
        self.lines, self.calls = defaultdict(set), Counter()
        if self.backend == "monitoring":
            cm = self._monitoring()
        else:
            cm = self._settrace()
        with cm:
            yield
        self.last = {k: v for k, v in self.lines.items()}
        self.last_calls = self.calls

    @contextlib.contextmanager
    def _monitoring(self):
        mon = sys.monitoring
        tool = next((i for i in range(6) if mon.get_tool(i) is None), None)
        if tool is None:
            raise RuntimeError("no free sys.monitoring tool id")
        mon.use_tool_id(tool, "default_path")
        real = os.path.realpath

        def on_line(code, lineno):
            fn = code.co_filename
            if self._ours(fn):
                if self.paused:
                    return None           # may run outside a callback later: keep the event
                self.lines[real(fn)].add(lineno)
            return mon.DISABLE            # each line once per recording is enough

        def on_start(code, offset):
            fn = code.co_filename
            if not self._ours(fn):
                return mon.DISABLE
            if not self.paused:
                self._call(sys._getframe(1), real(fn))

        mon.register_callback(tool, mon.events.LINE, on_line)
        mon.register_callback(tool, mon.events.PY_START, on_start)
        mon.restart_events()
        mon.set_events(tool, mon.events.LINE | mon.events.PY_START)
        try:
            yield
        finally:
            mon.set_events(tool, 0)
            mon.register_callback(tool, mon.events.LINE, None)
            mon.register_callback(tool, mon.events.PY_START, None)
            mon.free_tool_id(tool)
            mon.restart_events()

    @contextlib.contextmanager
    def _settrace(self):
        real = os.path.realpath

        def local(frame, event, arg):
            if event == "line" and not self.paused:
                self.lines[real(frame.f_code.co_filename)].add(frame.f_lineno)
            return local

        started = {}                      # generator frames seen: a resume is not a start

        def glob(frame, event, arg):
            if event != "call" or not self._ours(frame.f_code.co_filename):
                return None
            if frame.f_code.co_flags & 0x2A0:           # generator, coroutine, async generator
                if id(frame) in started:
                    return local
                started[id(frame)] = frame
            if not self.paused:
                self._call(frame, real(frame.f_code.co_filename))
            return local

        old = sys.gettrace()
        sys.settrace(glob)
        try:
            yield
        finally:
            sys.settrace(old)


# --------------------------------------------------------------------------- counting
def _module_of(infos, path):
    info = infos.get(path)
    return info.name if info is not None else path


def _resolve(infos_by_name, mod, kind, a, b, seen=None):
    """(module, NAME) of the package constant a reference denotes, or None."""
    info = infos_by_name.get(mod)
    if info is None:
        return None
    seen = seen or set()
    if (mod, kind, a, b) in seen:
        return None
    seen.add((mod, kind, a, b))
    if kind == "attr":
        target = info.module_aliases.get(a)
        return None if target is None else _resolve(infos_by_name, target, "name", b, None, seen)
    if a in info.constants:
        return (mod, a)
    if a in info.imports:
        src, orig = info.imports[a]
        return _resolve(infos_by_name, src, "name", orig, None, seen)
    return None


def _hit(lines, first, last):
    return any(k in lines for k in range(first, last + 1))


def count_path(infos, executed):
    """Count what ``executed`` (``{path: set of lines}``) ran in the analysed ``infos``.

    Returns a dict of counts and the names behind them (see the module docstring).
    """
    by_name = {i.name: i for i in infos.values()}
    conds, modules = [], {}
    named, named_defaults, inline, policy = {}, {}, [], set()
    for path, lines in sorted(executed.items()):
        info = infos.get(path)
        if info is None or not lines:
            continue
        modules[info.name] = len(lines)
        for c in info.conditionals:
            if _hit(lines, *c.test_lines):
                conds.append((info.name, c))
        for lineno, kind, a, b in info.refs:
            if lineno in lines:
                r = _resolve(by_name, info.name, kind, a, b)
                if r is not None:
                    named[r] = by_name[r[0]].constants[r[1]]
        for rng_, lits in info.compares:
            if _hit(lines, *rng_):
                for lineno, col, v in lits:
                    if not any(v == t for t in TRIVIAL_LITERALS):
                        inline.append((info.name, lineno, col, v))
        for lineno, name in info.policy:
            if lineno in lines:
                policy.add(name)
        for (first, last), drefs, _ in info.functions:
            if _hit(lines, first, last):
                for kind, a, b in drefs:
                    r = _resolve(by_name, info.name, kind, a, b)
                    if r is not None:
                        named_defaults[r] = by_name[r[0]].constants[r[1]]
    named_defaults = {k: v for k, v in named_defaults.items() if k not in named}
    inline = sorted(set(inline), key=lambda t: (t[0], t[1], t[2]))
    by_kind = Counter(c.kind for _, c in conds)
    return {
        "conditionals": len(conds),
        "guards": sum(c.guard for _, c in conds),
        "decisions": sum(not c.guard for _, c in conds),
        "decisions_by_module": dict(Counter(m for m, c in conds if not c.guard)),
        "conditionals_by_kind": {k: by_kind.get(k, 0) for k in ("If", "IfExp", "While")},
        "conditionals_by_module": dict(Counter(m for m, _ in conds)),
        "conditional_sites": [f"{m}:{c.lineno} {c.kind}" + (f" +{c.boolops} BoolOp" if c.boolops else "")
                              + (" guard" if c.guard else "")
                              for m, c in sorted(conds, key=lambda t: (t[0], t[1].lineno, t[1].col))],
        "boolops": sum(c.boolops for _, c in conds),
        "boolop_operands": sum(c.operands for _, c in conds),
        "modules": len(modules),
        "lines_by_module": modules,
        "lines": sum(modules.values()),
        "named_thresholds": len(named),
        "named_public": sum(not n.startswith("_") for _, n in named),
        "named": {f"{m}.{n}" if m else n: v for (m, n), v in sorted(named.items())},
        "named_via_defaults": {f"{m}.{n}" if m else n: v for (m, n), v in sorted(named_defaults.items())},
        "inline_thresholds": len(inline),
        "inline": [{"module": m, "line": ln, "value": v} for m, ln, _, v in inline],
        "policy_fields": len(policy),
        "policy": sorted(policy),
    }


class CallCounter:
    """Wrap ``fn``, counting calls and the states (rows) they evaluate."""

    def __init__(self, fn, recorder=None):
        self.fn, self.calls, self.rows, self.recorder = fn, 0, 0, recorder

    def __call__(self, x, *args, **kwargs):
        self.calls += 1
        a = np.asarray(x)
        self.rows += 1 if a.ndim <= 1 else a.shape[0]
        if self.recorder is None:
            return self.fn(x, *args, **kwargs)
        with self.recorder.pause():       # the callback is the user's code, not the filter's path
            return self.fn(x, *args, **kwargs)


_DRAWS = ("standard_normal", "normal", "multivariate_normal", "multivariate_hypergeometric", "random",
          "uniform", "integers", "choice", "permutation", "permuted", "shuffle", "exponential",
          "standard_exponential", "gamma", "standard_gamma", "beta", "chisquare", "standard_t",
          "standard_cauchy", "lognormal", "laplace", "logistic", "gumbel", "binomial", "poisson",
          "multinomial", "dirichlet", "geometric", "wald", "weibull", "rayleigh", "pareto",
          "power", "vonmises", "triangular", "f", "noncentral_chisquare", "noncentral_f",
          "negative_binomial", "hypergeometric", "logseries", "zipf")


class CountingGenerator(np.random.Generator):
    """A ``numpy.random.Generator`` that counts its outermost sampling calls.

    ``draws`` is a Counter of method names, ``variates`` one of the numbers
    each method returned (a ``multivariate_normal`` that calls
    ``standard_normal`` inside counts once, as itself). With ``root`` (a
    directory), ``sites`` counts ``"file:line method"`` of the nearest
    calling frame in a file under it.
    """

    def __init__(self, seed, root=None):
        super().__init__(np.random.PCG64(seed))
        self.draws, self.variates, self.sites, self._depth = Counter(), Counter(), Counter(), 0
        self._root = None if root is None else os.path.realpath(root) + os.sep

    def _site(self, name):
        f = sys._getframe(2)
        while f is not None:
            fn = os.path.realpath(f.f_code.co_filename)
            if fn.startswith(self._root):
                return f"{os.path.relpath(fn, self._root)}:{f.f_lineno} {name}"
            f = f.f_back
        return f"(outside) {name}"


def _counting(name):
    base = getattr(np.random.Generator, name)

    def method(self, *args, **kwargs):
        self._depth += 1
        try:
            out = base(self, *args, **kwargs)
        finally:
            self._depth -= 1
        if self._depth == 0:
            self.draws[name] += 1
            if self._root is not None:
                self.sites[self._site(name)] += 1
            self.variates[name] += int(np.size(args[0])) if name == "shuffle" else int(np.size(out))
        return out
    method.__name__ = name
    return method


for _name in _DRAWS:
    if hasattr(np.random.Generator, _name):
        setattr(CountingGenerator, _name, _counting(_name))


# --------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    name: str
    problem: str            # a key of filterpy_diffusion.systems.PROBLEMS: fx, hx, R, Q
    N: int
    x0: np.ndarray          # truth at cycle 0
    P0: np.ndarray          # the filter's P; its x is truth + N(0, P0) ...
    prior_mean: object = None   # ... unless this is given


def scenarios(seed):
    """The four problems of the measurement (truths spun up from ``seed``)."""
    from filterpy_diffusion.systems import get_problem
    rng = np.random.default_rng(seed)
    l63, l96 = get_problem("l63-full"), get_problem("l96-40")
    x63 = np.asarray(l63.x0, float) + rng.standard_normal(3)
    for _ in range(50):                 # onto the attractor
        x63 = l63.fx(x63, None)
    x96 = np.asarray(l96.x0, float) + rng.standard_normal(40)
    for _ in range(500):
        x96 = l96.fx(x96, None)
    return [
        Scenario("l63-full N=20", "l63-full", 20, x63, np.eye(3)),
        Scenario("l63-full N=100", "l63-full", 100, x63, np.eye(3)),
        # a prior symmetric about 0 seen through |x| (truth near +1): two modes, +-1
        Scenario("toy-abs N=100", "toy-abs", 100, np.array([1.0]), np.eye(1), prior_mean=np.zeros(1)),
        Scenario("l96-40 N=40", "l96-40", 40, x96, np.eye(40)),
    ]


def run_scenario(sc, cycles, seed, recorder):
    """Run a default filter on ``sc`` for ``cycles`` cycles, tracing its ``update`` calls.

    Returns a list, one dict per update, of the executed lines, the
    cross-module calls and the hx / fx / rng counts of that update.
    """
    from filterpy_diffusion import DiffusionKDEFilter
    from filterpy_diffusion.systems import get_problem
    problem = get_problem(sc.problem)
    rng = np.random.default_rng(seed)
    d, m = problem.dim, problem.dim_z
    Lr = np.linalg.cholesky(problem.R)
    Lq = np.linalg.cholesky(problem.Q) if np.any(problem.Q) else np.zeros((d, d))
    x = (sc.x0 + np.linalg.cholesky(sc.P0) @ rng.standard_normal(d)
         if sc.prior_mean is None else np.asarray(sc.prior_mean, float))
    hx, fx = CallCounter(problem.hx, recorder), CallCounter(problem.fx, recorder)
    frng = CountingGenerator(seed + 1, recorder.root)
    f = DiffusionKDEFilter(x, sc.P0, m, 1.0, sc.N, hx, fx, rng=frng)
    f.R = np.array(problem.R)           # filterpy's attributes, as a user sets them
    f.Q = np.array(problem.Q)
    truth = sc.x0.copy()
    updates = []
    for _ in range(cycles):
        truth = problem.fx(truth, None) + Lq @ rng.standard_normal(d)
        z = np.asarray(problem.hx(truth)) + Lr @ rng.standard_normal(m)
        f.predict()
        before = (hx.calls, hx.rows, fx.calls, Counter(frng.draws), Counter(frng.variates),
                  Counter(frng.sites))
        with recorder.recording():
            f.update(z)
        updates.append({
            "lines": recorder.last, "calls": recorder.last_calls,
            "hx_calls": hx.calls - before[0], "hx_passes": (hx.rows - before[1]) / sc.N,
            "fx_calls": fx.calls - before[2],
            "noise_draws": sum((frng.draws - before[3]).values()),
            "noise_variates": sum((frng.variates - before[4]).values()),
            "draws_by_method": dict(frng.draws - before[3]),
            "draws_by_site": dict(frng.sites - before[5]),
            "kernel_used": str(getattr(f, "kernel_used", None)),   # diagnostic only
        })
    rmse = float(np.sqrt(np.mean((np.asarray(f.x) - truth) ** 2)))
    return updates, rmse


def _union(updates):
    lines, calls = defaultdict(set), Counter()
    for u in updates:
        for k, v in u["lines"].items():
            lines[k] |= v
        calls.update(u["calls"])
    return lines, calls


def summarise(infos, updates):
    """Counts of the union of ``updates`` (see :func:`count_path`) plus per-update statistics."""
    lines, calls = _union(updates)
    out = count_path(infos, lines)
    out["module_edges"] = sorted({f"{_module_of(infos, a)}->{_module_of(infos, b)}" for a, b in calls})
    out["distinct_module_edges"] = len(out["module_edges"])
    per = []
    for u in updates:
        c = count_path(infos, u["lines"])
        per.append({"conditionals": c["conditionals"], "decisions": c["decisions"], "boolops": c["boolops"], "modules": c["modules"],
                    "cross_module_calls": sum(u["calls"].values()),
                    **{k: v for k, v in u.items() if k not in ("lines", "calls")}})
    if per:
        for key in ("conditionals", "decisions", "cross_module_calls", "hx_calls", "hx_passes", "fx_calls",
                    "noise_draws", "noise_variates"):
            vals = [p[key] for p in per]
            out[f"{key}_per_update"] = {"mean": float(np.mean(vals)), "min": min(vals), "max": max(vals)}
        out["kernels_used"] = dict(Counter(p["kernel_used"] for p in per))
        out["draws_by_method"] = dict(sum((Counter(p["draws_by_method"]) for p in per), Counter()))
        out["draws_by_site"] = dict(sorted(sum((Counter(p["draws_by_site"]) for p in per), Counter()).items()))
        out["per_update"] = per
    return out


def _git(args, cwd):
    try:
        return subprocess.run(["git"] + args, cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _fmt(r, key):
    d = r.get(f"{key}_per_update")
    if d is None:
        return "-"
    return f"{d['mean']:.3g}" if d["min"] == d["max"] else f"{d['mean']:.3g} [{d['min']:.3g}-{d['max']:.3g}]"


def print_table(results):
    cols = ("scenario", "cond", "decide", "guard", "boolop", "modules", "edges", "xcalls/u", "hx/u", "hx passes/u",
            "fx/u", "draws/u", "named", "inline", "policy")
    rows = [(name, r["conditionals"], r["decisions"], r["guards"], r["boolops"], r["modules"], r["distinct_module_edges"],
             _fmt(r, "cross_module_calls"), _fmt(r, "hx_calls"), _fmt(r, "hx_passes"), _fmt(r, "fx_calls"),
             _fmt(r, "noise_draws"), r["named_thresholds"], r["inline_thresholds"], r["policy_fields"])
            for name, r in results.items()]
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    for row in [cols] + rows:
        print("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=10, help="cycles per scenario, every update traced")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the counts here")
    ap.add_argument("--backend", choices=("monitoring", "settrace"), default=None)
    a = ap.parse_args(argv)

    import filterpy_diffusion
    package = "filterpy_diffusion"
    package_dir = os.path.dirname(os.path.realpath(filterpy_diffusion.__file__))
    recorder = LineRecorder(package_dir, a.backend)
    commit = _git(["rev-parse", "HEAD"], package_dir)
    # the code measured: the last commit that changed the package (HEAD may only add scripts)
    package_commit = _git(["log", "-1", "--format=%H", "--", "."], package_dir)
    dirty = _git(["status", "--porcelain", "--", "."], package_dir)
    print(f"package {package_dir}, HEAD {commit}, package last changed in {package_commit}"
          f"{' (package files modified since)' if dirty else ''}, "
          f"tracer {recorder.backend}, {a.cycles} updates per scenario")

    raw, rmses = {}, {}
    for i, sc in enumerate(scenarios(a.seed)):
        raw[sc.name], rmses[sc.name] = run_scenario(sc, a.cycles, a.seed + 10 * (i + 1), recorder)
    # analysed after the runs, so the constants of every module the path imported have their run-time values
    infos = analyse_package(package_dir, package)
    results = {name: summarise(infos, ups) for name, ups in raw.items()}
    for name in results:
        results[name]["rmse_last_cycle"] = rmses[name]
    total = results["all scenarios"] = summarise(infos, [u for ups in raw.values() for u in ups])

    print_table(results)
    print("(cond = decide + guard: a guard is an if whose body only raises or warns;"
          " counts: distinct over all traced updates; /u: per update, mean [min-max]; hx passes: members evaluated / N)")
    print("\nall scenarios:")
    print("  modules:", ", ".join(f"{m or '__init__'} ({n} lines)" for m, n in sorted(total["lines_by_module"].items())))
    print("  named thresholds:", ", ".join(f"{k}={v}" for k, v in total["named"].items()))
    if total["named_via_defaults"]:
        print("  named, only as default arguments:",
              ", ".join(f"{k}={v}" for k, v in total["named_via_defaults"].items()))
    print("  inline thresholds:", ", ".join(f"{t['module']}:{t['line']} {t['value']}" for t in total["inline"]))
    print("  policy fields:", ", ".join(total["policy"]) or "none")
    for name, r in results.items():
        if name != "all scenarios":
            print(f"  {name}: kernel_used {r['kernels_used']}; rng calls {r['draws_by_method']}")
    print("  rng call sites (all updates):", ", ".join(f"{k} x{v}" for k, v in total["draws_by_site"].items()))
    if a.json:
        # This script may be newer than the checkout it measures (a "before" count).
        here = os.path.dirname(os.path.realpath(__file__))
        script_commit = _git(["rev-parse", "HEAD"], here)
        args = " ".join(argv if argv is not None else sys.argv[1:])
        if os.path.realpath(os.path.join(here, "..", package)) == package_dir:
            command = f"PYTHONPATH=$PWD python benchmarks/default_path.py {args}"
        else:
            command = (f"cd <checkout of {(commit or '?')[:7]}> && PYTHONPATH=$PWD python "
                       f"<benchmarks/default_path.py of {(script_commit or '?')[:7]}> {args}")
        doc = {"commit": commit, "package_commit": package_commit, "package_files_modified": bool(dirty), "package_dir": package_dir,
               "python": sys.version.split()[0], "numpy": np.__version__, "tracer": recorder.backend,
               "settings": {"cycles": a.cycles, "seed": a.seed, "trivial_literals": list(TRIVIAL_LITERALS),
                            "scenarios": {sc.name: {"problem": sc.problem, "N": sc.N} for sc in scenarios(a.seed)}},
               "script_commit": script_commit,
               "command": command,
               "results": results}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as fh:
            json.dump(doc, fh, indent=1, default=float)
            fh.write("\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
