"""Constructor options: every combination is checked at construction, none is silently dropped."""
import numpy as np
import pytest

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.diffusion import sampler_keywords
from filterpy_diffusion.localization import LETKF, LocalDiffusionKDEFilter

F = np.array([[1.0, 1.0], [0.0, 1.0]])


def fx(x, dt):
    return F @ x


def hx(x):
    return x[:1]


def make(seed=0, **kw):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, 40, hx, fx, rng=seed, **kw)
    f.R = np.array([[0.5]])
    f.Q = 0.02 * np.eye(2)
    return f


def run(f, zs=(1.1, 1.9, 3.2)):
    for z in zs:
        f.predict()
        f.update(z)
    return f


def test_sigma_x_and_sigma_y_select_the_isotropic_kernel():
    f = run(make(sigma_x=0.05, sigma_y=0.05))
    assert f.kernel == 'isotropic' and f.kernel_used == 'isotropic'
    np.testing.assert_array_equal(f.bandwidth_x, [0.05, 0.05])
    np.testing.assert_array_equal(f.bandwidth_y, [0.05])
    g = run(make(kernel='isotropic', sigma_x=0.05, sigma_y=0.05))
    np.testing.assert_array_equal(f.sigmas, g.sigmas)


def test_sigma_x_alone_selects_the_isotropic_kernel_with_automatic_sigma_y():
    f = run(make(sigma_x=0.3))
    assert f.kernel == 'isotropic' and f.sigma_y == 'auto' and f.kernel_used == 'isotropic'
    np.testing.assert_array_equal(f.bandwidth_x, [0.3, 0.3])
    g = run(make(kernel='isotropic', sigma_x=0.3, sigma_y='auto'))
    np.testing.assert_array_equal(f.sigmas, g.sigmas)


def test_the_kernel_attribute_shows_the_resolved_kernel():
    assert make().kernel == 'auto'
    assert make(sigma_y=0.2).kernel == 'isotropic'


@pytest.mark.parametrize("kernel", ['auto', 'covariance', 'enkpf'])
@pytest.mark.parametrize("given", [dict(sigma_x=0.1), dict(sigma_y='scott'),
                                   dict(sigma_x='auto', sigma_y='auto')])
def test_sigma_with_another_kernel_is_an_error(kernel, given):
    with pytest.raises(ValueError, match="isotropic kernel.*conflicts with kernel="):
        make(kernel=kernel, **given)


@pytest.mark.parametrize("kw, match", [
    (dict(kernel='isotropic', bandwidth=0.5), "does not apply to kernel='isotropic'"),
    (dict(sigma_x=0.1, bandwidth='scott'), "does not apply to kernel='isotropic'"),
    (dict(kernel='covariance', bandwidth=0.5, ess_target=0.5), "ess_target sets the automatic"),
    (dict(kernel='enkpf', bandwidth='scott', ess_target=0.5), "ess_target sets the automatic"),
    (dict(sigma_x=0.1, sigma_y=0.1, ess_target=0.5), "ess_target sets the automatic"),
    (dict(kernel='enkpf', clusters=2), "never"),
    (dict(kernel='isotropic', clusters=2), "never"),
    (dict(kernel='enkpf', evidence_threshold=3.0), "never split"),
    (dict(kernel='isotropic', evidence_threshold=3.0), "never split"),
    (dict(kernel='covariance', clusters=1, evidence_threshold=3.0), "never split"),
    (dict(sampler='exact', steps=8), "samples exactly"),
    (dict(sampler='exact', sampler_options={'rho': 5.0}), "samples exactly"),
    (dict(kernel='enkpf', steps=8), "samples exactly"),
    (dict(kernel='enkpf', sampler_options={'solver': 'heun'}), "samples exactly"),
    (dict(steps=True), "steps must be a positive integer"),
    (dict(sampler_options={'sigmamax': 3.0}), r"\['sigmamax'\] are not accepted by sampler='ode'"),
    (dict(sampler='sde', sampler_options={'solver': 'heun'}), "not accepted by sampler='sde'"),
    (dict(kernel='covariance', sampler_options={'solver': 'rk4'}), "solver"),
    (dict(kernel='covariance', sampler_options={'rho': -1.0}), "rho"),
    (dict(kernel='covariance', sampler_options={'sigma_max': np.inf}), "sigma_max"),
    (dict(kernel='covariance', sampler_options=['rho']), "must be a dict"),
    (dict(ess_target=True), "ess_target"),
    (dict(inflation=True), "inflation must be"),
    (dict(inflation=np.inf), r"inflation must be .* a float >= 1"),   # was accepted
    (dict(inflation='fixed'), "'auto', 'adaptive', 'finite-size', None or a float"),
])
def test_ignored_or_malformed_options_are_errors_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        make(**kw)


@pytest.mark.parametrize("sampler, key, value", [
    ('ode', 'sigma_max', 30.0), ('ode', 'solver', 'heun'), ('ode', 'rho', 5.0),
    ('sde', 'sigma_max', 30.0), ('sde', 'rho', 5.0)])
def test_every_accepted_sampler_option_runs_and_matters(sampler, key, value):
    assert key in sampler_keywords(sampler)
    f = run(make(kernel='covariance', sampler=sampler, steps=6, sampler_options={key: value}))
    g = run(make(kernel='covariance', sampler=sampler, steps=6))
    assert not np.array_equal(f.sigmas, g.sigmas)


def test_steps_are_rejected_only_where_no_update_uses_them():
    with pytest.raises(ValueError, match="samples exactly"):
        make(kernel='enkpf', steps=6)
    # kernel='auto' uses the covariance kernel (ODE) on some updates.
    f = make(steps=6, sampler_options={'solver': 'heun'})
    assert f.steps == 6 and f.sampler_options == {'solver': 'heun'}


# -------------------------------------------------------------- local filters
D = 6


def local(cls, **kw):
    return cls(np.zeros(D), np.eye(D), D, 1.0, 8, lambda x: x, lambda x, dt: x, rng=0, **kw)


POS = dict(state_positions=np.arange(D), obs_positions=np.arange(D), domain_length=D)


def one_obs(j):
    return [j], [1.0]


@pytest.mark.parametrize("kw, match", [
    (dict(POS, steps=8), "sampler='exact' takes none"),
    (dict(POS, bandwidth=0.5, ess_target=0.5), "ess_target sets bandwidth='auto'"),
    (dict(POS, ess_target=True), "ess_target must be"),
    (dict(local_obs=one_obs, radius=3.0), "local_obs brings its own taper"),
])
def test_local_filter_options_ignored_or_malformed_are_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        local(LocalDiffusionKDEFilter, **kw)


def test_letkf_radius_with_local_obs_is_an_error():
    with pytest.raises(ValueError, match="local_obs brings its own taper"):
        local(LETKF, local_obs=one_obs, radius=3.0)
    assert local(LETKF, local_obs=one_obs).local.k_max == 1


def test_local_filter_defaults_resolve_and_steps_go_with_the_ode():
    from filterpy_diffusion.localization import DEFAULT_RADIUS, LOCAL_ESS_TARGET
    f = local(LocalDiffusionKDEFilter, **POS)
    assert f.radius == DEFAULT_RADIUS and f.ess_target == LOCAL_ESS_TARGET
    assert local(LocalDiffusionKDEFilter, sampler='ode', steps=4, **POS).steps == 4
    with pytest.raises(ValueError, match="sampler='exact' takes none"):
        local(LocalDiffusionKDEFilter, steps=4, **POS)
