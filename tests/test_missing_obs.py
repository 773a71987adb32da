"""Missing observations: masked or None components of z.

A missing component must not influence the analysis at all, and the update
must be exactly the update of a filter built for the observed components
only (hx restricted, the R sub-block), with the same random draws.
"""
import warnings

import numpy as np
import pytest

from filterpy_diffusion import (LETKF, DiffusionKDEFilter, LocalDiffusionKDEFilter,
                                ParticleFilter)

DIM = 4
R_FULL = 0.3 * (np.eye(DIM) + 0.3 * (np.eye(DIM, k=1) + np.eye(DIM, k=-1)))
OBSERVED = np.array([0, 2, 3])
Z_VALUES = np.array([0.4, 0.0, -0.3, 1.1])


def fx(x, dt):
    return x + dt * np.sin(x)


def hx(x):
    return np.array([x[0], x[1] + 0.2 * x[2] ** 2, x[2], x[3] - x[0]])


def simulate(x, rng):
    return hx(x) + 0.5 * rng.standard_t(5, size=DIM)


def _local(idx):
    pos = np.arange(DIM, dtype=float)
    return dict(state_positions=pos, obs_positions=pos[idx], radius=1.0)


FILTERS = {
    "diffusion-auto": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx, **kw),
    "diffusion-covariance-sde": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        kernel="covariance", sampler="sde", steps=4, **kw),
    "diffusion-enkpf": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        kernel="enkpf", **kw),
    "diffusion-isotropic": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        kernel="isotropic", **kw),
    "diffusion-simulator": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        simulate=_restricted_sim(idx), **kw),
    "diffusion-etkf": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        kernel="etkf", **kw),
    "diffusion-bridge": lambda idx, **kw: DiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        kernel="bridge", **kw),
    "particle": lambda idx, **kw: ParticleFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        resample_threshold=1.0, jitter=0.1, **kw),
    "local-diffusion": lambda idx, **kw: LocalDiffusionKDEFilter(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        **_local(idx), **kw),
    "letkf": lambda idx, **kw: LETKF(
        np.zeros(DIM), np.eye(DIM), len(idx), 0.1, 40, _restricted(hx, idx), fx,
        inflation="adaptive", **_local(idx), **kw),
}
ALL = np.arange(DIM)


def _restricted(h, idx):
    if len(idx) == DIM:
        return h
    return lambda x: h(x)[idx]


def _restricted_sim(idx):
    if len(idx) == DIM:
        return simulate
    return lambda x, rng: simulate(x, rng)[idx]


def _build(name, idx=ALL, seed=3):
    f = FILTERS[name](idx, rng=seed)
    f.R = R_FULL[np.ix_(idx, idx)]
    f.Q = 0.01 * np.eye(DIM)
    return f


def _state(f):
    return (f.sigmas.copy(), f.x.copy(), f.P.copy(), f.weights.copy(), f.ess,
            f.log_likelihood, f.rng.bit_generator.state)


def _assert_same(a, b):
    for u, v in zip(_state(a), _state(b)):
        if isinstance(u, np.ndarray):
            np.testing.assert_array_equal(u, v)
        else:
            assert u == v


def _masked(hidden):
    z = Z_VALUES.copy()
    z[1] = hidden
    return np.ma.array(z, mask=[i not in OBSERVED for i in range(DIM)])


