"""Local algebra: every domain's whitened frame, conditional KDE and ETKF transform, batched.

Domain ``j`` works in scaled coordinates ``y~_l = sqrt(rho_jl) y_l`` (the
same as inflating R to ``D^-1/2 R_sub D^-1/2``, ``D = diag(rho)``, but finite
when ``rho -> 0``). All d domains are computed at once on the padded
``(d, k_max)`` observation lists of :class:`~.taper.LocalObs` (padding has
``rho = 0`` and unit noise, so it contributes exactly nothing): stacked
``(d, N, k)`` anomalies, batched Cholesky factors, one symmetric
eigendecomposition of size k per domain. The ETKF transform is
:func:`filterpy_diffusion.etkf.transform_anomalies` applied per domain, the
bandwidth search :func:`filterpy_diffusion.bandwidth.select_by_ess` batched
over the domains.
"""
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..bandwidth import select_by_ess
from ..weights import effective_sample_size_rows
from ..etkf import finite_size_inflation, mean_weights, transform_anomalies
from ..filter import H_RANGE

__all__ = ["LocalKDE", "local_covariance_kde", "LOCAL_ESS_TARGET", "letkf_analysis",
           "local_informed_dimension"]

#: Default ESS target of the local filter's automatic bandwidth. Higher than
#: DiffusionKDEFilter's 0.5: the local weights also see the simulated
#: observation noise. On l96-40 at N = 20 (tuning seeds 0-2, 500 cycles,
#: c = 6; ``python benchmarks/localization.py --experiment ess``) the RMSE
#: for targets 0.5 / 0.7 / 0.8 / 0.9 / 0.95 is 0.248 / 0.224 / 0.222 /
#: 0.210 / 0.222 (median h about 0.99 at 0.9). Rechecked with the
#: ``'rotation'`` stitching at N = 10 and 20 (``docs/localization.md``,
#: ``docs/data/local_tuning.json``): 0.9 has the lowest RMSE averaged over both.
LOCAL_ESS_TARGET = 0.9


def _local_blocks(loc, R):
    """sqrt(rho) (d, k) and the local noise blocks R_sub (d, k, k), identity on padding."""
    idx, mask = loc.indices, loc.mask
    both = mask[:, :, None] & mask[:, None, :]
    Rs = np.where(both, R[idx[:, :, None], idx[:, None, :]], 0.0)
    k = np.arange(loc.k_max)
    Rs[:, k, k] += ~mask
    return np.sqrt(loc.taper), Rs


def _gather(a, loc, scale=None):
    """Columns of ``a`` (N, m) per domain: (d, N, k), padding 0, optionally times scale (d, k)."""
    g = np.moveaxis(a[:, loc.indices], 0, 1)            # (d, N, k)
    g = np.where(loc.mask[:, None, :], g, 0.0)
    return g if scale is None else g * scale[:, None, :]


def _log_kernel(e, b, h):
    """``-|(e - a b) / h|^2 / 2`` per domain and member: e (d, k), b (d, k, N), h (d,) -> (d, N)."""
    a = np.sqrt(1.0 - h * h)
    r = (e[:, :, None] - a[:, None, None] * b) / h[:, None, None]
    return -0.5 * np.einsum('jkn,jkn->jn', r, r)


def _select_h(e, b, target, lo, hi):
    """One h per domain (d,) by :func:`~filterpy_diffusion.bandwidth.select_by_ess`, batched.

    The squared distance ``|e - a b_i|^2 = |e|^2 - 2 a e.b_i + a^2 |b_i|^2``
    is expanded once, so each of the 18 ESS evaluations costs O(d N), not
    O(d N k). (Only the search uses the expansion; the final weights are
    computed directly.)
    """
    ee = np.einsum('jk,jk->j', e, e)[:, None]
    eb = np.einsum('jk,jkn->jn', e, b)
    bb = np.einsum('jkn,jkn->jn', b, b)

    def log_weights_at(h):
        a = np.sqrt(1.0 - h * h)[:, None]
        return -0.5 * (ee - 2.0 * a * eb + a * a * bb) / (h * h)[:, None]

    return select_by_ess(log_weights_at, target, lo, hi, batch=e.shape[0])


