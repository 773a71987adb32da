"""docs/api.md is checked against the code.

Every constructor parameter (``inspect.signature``), every attribute listed
in a class's numpydoc ``Attributes`` section, every public attribute a
filter sets on a small run, and every public method must be named in that
class's section of docs/api.md (``## ClassName``), as a backtick span that
starts with the name (`` `name` ``, `` `name(...)` ``, `` `name=...` ``).
A new option or attribute without a line in api.md fails here.
"""
import dataclasses
import inspect
import pathlib
import re
import warnings

import numpy as np
import pytest

import filterpy_diffusion as fd
from filterpy_diffusion.ensemble import EnsembleFilter

API_MD = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.md"
SHARED = "Ensemble filters, shared"


def sections(text):
    """``{heading: body}`` for every ``## heading`` of a Markdown text."""
    out, name, body = {}, None, []
    for line in text.splitlines():
        if line.startswith("## "):
            if name is not None:
                out[name] = "\n".join(body)
            name, body = line[3:].strip().strip("`"), []
        elif name is not None:
            body.append(line)
    if name is not None:
        out[name] = "\n".join(body)
    return out


def documented_names(body):
    """Names that a backtick span of ``body`` starts with."""
    names = set()
    for span in re.findall(r"`([^`\n]+)`", body):
        m = re.match(r"\s*([A-Za-z_][A-Za-z_0-9]*)", span)
        if m:
            names.add(m.group(1))
    return names


def docstring_attributes(cls):
    """Names in the numpydoc ``Attributes`` section of ``cls.__doc__``."""
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    names = []
    for k in range(len(lines) - 1):
        if lines[k].strip() == "Attributes" and set(lines[k + 1].strip()) == {"-"}:
            j = k + 2
            while j < len(lines):
                line = lines[j]
                if j + 1 < len(lines) and line.strip() and set(lines[j + 1].strip()) == {"-"}:
                    break                                   # next section header
                if line and not line[0].isspace():          # an entry, not its description
                    head = line.split(" : ")[0]
                    names += [n.strip() for n in head.split(",") if n.strip()]
                j += 1
    return [n for n in names if n.isidentifier()]


def constructor_parameters(cls):
    return [p.name for p in inspect.signature(cls).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def public_methods(cls):
    return [n for n, v in inspect.getmembers(cls)
            if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, property))]


def missing(cls, names, heading=None):
    docs = sections(API_MD.read_text(encoding="utf-8"))
    heading = heading or cls.__name__
    assert heading in docs, f"docs/api.md has no section '## {heading}'"
    body = docs[heading]
    if isinstance(cls, type) and issubclass(cls, EnsembleFilter):
        body += "\n" + docs[SHARED]
    have = documented_names(body)
    return sorted(set(n for n in names if n not in have))


# -- small runs, to collect the attributes the filters really set -----------------------

_F = np.array([[1., 1.], [0., 1.]])


def _fx(x, dt):
    return _F @ x


def _hx(x):
    return x[:1]


def _run(f, z):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f.predict()
        f.update(z)
    return f


def _global_runs(cls):
    if cls is fd.DiffusionKDEFilter:
        configs = [{}, {"kernel": "bridge"}, {"kernel": "etkf"}, {"kernel": "covariance"},
                   {"sigma_x": 0.3}]
    else:
        configs = [{}]
    return [_run(cls(np.zeros(2), np.eye(2), 1, 1.0, 30, _hx, _fx, rng=0, **kw), np.array([0.5]))
            for kw in configs]


def _local_runs(cls):
    from filterpy_diffusion.systems import IdentityObs, LorenzModel
    d = 8
    f = cls(np.full(d, 8.0), np.eye(d), d, 0.05, 10, IdentityObs(), LorenzModel("l96", 0.05, 1),
            state_positions=np.arange(d), obs_positions=np.arange(d), domain_length=d, rng=0,
            vectorized=True)
    f.Q = np.zeros((d, d))
    return [_run(f, np.full(d, 8.0))]


def set_attributes(objs):
    return sorted({n for o in objs for n in vars(o) if not n.startswith("_")})


FILTERS = [(fd.DiffusionKDEFilter, _global_runs), (fd.ParticleFilter, _global_runs),
           (fd.LocalDiffusionKDEFilter, _local_runs), (fd.LETKF, _local_runs)]


