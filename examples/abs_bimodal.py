"""A 1-D state seen through |x|: the posterior is bimodal.

Prior: x ~ N(0, 1.5^2). Measurement: y = |x| + N(0, 0.1^2). Observation z = 1.
The conditional KDE of (x, y) is sampled exactly and by the diffusion ODE and
SDE; all three put about half the mass near -1 and half near +1.

    python examples/abs_bimodal.py            # prints a summary, saves abs_bimodal.png
"""
import numpy as np

from filterpy_diffusion import ConditionalKDE
from filterpy_diffusion.diffusion import sample

rng = np.random.default_rng(0)
N = 1000
x = rng.normal(0.0, 1.5, size=(N, 1))
y = np.abs(x) + rng.normal(0.0, 0.1, size=(N, 1))
kde = ConditionalKDE(x, y, sigma_x=0.05, sigma_y=0.1)
posterior = kde.conditional([1.0])

draws = {name: sample(posterior, 20_000, rng=1, sampler=name) for name in ('exact', 'ode', 'sde')}
print(f"{'sampler':>8} {'P(x>0)':>7} {'mean':>7} {'E|x|':>7} {'var':>7}")
for name, X in draws.items():
    print(f"{name:>8} {np.mean(X > 0):7.3f} {X.mean():7.3f} {np.abs(X).mean():7.3f} {X.var():7.3f}")
print(f"{'closed':>8} {posterior.weights[x[:, 0] > 0].sum():7.3f} {posterior.mean()[0]:7.3f}"
      f" {'':>7} {posterior.cov()[0, 0]:7.3f}")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # plotting is optional
    raise SystemExit(0)
grid = np.linspace(-2, 2, 801)[:, None]
fig, ax = plt.subplots(figsize=(6, 3))
for name, X in draws.items():
    ax.hist(X[:, 0], bins=160, range=(-2, 2), density=True, histtype='step', label=name)
ax.plot(grid, np.exp(kde.log_prob(grid, [1.0])), 'k', lw=0.8, label='p(x | z=1)')
ax.set_xlabel('x'); ax.legend(); fig.tight_layout()
fig.savefig('abs_bimodal.png', dpi=120)
print("saved abs_bimodal.png")
