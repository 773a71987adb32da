"""Split an ensemble into two well-separated Gaussian clusters, or keep it whole.

The covariance-shaped kernel conditions every member with one ensemble gain
``K = Cxy Cyy^-1``. When the joint (x, y) ensemble has separated modes (a
mirror-symmetric measurement such as ``abs(x)``, the two lobes of
Lorenz-63 seen through ``z``) that regression line passes between the modes:
it has the wrong slope in each, and Liu-West shrinkage towards the global
mean drags the modes together every cycle. Splitting the ensemble into
clusters, each with its own mean, covariance and gain, fixes both and keeps
the mean and covariance of every cluster (hence of the whole ensemble).

The split is decided by BIC between one full-covariance Gaussian and a
two-component mixture fitted by 2-means. It is deterministic (no random
draws), so filters stay reproducible from their ``rng`` alone.
"""
from __future__ import annotations

import warnings
from typing import Optional, Union

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp
from scipy.stats import f as f_distribution
from scipy.stats import normaltest

from ._validation import as_ensemble, triangular_solve

__all__ = ["split_ensemble", "axis_separations", "two_means", "gaussian_bic", "separation", "min_cluster_size",
           "gaussian_pvalue", "bonferroni_normaltest", "mode_difference_pvalue"]

#: Lloyd iterations of the 2-means split (it converges in a handful).
MAX_ITER = 50
#: Principal axes whose sign splits start 2-means (besides farthest-point seeds).
MAX_AXES = 3
#: Least Mahalanobis distance between the two cluster means, in pooled
#: within-cluster standard deviations, for 'auto' to split. The two halves
#: of one Gaussian, cut through its mean, are 2.66 apart; a curved but
#: unimodal ensemble (a Lorenz-63 lobe) is not much more.
MIN_SEPARATION = 4.0
#: 2-means splits at least this far apart are refined by classification EM
#: (between the 2.66 of one Gaussian's halves and MIN_SEPARATION).
REFINE_SEPARATION = 3.0


#: scipy's kurtosis test needs at least 20 samples.
MIN_NORMALTEST_N = 20


