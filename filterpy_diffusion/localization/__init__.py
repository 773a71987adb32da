"""Domain localization: the covariance-kernel KDE filter and an LETKF, per state variable.

With N = 20 members in 40 dimensions no global ensemble method keeps
track of Lorenz-96: weights collapse, and the sample covariance is mostly
sampling noise at long distances. Domain localization analyses every state
variable ``j`` on its own, from the observations near it only, with
R-localization: observation ``l`` at distance ``r_jl`` enters domain ``j``
with the error covariance ``R_ll / rho(r_jl / c)`` (``rho`` a taper,
Gaspari-Cohn by default), so distant observations fade out smoothly.

Local conditional KDE
---------------------
In domain j the covariance-shaped, shrunk kernel of
:class:`~filterpy_diffusion.kde.CovarianceKDE` is built from the joint
ensemble of (x_ij, local simulated measurements). The localization is
done in *scaled* coordinates ``y~_l = sqrt(rho_jl) y_l``: then the noise
of y~ has covariance ``R_sub`` (the block of R on the local observations)
while its signal is damped by ``sqrt(rho)`` -- the same as inflating R to
``D^-1/2 R_sub D^-1/2`` (``D = diag(rho)``), but finite when ``rho -> 0``.
The simulated measurement noise ``v_i ~ N(0, R)`` is drawn once per cycle
for all observations and shared by every domain (the filter centres it,
``v <- (v - mean v) sqrt(N / (N - 1))``, so that its sample mean does not
shift the Kalman mean), so in scaled coordinates

    y~_i^(j) = sqrt(rho_j) * hx(x_i)[O_j] + v_i[O_j],   z~^(j) = sqrt(rho_j) * z[O_j],
    Cyy_j    = cov(sqrt(rho_j) hx(x_i)[O_j]) + R_sub,   Cxy_j = cov(x_ij, sqrt(rho_j) hx(x_i)[O_j]),
    K_j      = Cxy_j Cyy_j^-1,      Pa_j = Cxx_j - K_j Cyx_j,      S_j = h_j^2 Pa_j,
    m_ij     = mu_j + K_j (z~ - mu_y~) + a_j [(x_ij - mu_j) - K_j (y~_i - mu_y~)],
    w_ij     ∝ N(z~; mu_y~ + a_j (y~_i - mu_y~), h_j^2 Cyy_j),        a_j = sqrt(1 - h_j^2).

Every domain is a 1-D mixture ``sum_i w_ij N(m_ij, S_j)``. All d domains are
computed at once on padded ``(d, k_max)`` observation lists (padding has
``rho = 0`` and unit noise, so it contributes exactly nothing): stacked
``(d, N, k)`` anomalies, batched Cholesky factors and solves. The bandwidth
``h_j`` of each domain is chosen like ``DiffusionKDEFilter``'s ``'auto'``:
the smallest ``h`` in ``[0.001, 0.999]`` whose local weights keep an ESS of
at least ``ess_target * N``, by a bisection in ``log h`` run for every
domain simultaneously. The local filter's default target is 0.9, not 0.5
(:data:`LOCAL_ESS_TARGET`): the local weights also see the simulated noise
``v_i``, and on Lorenz-96 the weights with ESS 0.5 N cost accuracy.

The domains' draws are stitched into one ensemble (:mod:`.stitching`).

Modules
-------
:mod:`.taper`
    Gaspari-Cohn taper and the padded local observation lists (:class:`LocalObs`).
:mod:`.algebra`
    Every domain's whitened frame, local conditional KDE and ETKF transform, batched.
:mod:`.stitching`
    Selection and noise rules that make the analysis continuous across domains;
    exact and probability-flow ODE sampling of the local mixtures.
:mod:`.filters`
    :class:`LocalDiffusionKDEFilter` and :class:`LETKF`.

How the defaults were chosen (radius, ESS target, stitching, sampler; tuning
seeds only) is in ``docs/localization.md``.

References
----------
.. [1] Gaspari, G., Cohn, S. E. (1999). Construction of correlation
   functions in two and three dimensions. Q. J. R. Meteorol. Soc. 125,
   723-757 (eq. 4.10).
.. [2] Hunt, B. R., Kostelich, E. J., Szunyogh, I. (2007). Efficient data
   assimilation for spatiotemporal chaos: a local ensemble transform Kalman
   filter. Physica D 230, 112-126.
.. [3] Greybush, S. J. et al. (2011). Balance and ensemble Kalman filter
   localization techniques. Mon. Wea. Rev. 139 (R-localization).
.. [4] Miyoshi, T. (2011). The Gaussian approach to adaptive covariance
   inflation and its implementation with the LETKF. Mon. Wea. Rev. 139.
.. [5] Sakov, P., Oke, P. R. (2008). Implications of the form of the
   ensemble transformation in the ensemble square root filters. Mon. Wea.
   Rev. 136 (mean-preserving random rotations).
"""
from .algebra import LOCAL_ESS_TARGET, LocalKDE, local_covariance_kde
from .filters import DEFAULT_LETKF_INFLATION, LETKF, LocalDiffusionKDEFilter
from .stitching import DEFAULT_STITCHING, STITCHING, sample_local
from .taper import (DEFAULT_RADIUS, LocalObs, gaspari_cohn, local_observations,
                    local_observations_from_callable)

__all__ = [
    "gaspari_cohn", "LocalObs", "local_observations", "local_observations_from_callable",
    "LocalKDE", "local_covariance_kde", "sample_local",
    "LocalDiffusionKDEFilter", "LETKF",
    "DEFAULT_RADIUS", "DEFAULT_LETKF_INFLATION", "LOCAL_ESS_TARGET", "STITCHING",
    "DEFAULT_STITCHING",
]
