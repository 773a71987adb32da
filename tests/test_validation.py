"""The shared checks and linear-algebra helpers of ``_validation``."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from scipy.linalg import LinAlgError, solve_triangular

from filterpy_diffusion._validation import as_covariance, cholesky_factor, is_singular, triangular_solve

entries = st.floats(-10, 10, allow_nan=False, width=64)


@st.composite
def triangular_systems(draw):
    m = draw(st.integers(1, 6))
    A = draw(hnp.arrays(float, (m, m), elements=entries))
    # A unit-dominant diagonal keeps the system well posed; the sign varies.
    signs = draw(hnp.arrays(float, m, elements=st.sampled_from([-1.0, 1.0])))
    L = np.tril(A, -1) + np.diag(signs * (1.0 + np.abs(np.diag(A))))
    lower = draw(st.booleans())
    if not lower:
        L = L.T.copy()
    if draw(st.booleans()):
        L = np.asfortranarray(L)
    shape = draw(st.sampled_from([(m,), (m, 1), (m, 7)]))
    B = draw(hnp.arrays(float, shape, elements=entries))
    return L, B, lower, draw(st.booleans())


@given(triangular_systems())
def test_triangular_solve_is_scipy_solve_triangular_bit_for_bit(system):
    L, B, lower, trans = system
    ref = solve_triangular(L, B, lower=lower, trans='T' if trans else 'N')
    out = triangular_solve(L, B, lower=lower, trans=trans)
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)


def test_triangular_solve_of_a_transposed_c_array_matches_scipy():
    # The default path passes (U - mu).T, an F-ordered view of a C array.
    rng = np.random.default_rng(0)
    U = rng.normal(size=(100, 3))
    L = np.linalg.cholesky(np.cov(U.T))
    np.testing.assert_array_equal(triangular_solve(L, (U - U.mean(0)).T),
                                  solve_triangular(L, (U - U.mean(0)).T, lower=True))


def test_triangular_solve_of_a_singular_matrix_raises():
    L = np.array([[1.0, 0.0], [2.0, 0.0]])
    with pytest.raises(LinAlgError, match="singular triangular matrix"):
        triangular_solve(L, np.ones(2))


@given(hnp.arrays(float, (3, 3), elements=st.floats(-1, 1, width=64)),
       st.floats(0.0, 1e-13))
def test_as_covariance_accepts_symmetry_up_to_rounding(A, eps):
    P = A @ A.T + np.eye(3)
    Q = P.copy()
    Q[0, 1] += eps * np.abs(P).max()       # asymmetric at the rounding level
    out = as_covariance(Q, "P", 3)
    np.testing.assert_array_equal(out, out.T)
    np.testing.assert_allclose(out, P, rtol=0, atol=1e-9 * np.abs(P).max())


def test_as_covariance_rejects_an_asymmetric_matrix():
    P = np.eye(3)
    P[0, 1] = 0.5
    with pytest.raises(ValueError, match="P must be symmetric"):
        as_covariance(P, "P", 3)


def test_remembered_checks_return_fresh_copies_and_do_not_keep_failures():
    # The checks remember results by content (an update checks one R
    # several times): a caller that writes into a result must not change
    # what the next call gets, and a bad matrix must fail every time.
    R = np.array([[2.0, 0.5], [0.5, 1.0]])
    first = as_covariance(R, "R", 2)
    first[0, 0] = -7.0
    np.testing.assert_array_equal(as_covariance(R.copy(), "R", 2), R)
    L = cholesky_factor(R, "here", "fix it")
    L[:] = 0.0
    np.testing.assert_array_equal(cholesky_factor(R, "here", "fix it"), np.linalg.cholesky(R))
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])       # indefinite
    for _ in range(2):
        with pytest.raises(ValueError, match="positive semi-definite"):
            as_covariance(bad, "R", 2)
    assert is_singular(np.diag([1.0, 0.0])) and not is_singular(R)
    # allow_singular is part of what is remembered.
    as_covariance(np.diag([1.0, 0.0]), "R", 2)
    with pytest.raises(ValueError, match="positive definite"):
        as_covariance(np.diag([1.0, 0.0]), "R", 2, allow_singular=False)


def test_large_covariances_are_checked_once_and_again_when_they_change(monkeypatch):
    # A Q of more than 4096 entries is remembered beside a copy: the same
    # content is not checked again (no eigendecomposition), a changed one is.
    import filterpy_diffusion._validation as v
    calls = []
    original = np.linalg.eigvalsh

    def counting(a, *args, **kw):
        calls.append(a.shape)
        return original(a, *args, **kw)
    monkeypatch.setattr(v.np.linalg, "eigvalsh", counting)
    rng = np.random.default_rng(0)
    B = rng.normal(size=(80, 80))
    Q = B @ B.T / 80 + np.eye(80)
    first = as_covariance(Q, "Q", 80)
    second = as_covariance(Q.copy(), "Q", 80)
    assert len(calls) == 1 and np.array_equal(first, second)
    second[0, 0] = 1e9       # the caller's copy: the remembered result is not touched
    assert np.array_equal(as_covariance(Q, "Q", 80), first) and len(calls) == 1
    bad = Q.copy()
    bad[3, 3] = -50.0
    with pytest.raises(ValueError, match="positive semi-definite"):
        as_covariance(bad, "Q", 80)
    assert len(calls) == 2