@dataclass(frozen=True, eq=False)
class LocalKDE:
    """Every domain's conditional KDE ``p(x_j | z) = sum_i w_ij N(m_ij, S_j)``.

    Attributes
    ----------
    centres : ndarray (d, N)
        Component means ``m_ij``.
    log_weights : ndarray (d, N)
        Normalised log weights ``log w_ij``.
    S : ndarray (d,)
        Component variances ``h_j^2 Pa_j``.
    h : ndarray (d,)
        Bandwidth factor of each domain.
    ess : ndarray (d,)
        ``1 / sum_i w_ij^2``.
    mean : ndarray (d,)
        Kalman analysis mean ``mu_j + K_j (z~ - mu_y~)`` of each domain.
    Pa : ndarray (d,)
        Kalman analysis variance ``Cxx_j - K_j Cyx_j``.
    anomalies : ndarray (d, N)
        The local ETKF analysis anomalies (sample variance exactly ``Pa_j``),
        the directions of the ensemble-space kernel noise.
    gain : ndarray (d, k_max)
        ``K_j`` in scaled coordinates (0 on padding).
    """
    centres: np.ndarray
    log_weights: np.ndarray
    S: np.ndarray
    h: np.ndarray
    ess: np.ndarray
    mean: np.ndarray
    Pa: np.ndarray
    anomalies: np.ndarray
    gain: np.ndarray

    @property
    def weights(self):
        """ndarray (d, N): normalised weights."""
        return np.exp(self.log_weights)


def _r_blocks(local, R):
    """``sqrt(rho)`` (d, k) and ``L^-1`` (d, k, k) with ``L L^T = R_sub`` (identity on padding)."""
    sr, Rs = _local_blocks(local, np.asarray(R, dtype=float))
    try:
        return sr, np.linalg.inv(np.linalg.cholesky(Rs))
    except np.linalg.LinAlgError:
        raise ValueError(
            "R is singular on the local observations of a domain (a noise-free observation): "
            "the local filters whiten every domain by its block of R, so R must be positive "
            "definite there. Give noise-free components a small positive variance, or use "
            "DiffusionKDEFilter, which assimilates a singular R") from None


def _whitened(states, predictions, z, R, local, blocks=None):
    """Per-domain pieces in the frame where the local ``Chh`` is diagonal and ``R_sub`` is I.

    With ``L L^T = R_sub`` and the scaled prediction anomalies
    ``B~ = sqrt(rho) (hx(x_i) - mean)[O_j]``, ``W = L^-1 B~^T`` (k, N) and
    ``W W^T / (N-1) = U diag(lam) U^T``, the frame is ``F = U^T L^-1``: there
    ``Chh = cov(B~)`` is ``diag(lam)`` and ``Cyy = Chh + R_sub`` is
    ``diag(lam + 1)``. The LETKF and the local KDE both work in it.

    Returns
    -------
    dict with
    mu : (d,) forecast mean;  A : (N, d) forecast anomalies;  Cxx : (d,)
    F : (d, k, k) the frame ``U^T L^-1``
    sr : (d, k) ``sqrt(rho)`` (0 on padding)
    e : (d, k) ``F sqrt(rho) (z - mean hx)[O_j]``
    b : (d, k, N) ``F B~_i`` (= ``U^T W``)
    lam : (d, k) eigenvalues of ``Chh`` in the frame (0 on padding)
    g : (d, k) ``F Cov(h~, x_j)`` = ``b A_j / (N - 1)``

    ``blocks`` is ``_r_blocks(local, R)`` if already computed (it depends on R
    only, which rarely changes between cycles).
    """
    X = np.asarray(states, dtype=float)
    N = X.shape[0]
    hz = np.asarray(predictions, dtype=float)
    sr, Li = _r_blocks(local, R) if blocks is None else blocks
    mu = X.mean(0)
    A = X - mu
    hm = hz.mean(0)
    B = _gather(hz - hm, local, sr)                                 # (d, N, k)
    W = Li @ np.swapaxes(B, 1, 2)                                   # (d, k, N)
    lam, U = np.linalg.eigh(W @ np.swapaxes(W, 1, 2) / (N - 1))
    lam = np.maximum(lam, 0.0)
    F = np.swapaxes(U, 1, 2) @ Li
    b = np.swapaxes(U, 1, 2) @ W
    e = (F @ (sr * _gather((z - hm)[None, :], local)[:, 0, :])[:, :, None])[:, :, 0]
    g = (b @ A.T[:, :, None])[:, :, 0] / (N - 1)
    Cxx = np.einsum('nj,nj->j', A, A) / (N - 1)
    return dict(mu=mu, A=A, Cxx=Cxx, F=F, sr=sr, e=e, b=b, lam=lam, g=g)


