"""Closed-form conditional kernel density estimate p(x | z).

The joint density of (state, measurement) is modelled by a product-kernel KDE
over N simulated pairs ``(x_i, y_i)``,

    p(x, y) = 1/N sum_i N(x; x_i, sx^2 I) N(y; y_i, sy^2 I),

so conditioning on an observation z is exact:

    p(x | z)       = sum_i w_i N(x; x_i, sx^2 I),   w_i ∝ N(z; y_i, sy^2 I),
    p_sigma(x | z) = sum_i w_i N(x; x_i, (sx^2 + sigma^2) I),

where ``sigma`` is the extra noise of a variance-exploding diffusion. The
score of ``p_sigma`` is closed form, so a diffusion sampler needs no
training. Bandwidths may also be vectors (one per coordinate), which keeps
everything closed form and lets automatic rules scale each coordinate.
"""
import numpy as np
from scipy.special import logsumexp

from ._validation import as_bandwidth, as_ensemble, as_vector
from .mixture import GaussianMixture


class ConditionalKDE:
    """Gaussian-kernel KDE of (state, measurement) pairs, conditioned on z.

    Parameters
    ----------
    states : ndarray (N, d)
        Ensemble of states ``x_i``.
    measurements : ndarray (N, m)
        Simulated measurements ``y_i``, one per state.
    sigma_x : float or ndarray (d,)
        Kernel bandwidth (standard deviation) in state space.
    sigma_y : float or ndarray (m,)
        Kernel bandwidth in measurement space.

    Attributes
    ----------
    N, dim_x, dim_z : int
        Ensemble size, state and measurement dimension.

    Examples
    --------
    A 1-D state seen through ``|x|``: the posterior given z = 1 has two modes.

    >>> import numpy as np
    >>> from filterpy_diffusion import ConditionalKDE
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(0.0, 1.5, size=(500, 1))
    >>> y = np.abs(x) + rng.normal(0.0, 0.1, size=(500, 1))
    >>> kde = ConditionalKDE(x, y, sigma_x=0.1, sigma_y=0.1)
    >>> w = kde.weights([1.0])
    >>> bool(abs(w.sum() - 1) < 1e-12), bool(w[x[:, 0] > 0].sum() > 0.3)
    (True, True)
    >>> g = kde.score(np.array([0.9]), [1.0])   # gradient of log p(x | z)
    """

    def __init__(self, states, measurements, sigma_x, sigma_y):
        self.states = as_ensemble(states, "states")
        N, d = self.states.shape
        meas = np.asarray(measurements, dtype=float)
        if meas.ndim == 1 and d >= 1 and meas.shape[0] == N:
            meas = meas[:, None]
        self.measurements = as_ensemble(meas, "measurements")
        if self.measurements.shape[0] != N:
            raise ValueError(
                f"states and measurements must have the same number of rows (members); "
                f"got {N} states and {self.measurements.shape[0]} measurements")
        self.N, self.dim_x = N, d
        self.dim_z = self.measurements.shape[1]
        self.sigma_x = as_bandwidth(sigma_x, "sigma_x", d)
        self.sigma_y = as_bandwidth(sigma_y, "sigma_y", self.dim_z)
        self._cache_key = None
        self._mixture = None

    def log_weights(self, z):
        """Normalised log weights ``log w_i``, ndarray (N,). Never under- or overflows to NaN."""
        z = as_vector(z, "z", self.dim_z)
        r = (self.measurements - z) / self.sigma_y
        lw = -0.5 * np.einsum('ij,ij->i', r, r)
        return lw - logsumexp(lw)

    def weights(self, z):
        """Conditional component weights ``w_i ∝ N(z; y_i, sy^2 I)``, ndarray (N,), summing to 1."""
        return np.exp(self.log_weights(z))

    def log_marginal(self, z):
        """Log of the KDE's measurement marginal ``p(z) = 1/N sum_i N(z; y_i, sy^2 I)``."""
        z = as_vector(z, "z", self.dim_z)
        r = (self.measurements - z) / self.sigma_y
        lw = -0.5 * np.einsum('ij,ij->i', r, r)
        var = np.broadcast_to(self.sigma_y ** 2, (self.dim_z,))
        return float(logsumexp(lw) - np.log(self.N) - 0.5 * np.sum(np.log(2 * np.pi * var)))

    def conditional(self, z):
        """The conditional density ``p(x | z)`` as a :class:`GaussianMixture` (cached per z)."""
        z = as_vector(z, "z", self.dim_z)
        key = z.tobytes()
        if key != self._cache_key:
            self._mixture = GaussianMixture(self.states, self.log_weights(z), self.sigma_x ** 2)
            self._cache_key = key
        return self._mixture

    def log_prob(self, x, z, sigma=0.0):
        """Log of the normalised density ``p_sigma(x | z)``; x (d,) or (M, d) -> float or (M,)."""
        return self.conditional(z).log_prob(x, _check_sigma(sigma))

    def score(self, x, z, sigma=0.0):
        """Gradient in x of ``log p_sigma(x | z)``; same shape as x."""
        return self.conditional(z).score(x, _check_sigma(sigma))


def _check_sigma(sigma):
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma (diffusion noise level) must be finite and >= 0, got {sigma}")
    return sigma