def bonferroni_normaltest(W):
    """Bonferroni p-value that every column of ``W`` (N, k) is Gaussian, float in [0, 1].

    D'Agostino-Pearson tests (``scipy.stats.normaltest``: skewness and
    kurtosis) of each column; the smallest p-value times ``k`` (at most 1).
    1 when N < 20 (too few rows for the kurtosis test), k = 0, or no column
    has a finite p-value (a constant column).
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[0] < MIN_NORMALTEST_N or W.shape[1] == 0:
        return 1.0
    with warnings.catch_warnings():
        # scipy warns of precision loss on (near) constant columns; their
        # p-value is NaN and skipped.
        warnings.simplefilter('ignore', RuntimeWarning)
        p = normaltest(W, axis=0).pvalue
    return float(min(1.0, np.nanmin(p) * W.shape[1])) if np.isfinite(p).any() else 1.0


def gaussian_pvalue(Z):
    """Bonferroni p-value that the rows of ``Z`` (N, D) are one Gaussian, float in [0, 1].

    :func:`bonferroni_normaltest` along the principal axes of the
    standardised rows (uncorrelated coordinates; for a Gaussian, independent
    Gaussian ones), dropping axes of (near) zero variance, as a linear
    ``hx = H x`` leaves in the joint ensemble. Affine invariant up to the
    choice of axes, and deterministic.
    """
    Z = as_ensemble(Z, "ensemble", min_rows=2)
    return bonferroni_normaltest(_frames(Z)[2])


def min_cluster_size(dim):
    """Members a cluster needs for a non-singular covariance in ``dim`` dimensions."""
    return max(int(dim) + 2, 5)


def _standardised(Z):
    # Z.std(axis=0) by numpy's own steps (mean, squared anomalies, sum / N,
    # sqrt), so that its mean and anomalies serve the result too.
    A = Z - Z.mean(axis=0)
    sd = np.sqrt((A * A).sum(axis=0) / len(Z))
    sd[sd <= 1e-12 * max(sd.max(), np.finfo(float).tiny)] = 1.0
    return A / sd


def _frames(Z):
    """Standardised rows ``U``, their principal axes ``Vt`` and ``U`` reduced to the significant ones.

    Measurements that are a linear function of the state (``hx = H x``)
    make the joint ensemble rank-deficient, and a likelihood with singular
    covariances would reward any split; N <= D does the same. The reduced
    rows, (N, rank), are where every likelihood here is evaluated.
    """
    U = _standardised(Z)
    N, D = U.shape
    # Principal axes from the smaller Gram matrix (cheaper than an SVD of
    # the N x D rows, and only directions with sv > 1e-6 sv_max are kept,
    # far above where squaring the condition number loses them). With
    # more dimensions than members (a 1000-variable state) that is the
    # N x N one, U U^T = W S^2 W^T, whose axes are V = U^T W / S for the
    # directions with spread; the D x D one took 0.67 s at D = 1250,
    # N = 20 for what it had to offer.
    wide = D > N
    ev, V = np.linalg.eigh(U @ U.T if wide else U.T @ U)
    ev, V = ev[::-1], V[:, ::-1]
    sv = np.sqrt(np.maximum(ev, 0.0))
    keep = sv > 1e-6 * max(sv[0], np.finfo(float).tiny)
    if wide:
        Vt = (U.T @ (V[:, keep] / sv[keep])).T
        return U, Vt, U @ Vt.T
    Vt = V.T
    return U, Vt, U @ Vt[keep].T


def _reduced(Z):
    return _frames(Z)[2]


def _lloyd(U, labels):
    """Lloyd iterations of 2-means from initial 0/1 labels; all zeros if a cluster empties."""
    for it in range(MAX_ITER):
        if labels.min() == labels.max():
            return np.zeros(len(U), dtype=int)
        centres = np.stack([U[labels == k].mean(0) for k in (0, 1)])
        d2 = ((U[:, None, :] - centres[None]) ** 2).sum(-1)   # (N, 2): k = 2, not N x N
        new = np.argmin(d2, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _gaussian_log_densities(U, labels, held_out=False):
    """(N, k) log of ``share_k N(u; mean_k, cov_k)`` of every row under each cluster's ML Gaussian.

    With ``held_out`` also the (N, k) densities where each row's own
    cluster is fitted without it (shares of the other N - 1 rows): a
    rank-one downdate, with ``q`` the row's Mahalanobis distance squared in
    its cluster of ``n`` and ``t = 1 - q / (n - 1)``, of distance squared
    ``n q / ((n - 1) t)`` and log-determinant ``log det C + D log(n / (n - 1)) + log t``.
    """
    N, D = U.shape
    ks = np.unique(labels)
    out = np.empty((N, len(ks)))
    loo = np.empty((N, len(ks))) if held_out else None
    for j, k in enumerate(ks):
        rows = labels == k
        n = rows.sum()
        mu = U[rows].mean(0)
        A = U[rows] - mu
        C = A.T @ A / n
        C += 1e-9 * max(np.trace(C) / D, 1e-300) * np.eye(D)
        L = np.linalg.cholesky(C)
        r = triangular_solve(L, (U - mu).T)
        q = np.einsum('ij,ij->j', r, r)
        logdet = 2 * np.sum(np.log(np.diag(L)))
        out[:, j] = np.log(n / N) - 0.5 * (q + D * np.log(2 * np.pi) + logdet)
        if held_out:
            loo[:, j] = out[:, j] + np.log(N / (N - 1))
            t = np.maximum(1 - q[rows] / (n - 1), 1e-300)
            loo[rows, j] = (np.log((n - 1) / (N - 1))
                            - 0.5 * (n * q[rows] / ((n - 1) * t) + D * np.log(2 * np.pi)
                                     + logdet + D * np.log(n / (n - 1)) + np.log(t)))
    return (out, loo) if held_out else out


def _polish(R, labels, iters=10):
    """Move rows to the cluster they are likelier in when left out of their own, while the BIC drops.

    A row that every cut puts in the wrong cluster pulls that cluster's ML
    covariance towards itself (most in small clusters), so classification
    EM keeps it there; judged by its cluster fitted without it, it goes
    back. Steps that do not lower the BIC, or leave a cluster too small,
    are not taken.
    """
    need = min_cluster_size(R.shape[1])
    best, best_ll = labels, None
    for _ in range(iters):
        ins, loo = _gaussian_log_densities(R, labels, held_out=True)
        ll = float(np.sum(logsumexp(ins, axis=1)))
        if best_ll is not None and ll <= best_ll:
            break
        best, best_ll = labels, ll
        new = np.argmax(loo, axis=1)
        if np.array_equal(new, labels) or np.bincount(new, minlength=2).min() < need:
            break
        labels = new
    return best


def _refine(U, labels, iters=10):
    """Classification-EM steps: reassign rows to the likelier cluster Gaussian.

    2-means cuts unequal or elongated clusters with a straight bisector;
    a few steps with each cluster's own covariance fix the rows it
    misplaces. A step that leaves a cluster too small for a covariance is
    the last one, and its split is returned for :func:`split_ensemble` to
    reject: a cut that pads a too-small cluster with rows of the other
    must not survive as a split just because taking them back is illegal.
    """
    need = min_cluster_size(U.shape[1])
    for _ in range(iters):
        if np.bincount(labels, minlength=2).min() < need:
            break
        new = np.argmax(_gaussian_log_densities(U, labels), axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def two_means(Z, n_axes=MAX_AXES):
    """Deterministic 2-means candidate splits of the rows of ``Z``: a list of 0/1 label arrays.

    In coordinates scaled to unit standard deviation, Lloyd iterations start
    from (a) the row farthest from the mean and the row farthest from that
    one as seeds, and (b) the sign of the projection on each of the first
    ``n_axes`` principal axes and (c) the sign of the projection on the
    leading principal axis of the unscaled rows; (d) the sign of the
    projection on the whitened direction whose kurtosis is least Gaussian
    is one more split, without Lloyd iterations. Splits at least :data:`REFINE_SEPARATION`
    apart get a few classification-EM steps with full covariances. 2-means
    has many local optima when one coordinate is bimodal and another merely
    noisy; :func:`split_ensemble` keeps the candidate with the best BIC.
    """
    Z = as_ensemble(Z, "Z", min_rows=2)
    return _two_means(*_frames(Z), n_axes, raw=Z)


def _two_means(U, Vt, R, n_axes=MAX_AXES, refine_separation=REFINE_SEPARATION, raw=None):
    a = int(np.argmax(np.einsum('ij,ij->i', U, U)))
    b = int(np.argmax(np.einsum('ij,ij->i', U - U[a], U - U[a])))
    starts = [(np.einsum('ij,ij->i', U - U[b], U - U[b])
               < np.einsum('ij,ij->i', U - U[a], U - U[a])).astype(int)]
    starts += [(U @ v > 0).astype(int) for v in Vt[:n_axes]]
    if raw is not None:
        # In 2-D the principal axes of the standardised rows are always the
        # diagonals; a small cluster 10 sd off along another direction was
        # missed by every start (hypothesis: 45 + 15 rows, d = 2). The
        # unscaled rows' leading axis is the gap direction when the clusters
        # are round in the units given.
        A = raw - raw.mean(0)
        starts.append((A @ np.linalg.eigh(A.T @ A)[1][:, -1] > 0).astype(int))
    splits = [_lloyd(U, s) for s in starts] + [_kurtosis_split(R)]
    # Classification EM only where 2-means already finds separated halves:
    # it fixes the few rows a straight cut misplaces between real modes, and
    # would only wander (at 10 Gaussian fits) inside one mode.
    return _distinct(_refine(R, lab) if _separation(R, lab) >= refine_separation else lab
                     for lab in _distinct(splits))


def _kurtosis_split(R):
    """Sign split of the rows on the whitened direction whose kurtosis is least Gaussian.

    Standardising a coordinate makes its spread mostly the gap between two
    modes, so in ``U`` two well-separated clusters are only a few units
    apart across unit spread along them, and 2-means may cut them at a
    tilt; classification EM then keeps the misplaced rows, whose cluster
    covariance stretches to cover them. The principal axes of ``U`` do not
    help (in 2-D they are always the diagonals). In whitened coordinates a
    mixture of two Gaussians with one covariance is isotropic Gaussian
    across the line through the means, so that line is an eigenvector of
    the fourth-moment matrix ``E[|w|^2 w w']`` (FOBI) and the only one whose
    eigenvalue differs from ``D + 2``: less for a balanced, platykurtic
    mixture, more for an unbalanced one. The cut through the mean along the
    eigenvector farthest from ``D + 2`` is affine invariant; it skips Lloyd,
    whose isotropic metric in ``U`` is what it corrects. ``R`` is centred
    with orthogonal columns, so scaling them to unit variance whitens it.
    """
    N, D = R.shape
    if D == 0:                      # constant rows: nothing to cut
        return np.zeros(N, dtype=int)
    W, vals, vecs = _fobi(R)
    return (W @ vecs[:, np.argmax(np.abs(vals - (D + 2)))] > 0).astype(int)


def _fobi(R):
    """Whitened rows ``W`` of ``R`` (centred, orthogonal columns) and the eigenpairs of ``E[|w|^2 w w']``."""
    N = len(R)
    W = R / np.sqrt(np.maximum(np.einsum('ij,ij->j', R, R) / N, np.finfo(float).tiny))
    vals, vecs = np.linalg.eigh((W * np.einsum('ij,ij->i', W, W)[:, None]).T @ W / N)
    return W, vals, vecs


def _distinct(partitions):
    """The distinct two-cluster partitions, in order (labels and their swap are one)."""
    out = []
    for labels in partitions:
        if labels.min() < labels.max() and not any(
                np.array_equal(labels, o) or np.array_equal(labels, 1 - o) for o in out):
            out.append(labels)
    return out


def gaussian_bic(Z, labels):
    """BIC ``-2 log L + p log N`` of the full-covariance Gaussian mixture given by ``labels``.

    Each cluster's Gaussian is the maximum-likelihood fit of its rows and
    its weight is its share of the rows; ``log L`` is the mixture density of
    every row. Lower is better.
    """
    return _bic(_reduced(as_ensemble(Z, "Z", min_rows=2)), np.asarray(labels))


def _bic(R, labels):
    N, D = R.shape
    per = _gaussian_log_densities(R, labels)
    loglik = float(np.sum(logsumexp(per, axis=1)))
    k = per.shape[1]
    params = k * (D + D * (D + 1) // 2) + k - 1
    return -2.0 * loglik + params * np.log(N)


def separation(Z, labels):
    """Mahalanobis distance between the means of clusters 0 and 1, in the pooled within covariance."""
    return _separation(_reduced(as_ensemble(Z, "Z", min_rows=2)), np.asarray(labels))


def _separation(R, labels):
    parts = [R[labels == k] for k in (0, 1)]
    diff = parts[0].mean(0) - parts[1].mean(0)
    W = sum((P - P.mean(0)).T @ (P - P.mean(0)) for P in parts) / (len(R) - 2)
    W += 1e-9 * max(np.trace(W) / len(W), 1e-300) * np.eye(len(W))
    return float(np.sqrt(diff @ np.linalg.solve(W, diff)))


def mode_difference_pvalue(Y: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """p-value that clusters 0 and 1 of the rows of ``Y`` (N, m) share one mean, float in [0, 1].

    Hotelling's two-sample test: ``T^2 = n_0 n_1 / N * s^2`` with ``s`` the
    :func:`separation` of the two cluster means, and ``(N - 1 - q) T^2 /
    (q (N - 2))`` F-distributed with ``(q, N - 1 - q)`` degrees of freedom
    for two Gaussian clusters with one covariance and one mean, ``q`` the
    rank of the rows' spread. Invariant under any invertible linear map of
    the columns, so ``Y`` needs no whitening. 0 (the means differ) when
    ``N - 1 - q < 1``: too few rows for the within-cluster covariance in
    ``q`` dimensions, where :func:`separation` only sees its ridge.

    The filter reads it on the predicted measurements ``hx(x_i)`` of two
    modes: if they share one distribution, every ``z`` gives both modes the
    same evidence, and any difference the members show is sampling noise
    (``Policy.mode_difference_alpha``).

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.clustering import mode_difference_pvalue
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1], 50)
    >>> same = rng.normal(size=(100, 2))
    >>> mode_difference_pvalue(same, labels) > 0.01
    True
    >>> mode_difference_pvalue(same + 3.0 * labels[:, None], labels) < 1e-10
    True
    """
    Y = as_ensemble(Y, "Y", min_rows=2)
    labels = np.asarray(labels)
    if labels.shape != (len(Y),) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be {len(Y)} cluster labels 0 or 1 (one per row of Y), "
                         f"got shape {labels.shape} and values {np.unique(labels)[:5]}")
    n1 = int(labels.sum())
    N = len(Y)
    if min(n1, N - n1) < 1:
        raise ValueError(f"both clusters need a row; got sizes {N - n1} and {n1}")
    reduced = _reduced(Y)
    q = reduced.shape[1]
    if q == 0:    # every row the same: one mean
        return 1.0
    dof = N - 1 - q
    if dof < 1:
        return 0.0
    t2 = (N - n1) * n1 / N * _separation(reduced, labels) ** 2
    return float(f_distribution.sf(dof * t2 / (q * (N - 2)), q, dof))


def axis_separations(R: npt.ArrayLike, n_min: int) -> np.ndarray:
    """Separation of the best 1-D two-means split along each column of ``R`` (N, k), ndarray (k,).

    In one dimension the 2-means optimum is a threshold: the cut of the
    sorted column that maximises the between-cluster sum of squares
    ``n_l n_r / N (m_l - m_r)^2`` (cumulative sums, no iterations), with at
    least ``n_min`` rows each side. Returned is that cut's ``|m_l - m_r|``
    over the pooled within-cluster standard deviation: 2.66 for the
    halves of one Gaussian (large N), the gap for two modes split along the
    column; ``inf`` for two constant sides. 0 where no cut leaves ``n_min``
    rows each side.
    """
    R = np.asarray(R, dtype=float)
    N, k = R.shape
    n_min = max(int(n_min), 1)
    if N < 2 * n_min or N < 3 or k == 0:
        return np.zeros(k)
    S = np.sort(R, axis=0)
    c1, c2 = S.cumsum(axis=0), (S * S).cumsum(axis=0)
    nl = np.arange(n_min, N - n_min + 1, dtype=float)[:, None]     # rows left of the cut
    sl, ql = c1[n_min - 1:N - n_min], c2[n_min - 1:N - n_min]
    sr, qr = c1[-1] - sl, c2[-1] - ql
    nr = N - nl
    diff = sr / nr - sl / nl
    best = (nl * nr / N * diff ** 2).argmax(axis=0)
    cols = np.arange(k)
    d, l, r = diff[best, cols], nl[best, 0], nr[best, 0]
    within = (ql[best, cols] - sl[best, cols] ** 2 / l) + (qr[best, cols] - sr[best, cols] ** 2 / r)
    # Sums of squares by cumulative sums cancel to rounding level: a within
    # spread below that is none (each side constant, an infinite separation).
    total = c2[-1] - c1[-1] ** 2 / N
    within = np.where(within > 1e-9 * total, within, 0.0)
    sd = np.sqrt(within / (N - 2))
    gap = np.abs(d)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(sd > 0, gap / np.where(sd > 0, sd, 1.0), np.where(gap > 0, np.inf, 0.0))


def _screened(R, axes):
    """The rows along the screen's directions, (N, <= axes + 2).

    The leading ``axes`` principal coordinates, and the two whitened
    directions of extreme kurtosis (:func:`_kurtosis_split`): for two
    Gaussian modes with one covariance the line through their means is
    one of these, and in whitened coordinates the 1-D separation along it
    is their Mahalanobis separation, however the within-mode spread is
    shaped (the principal axes miss modes whose spread is small along the
    gap and large across it).
    """
    W, _, vecs = _fobi(R)
    return np.hstack([R[:, :axes], W @ vecs[:, [0, -1]]])


def split_ensemble(Z: npt.ArrayLike, clusters: Union[str, int] = 'auto',
                   min_separation: float = MIN_SEPARATION, screen: Optional[float] = None,
                   axes: int = MAX_AXES, refine_separation: float = REFINE_SEPARATION,
                   return_searched: bool = False) -> Union[np.ndarray, tuple]:
    """Cluster labels of the rows of ``Z`` (e.g. the joint ``(x_i, hx(x_i))``), ndarray (N,).

    Parameters
    ----------
    Z : ndarray (N, D)
    clusters : 'auto', 1 or 2
        ``'auto'``: two clusters where 2-means gives each at least
        :func:`min_cluster_size` members, a lower :func:`gaussian_bic`
        than one Gaussian and means at least ``min_separation`` pooled
        standard deviations apart (:func:`separation`); 1: never split;
        2: split whenever the sizes allow.
    min_separation : float
    screen : float or None
        ``'auto'`` only: before the full search, the best 1-D 2-means cut
        (:func:`axis_separations`) along each of the leading ``axes``
        principal axes of the standardised rows and the two whitened
        directions of extreme kurtosis; when none is at least ``screen``
        apart, one cluster, without the search. For two Gaussian modes with
        one covariance the line through their means is one of the latter,
        and the cut along it is their Mahalanobis separation; one
        Gaussian's halves are 2.66 apart along any direction. The screen
        costs one SVD of ``Z``, one ``D x D`` eigendecomposition and a sort.
    axes : int
        Principal axes the screen looks along.
    refine_separation : float
        Candidate splits at least this far apart get classification-EM steps.
    return_searched : bool, default False
        Also return whether the full search ran (the screen, if any, saw a
        cut at least ``screen`` apart).

    Returns
    -------
    labels : ndarray (N,) of int
        0 for one cluster; 0 and 1 for two.
    searched : bool
        Only with ``return_searched``.
    """
    Z = as_ensemble(Z, "Z", min_rows=2)
    if not (isinstance(clusters, str) and clusters == 'auto') and not (
            isinstance(clusters, (int, np.integer)) and not isinstance(clusters, bool)
            and clusters in (1, 2)):
        raise ValueError(f"clusters must be 'auto', 1 or 2, got {clusters!r}")
    if axes is not None and not (isinstance(axes, (int, np.integer)) and not isinstance(axes, bool)
                                 and axes >= 1):
        raise ValueError(f"axes must be a positive integer or None, got {axes!r}")
    N = len(Z)
    single = np.zeros(N, dtype=int)

    def out(labels, searched):
        return (labels, searched) if return_searched else labels
    if clusters == 1 or N < 2 * min_cluster_size(1):
        return out(single, False)
    U, Vt, R = _frames(Z)    # once: every criterion below works in these frames
    D = R.shape[1]
    if N < 2 * min_cluster_size(D):
        return out(single, False)
    if (screen is not None and clusters == 'auto'
            and not np.any(axis_separations(_screened(R, axes), min_cluster_size(D)) >= screen)):
        return out(single, False)
    candidates = [lab for lab in _two_means(U, Vt, R, refine_separation=refine_separation, raw=Z)
                  if np.bincount(lab, minlength=2).min() >= min_cluster_size(D)]
    if not candidates:
        return out(single, True)
    if clusters == 'auto':
        separated = [_separation(R, lab) >= min_separation for lab in candidates]
        if not any(separated):       # the best-BIC one cannot pass either: skip the BICs
            return out(single, True)
    bic = [_bic(R, lab) for lab in candidates]
    best = int(np.argmin(bic))
    if clusters == 'auto' and (min(bic) >= _bic(R, single) or not separated[best]):
        return out(single, True)
    # Whether to split is decided; polishing only moves rows, and keeps
    # the split it was given if its own separation would not pass.
    labels = _polish(R, candidates[best])
    if clusters == 'auto' and _separation(R, labels) < min_separation:
        return out(candidates[best], True)
    return out(labels, True)