def _local_svd(w):
    """Per-domain thin SVD of the whitened anomalies ``W^T`` (N, k): ``U`` (d, N, k), ``s`` (d, k)."""
    lam, A = w["lam"], w["A"]
    N = A.shape[0]
    # Directions without spread (padding, rounding-level eigenvalues) carry no
    # information: s = 0 there leaves them untransformed.
    pos = lam > 1e-12 * max(lam.max(), np.finfo(float).tiny)
    s = np.where(pos, np.sqrt((N - 1) * np.where(pos, lam, 1.0)), 0.0)
    U = np.swapaxes(w["b"], 1, 2) * np.where(pos, 1.0 / np.where(pos, s, 1.0), 0.0)[:, None, :]
    return U, s, pos


def local_informed_dimension(w):
    """Informed directions of every domain, ndarray (d,) of int.

    The rank of the domain's whitened scaled prediction anomalies (at most
    ``min(N - 1, k)``): the local counterpart of
    :func:`filterpy_diffusion.bridge.informed_dimension`, counting the
    directions :func:`letkf_analysis` transforms (eigenvalues above 1e-12
    of the largest of any domain; the global function's tolerance is
    ``max(N, m) eps`` on the singular values).
    """
    return _local_svd(w)[2].sum(axis=1)


def letkf_analysis(w, inflation=None, xN=1.0):
    """Every domain's ETKF analysis in the frame of :func:`_whitened`.

    Domain j is :func:`filterpy_diffusion.etkf.etkf_analysis` of the state
    variable ``x_j`` on its scaled local observations: the whitened
    anomalies ``W^T`` (N, k) have the thin SVD ``U s V^T`` with ``V`` the
    frame's eigenvectors, ``s = sqrt((N - 1) lam)`` and ``U = b^T / s``, and
    the whitened innovation in the basis V is ``e``; the mean and the
    symmetric square-root transform are then etkf's
    :func:`~filterpy_diffusion.etkf.mean_weights` and
    :func:`~filterpy_diffusion.etkf.transform_anomalies`, batched over the
    domains. The anomalies' sample variance is exactly the Kalman ``Pa_j``
    (of the inflated forecast).

    ``inflation='finite-size'``: each domain's own EnKF-N factor ``l_j``
    (:func:`filterpy_diffusion.etkf.finite_size_inflation` on the domain's
    singular values and innovation, the same solver as the global core),
    the local EnKF-N of Bocquet (2011); None: no inflation here.

    Returns
    -------
    mean : ndarray (d,)
    anomalies : ndarray (d, N)
    l : ndarray (d,)
        The anomaly inflation of every domain (ones without inflation).
    """
    A = w["A"]
    N = A.shape[0]
    U, s, _ = _local_svd(w)
    if inflation is None:
        l1 = np.ones(s.shape[0])
    elif inflation == "finite-size":
        # eigh orders ascending: the largest min(N, k) values are the last.
        r = min(N, s.shape[1])
        l1 = np.array([finite_size_inflation(s[j, -r:], w["e"][j, -r:], N, xN)
                       for j in range(s.shape[0])])
    else:
        raise ValueError(f"inflation must be None or 'finite-size', got {inflation!r}")
    mean = w["mu"] + np.einsum('jn,nj->j', mean_weights(U, s, w["e"], l1), A)
    return mean, transform_anomalies(A.T[:, :, None], U, s, l1)[:, :, 0], l1