# -- the checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [c for c, _ in FILTERS] + [fd.ConditionalKDE],
                         ids=lambda c: c.__name__)
def test_constructor_parameters_are_documented(cls):
    assert missing(cls, constructor_parameters(cls)) == []


@pytest.mark.parametrize("cls", [c for c, _ in FILTERS] + [fd.ConditionalKDE],
                         ids=lambda c: c.__name__)
def test_docstring_attributes_and_methods_are_documented(cls):
    names = docstring_attributes(cls)
    assert names, f"{cls.__name__} docstring has no Attributes section to check"
    assert missing(cls, names + public_methods(cls)) == []


@pytest.mark.parametrize("cls, runs", FILTERS, ids=lambda c: getattr(c, "__name__", ""))
def test_attributes_set_by_a_run_are_documented(cls, runs):
    assert missing(cls, set_attributes(runs(cls))) == []


DENSITIES = [fd.CovarianceKDE, fd.EnKPFDensity, fd.ClusteredKDE, fd.GaussianMixture]


@pytest.mark.parametrize("cls", DENSITIES, ids=lambda c: c.__name__)
def test_density_parameters_attributes_and_methods_are_documented(cls):
    names = constructor_parameters(cls) + docstring_attributes(cls) + public_methods(cls)
    assert missing(cls, names) == []


def _densities():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(size=(20, 2)) - 5.0, rng.normal(size=(20, 2)) + 5.0]
    hz = x[:, :1]
    y = hz + rng.normal(size=(40, 1))
    R = np.eye(1)
    z = [0.3]
    iso = fd.ConditionalKDE(x, y, 0.1, 0.1)
    cov = fd.CovarianceKDE(x, y, 0.5, R=R, predictions=hz)
    cov_sim = fd.CovarianceKDE(x, y, 0.5)                    # a simulator: no R, a ridge
    enkpf = fd.EnKPFDensity(x, hz, R, g=0.5)
    clustered = fd.ClusteredKDE(x, y, 0.5, (x[:, 0] > 0).astype(int), R=R, predictions=hz)
    for d in (iso, cov, cov_sim, enkpf):
        d.conditional(z)
    clustered.weights(z)
    return {fd.ConditionalKDE: [iso], fd.CovarianceKDE: [cov, cov_sim],
            fd.EnKPFDensity: [enkpf], fd.ClusteredKDE: [clustered],
            fd.GaussianMixture: [iso.conditional(z), cov.conditional(z)]}


@pytest.mark.parametrize("cls", [fd.ConditionalKDE] + DENSITIES, ids=lambda c: c.__name__)
def test_density_attributes_set_by_use_are_documented(cls):
    assert missing(cls, set_attributes(_densities()[cls])) == []


def test_policy_fields_are_documented():
    policy = pytest.importorskip("filterpy_diffusion.policy",
                                 reason="filterpy_diffusion.policy not in this tree")
    names = [f.name for f in dataclasses.fields(policy.Policy)] + public_methods(policy.Policy)
    assert missing(policy.Policy, names) == []


@pytest.mark.parametrize("name", ["DiffusionKDE", "LocalDiffusionKDE"])
def test_dapper_method_fields_are_documented(name):
    pytest.importorskip("dapper", reason="DAPPER not installed (the dapper extra)")
    from filterpy_diffusion import dapper as fdd
    cls = getattr(fdd, name)
    names = [f.name for f in dataclasses.fields(cls)] + public_methods(cls)
    assert missing(cls, names, heading=name) == []


def test_the_checker_reports_a_missing_name(tmp_path, monkeypatch):
    """The parser itself: a name dropped from a section is reported, a span's leading name counts."""
    body = "## Thing\n\n| `alpha` | x |\n|---|---|\n`beta(z)` and `gamma=3`, not delta\n## Other\n`delta`\n"
    assert documented_names(sections(body)["Thing"]) == {"alpha", "beta", "gamma"}
    fake = tmp_path / "api.md"
    fake.write_text(body, encoding="utf-8")
    monkeypatch.setitem(globals(), "API_MD", fake)

    class Thing:
        """A thing.

        Attributes
        ----------
        alpha, delta : float
            Two numbers.
        """
    assert docstring_attributes(Thing) == ["alpha", "delta"]
    assert missing(Thing, docstring_attributes(Thing)) == ["delta"]