def _cycle(f, z, n=2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(n):
            f.predict()
            f.update(z)
    return f


@pytest.mark.parametrize("name", FILTERS)
def test_hidden_value_never_changes_the_analysis(name):
    a = _cycle(_build(name), _masked(99.0))
    b = _cycle(_build(name), _masked(-1e6))
    _assert_same(a, b)
    assert np.ma.isMaskedArray(a.z) and list(a.z.mask) == [False, True, False, False]
    np.testing.assert_array_equal(a.z.compressed(), Z_VALUES[OBSERVED])


@pytest.mark.parametrize("name", FILTERS)
def test_masked_update_equals_filter_of_the_observed_components(name):
    masked = _cycle(_build(name), _masked(99.0))
    reduced = _cycle(_build(name, OBSERVED), Z_VALUES[OBSERVED])
    _assert_same(masked, reduced)
    # And the missing component matters when it is observed: not a vacuous pass.
    full = _cycle(_build(name), Z_VALUES)
    assert not np.array_equal(full.sigmas, masked.sigmas)


@pytest.mark.parametrize("name", FILTERS)
def test_none_entries_are_missing(name):
    a = _cycle(_build(name), _masked(99.0))
    z = [v if i in OBSERVED else None for i, v in enumerate(Z_VALUES)]
    b = _cycle(_build(name), z)
    _assert_same(a, b)
    c = _cycle(_build(name), np.array(z, dtype=object).reshape(DIM, 1))   # a column
    _assert_same(a, c)


@pytest.mark.parametrize("name", FILTERS)
def test_all_masked_is_update_none(name):
    a = _cycle(_build(name), np.ma.array(Z_VALUES, mask=True))
    b = _cycle(_build(name), None)
    _assert_same(a, b)
    assert a.z.shape == (DIM, 1) and all(v is None for v in a.z.ravel())
    c = _cycle(_build(name), [None] * DIM)
    _assert_same(b, c)


@pytest.mark.parametrize("name", ["diffusion-auto", "particle", "letkf"])
def test_batch_filter_with_masked_array(name):
    rng = np.random.default_rng(5)
    zs = np.ma.array(rng.normal(size=(4, DIM)), mask=rng.random((4, DIM)) < 0.4)
    zs.mask[2] = True           # one step without any observation
    zs.mask[3] = False          # and one fully observed
    a = _build(name)
    means, covs = a.batch_filter(zs)
    b = _build(name)
    for k in range(4):
        b.predict()
        b.update(zs[k])
        np.testing.assert_array_equal(means[k], b.x)
        np.testing.assert_array_equal(covs[k], b.P)
    _assert_same(a, b)
    # A fully masked row is skipped: its mean is the forecast mean.
    c = _build(name)
    for k in range(3):
        c.predict()
        if k < 2:
            c.update(zs[k])
    np.testing.assert_array_equal(means[2], c.x)


def test_batch_filter_one_dimensional_masked_sequence():
    def h1(x):
        return x[:1]
    zs = np.ma.array([0.2, 5.0, 0.1], mask=[0, 1, 0])
    a = DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 0.1, 30, h1, fx, rng=1)
    b = DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 0.1, 30, h1, fx, rng=1)
    means, _ = a.batch_filter(zs)
    b.batch_filter([0.2, None, 0.1])
    _assert_same(a, b)


@pytest.mark.parametrize("name", ["diffusion-auto", "particle", "local-diffusion"])
def test_nan_in_an_observed_component_suggests_a_mask(name):
    f = _build(name)
    f.predict()
    before = _state(f)
    z = Z_VALUES.copy()
    z[1] = np.nan
    with pytest.raises(ValueError, match=r"z contains NaN or inf \(component 1: nan\).*masked"):
        f.update(z)
    for u, v in zip(before, _state(f)):
        np.testing.assert_equal(u, v)
    # The same NaN under a mask is a missing observation.
    f.update(np.ma.masked_invalid(z))
    assert np.ma.isMaskedArray(f.z)


def test_gain_of_a_masked_update_has_filterpys_shapes_with_zero_unobserved_columns():
    # K, S, SI keep (dim_x, dim_z) / (dim_z, dim_z); the observed block equals
    # the gain of a filter built for the observed components only.
    import filterpy_diffusion as fd
    x0, P0 = np.zeros(3), np.eye(3)
    full = fd.DiffusionKDEFilter(x0, P0, 3, 1.0, 40, lambda x: x.copy(), lambda x, dt: x, rng=5)
    part = fd.DiffusionKDEFilter(x0, P0, 2, 1.0, 40, lambda x: x[[0, 2]], lambda x, dt: x, rng=5)
    part.R = full.R[np.ix_([0, 2], [0, 2])]
    full.update(np.ma.array([0.3, 9.0, -0.2], mask=[0, 1, 0]))
    part.update(np.array([0.3, -0.2]))
    assert full.K.shape == (3, 3) and full.S.shape == (3, 3) and full.SI.shape == (3, 3)
    np.testing.assert_array_equal(full.K[:, 1], 0.0)
    np.testing.assert_array_equal(full.S[1], 0.0)
    np.testing.assert_array_equal(full.SI[:, 1], 0.0)
    np.testing.assert_allclose(full.K[:, [0, 2]], part.K)
    np.testing.assert_allclose(full.S[np.ix_([0, 2], [0, 2])], part.S)