def local_covariance_kde(states, predictions, measurements, z, R, local, bandwidth="auto",
                         ess_target=LOCAL_ESS_TARGET, blocks=None):
    """All d local covariance-kernel conditional KDEs of one analysis, batched.

    Parameters
    ----------
    states : ndarray (N, d)
        Forecast ensemble ``x_i``.
    predictions : ndarray (N, m)
        Noise-free ``hx(x_i)``.
    measurements : ndarray (N, m)
        Simulated measurements ``hx(x_i) + v_i``, ``v_i ~ N(0, R)`` (one draw
        shared by all domains).
    z : ndarray (m,)
        Observation.
    R : ndarray (m, m)
        Observation-error covariance.
    local : LocalObs
        Local observation lists (d, k_max) with taper weights.
    bandwidth : 'auto' or float in (0, 1)
        ``'auto'``: per domain, the smallest h in ``H_RANGE`` with local ESS
        ``>= ess_target * N``; a float: that h everywhere.
    ess_target : float in (0, 1]
    blocks : tuple, optional
        Cached R-dependent factors (``_r_blocks(local, R)``).

    Returns
    -------
    LocalKDE

    Notes
    -----
    Domain j equals ``CovarianceKDE(states[:, [j]], y~, h_j, R=R_sub,
    predictions=sqrt(rho_j) hx[:, O_j])`` conditioned on ``z~ = sqrt(rho_j)
    z[O_j]`` (``tests/test_localization.py`` checks this against a loop).
    It is computed in the frame of :func:`_whitened`, where ``Cyy`` is
    ``diag(lam + 1)``: whitening is a division by ``sqrt(lam + 1)``, the gain
    acts through ``g / sqrt(lam + 1)``, and the batched work is one
    Cholesky factor of the R blocks and one symmetric eigendecomposition of
    size k per domain -- shared with the ETKF anomalies of the kernel noise.
    """
    X = np.asarray(states, dtype=float)
    N, d = X.shape
    hz = np.asarray(predictions, dtype=float)
    Y = np.asarray(measurements, dtype=float)
    w = _whitened(X, hz, np.asarray(z, dtype=float), R, local, blocks)
    F, lam, A = w["F"], w["lam"], w["A"]
    s = 1.0 / np.sqrt(lam + 1.0)                          # Cyy^-1/2 in the frame
    # Simulated noise (centred per column) and its sample mean, per domain.
    V = Y - hz
    Vm = V.mean(0)
    Vl = F @ np.swapaxes(_gather(V - Vm, local), 1, 2)    # (d, k, N)
    # z~ - mean(y~) = sqrt(rho) (z - mean hx) - mean(v), whitened
    e = s * (w["e"] - (F @ _gather(Vm[None, :], local)[:, 0, :, None])[:, :, 0])
    b = s[:, :, None] * (w["b"] + Vl)                     # whitened y~_i - mean(y~)
    gw = s * w["g"]                                       # Cyy^-1/2 Cyx
    Pa = np.maximum(w["Cxx"] - np.einsum('jk,jk->j', gw, gw), 0.0)

    target = float(ess_target) * N
    if isinstance(bandwidth, str):
        if bandwidth != "auto":
            raise ValueError(f"bandwidth must be 'auto' or a float in (0, 1), got {bandwidth!r}")
        h = _select_h(e, b, target, *H_RANGE)
    else:
        h = np.full(d, float(bandwidth))
    lk = _log_kernel(e, b, h)
    lw = lk - logsumexp(lk, axis=1, keepdims=True)
    a = np.sqrt(1.0 - h * h)
    D = A.T - np.einsum('jk,jkn->jn', gw, b)              # (d, N) perturbed-obs anomalies
    mean = w["mu"] + np.einsum('jk,jk->j', gw, e)
    gain = np.einsum('jlk,jl->jk', F, s * gw)             # Cxy Cyy^-1 in scaled coordinates
    return LocalKDE(centres=mean[:, None] + a[:, None] * D, log_weights=lw, S=h * h * Pa, h=h,
                    ess=effective_sample_size_rows(lw), mean=mean, Pa=Pa,
                    anomalies=letkf_analysis(w)[1], gain=gain)

