"""The policy: every automatic decision of :class:`~filterpy_diffusion.DiffusionKDEFilter`.

An update reads as one line, ``inflate -> measure once -> decide (kernel,
modes, bandwidth) -> build one density -> sample``, and every threshold
that line consults is a field of :class:`Policy`, passed as ``policy=``.
Each field's comment says why it has its value and on which tuning data it
was chosen (tuning seeds 0-2 and development seeds of our own suite,
DAPPER seeds 3000+ of ``Lorenz63.sakov2012`` and ``Lorenz96.sakov2008``;
never the reporting seeds 100-104).

>>> from filterpy_diffusion.policy import Policy
>>> p = Policy(members_per_dim=3.0)
>>> p.members_per_dim, Policy().min_separation
(3.0, 4.0)
"""
import dataclasses
import numbers

# The modules' own defaults, one source for each number.
from .bridge import MAX_MOVE_JITTER, MEMBERS_PER_DIM, MOVE_MEMBERS, RESAMPLE_FRACTION
from .clustering import MAX_AXES, MIN_SEPARATION, REFINE_SEPARATION
from .inflation import LAMBDA_RANGE
from .kde import EVIDENCE_THRESHOLD

__all__ = ["Policy", "DEFAULT_POLICY", "MODE_EVIDENCES"]

#: The values of ``Policy.mode_evidence``.
MODE_EVIDENCES = ("monte-carlo", "gaussian")


def _positive(name, v, low=0.0, high=None, closed_low=False):
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v
    ok = ok and (v >= low if closed_low else v > low) and (high is None or v <= high)
    if not ok:
        bound = f"{'>=' if closed_low else '>'} {low}" + ("" if high is None else f" and <= {high}")
        raise ValueError(f"Policy.{name} must be a number {bound}, got {v!r}")


def _pair(name, v, within, bounds):
    """``v`` as ``(low, high)`` floats, or ValueError unless two reals with ``within(low, high)``."""
    lo_hi = tuple(v) if isinstance(v, (tuple, list)) else ()
    if not (len(lo_hi) == 2 and all(isinstance(x, numbers.Real) and not isinstance(x, bool)
                                    for x in lo_hi) and within(*lo_hi)):
        raise ValueError(f"Policy.{name} must be (low, high) with {bounds}, got {v!r}")
    return float(lo_hi[0]), float(lo_hi[1])


@dataclasses.dataclass(frozen=True)
class Policy:
    """Thresholds of the automatic update (``kernel='auto'`` and the automatic bandwidths).

    Parameters
    ----------
    mode_axes : int >= 1, default 3
        The mode test (:func:`~filterpy_diffusion.clustering.split_ensemble`)
        of the joint ensemble ``(x_i, hx(x_i))`` first screens a few
        directions, each by its best 1-D two-means cut
        (:func:`~filterpy_diffusion.clustering.axis_separations`): the
        leading ``mode_axes`` principal axes and the two whitened directions
        of extreme kurtosis (for two Gaussian modes with one covariance, the
        line through their means is one of these, and the cut along it is
        their Mahalanobis separation). 3 is the number of principal axes the
        full search already starts 2-means from.
    mode_screen : float > 0, default 3.0
        The full search (2-means from several starts, classification EM,
        BIC; about 125 ms at N = 250, D = 80) runs only when a screened axis
        has a cut at least this far apart: above the 2.66 of one Gaussian's
        halves, below ``min_separation`` (the search's own threshold,
        which a projection onto one axis can only understate).
    min_separation : float > 0, default 4.0
        Least Mahalanobis distance between two cluster means, in pooled
        within-cluster standard deviations, for a split. The two halves of
        one Gaussian, cut through its mean, are 2.66 apart, and a curved
        unimodal ensemble (a Lorenz-63 lobe) not much more: 4 does not fire
        on them (development seeds 3-22 of l63-z and l63-full).
        Two modes found, the default (``gaussian_core='bridge'``) still
        gives the update to the bridge when z all but rules one out (the
        weaker mode's posterior share, by the modes' Gaussian evidence,
        below ``1 / N``: less than one member's worth); the per-mode kernel,
        whose evidence shrinkage keeps the masses, takes the modes z cannot
        tell apart (mirror images under ``|x|``; Lorenz-63 seen through z).
        No new threshold: ``1 / N`` is one member.
    refine_separation : float > 0, default 3.0
        2-means splits at least this far apart are refined by
        classification EM (between one Gaussian's 2.66 and
        ``min_separation``).
    evidence_threshold : float >= 0, default 10.0
        Evidence ratio between two modes beyond which the split kernel
        stops shrinking the modes towards each other
        (:class:`~filterpy_diffusion.kde.ClusteredKDE`; toy-abs and l63-z,
        development seeds).
    mode_evidence : {'monte-carlo', 'gaussian'}, default 'monte-carlo'
        What weighs two modes against each other, in the per-mode kernel
        and in the rule that lets ``z`` rule one out
        (:class:`~filterpy_diffusion.kde.ClusteredKDE`'s ``evidence``).
        ``'monte-carlo'``: the members' own likelihoods (the particle
        filter's mass of each mode) wherever ``hx`` and a positive definite
        R give them (``evidence='auto'``), the modes' Gaussian evidence
        otherwise; ``'gaussian'`` everywhere is the default before. On
        tuning seeds (docs/design-log.md, entry 44): l63-z W2 (seeds 0-8)
        8.05 / 6.85 / 5.93 at N = 50 / 100 / 250 against 8.41 / 7.64 /
        6.51; toy-abs (0-2) 0.387 / 0.336 / 0.334 against 0.444 / 0.402 /
        0.426 (1.14 against 1.07 at N = 20); DAPPER ``sakov2012``
        (3000-3005) 0.459 / 0.379 / 0.325 at N = 20 / 50 / 100 against
        0.469 / 0.407 / 0.367, ``DoublePendulum.settings101`` (3000-3005)
        no crash at N = 20 and 100 against 1 and 3 of 6; but
        ``wiljes2017`` (14 seeds) 2.319 against 2.192.
    decision_threshold : float >= 0, default 0 (off)
        Opt-in: the rule that lets ``z`` rule out one of two modes (the
        weaker mode's posterior share below ``1 / N``; then the bridge's
        exact weights choose between the modes, else the per-mode kernel)
        reads the modes' evidence shrunk at this many standard errors of
        its sampling error, the kernel's James-Stein shrinkage at
        ``evidence_threshold = decision_threshold``; 0 reads it unshrunk.
        For mirror-image modes, which ``z`` can never tell apart, every such
        decision is sampling noise and loses a mode for good. On tuning
        seeds (docs/design-log.md, entry 48) 5 lowered toy-abs W2 (seeds
        0-8) to 0.164 / 0.148 / 0.129 at N = 20 / 50 / 100 from 0.878 /
        0.174 / 0.164 and ``Lorenz63.wiljes2017`` (14 seeds) rmse.a to
        2.253 from 2.319, but raised DAPPER ``Lorenz63.sakov2012``
        (3000-3005) to 0.469 / 0.386 / 0.358 at N = 20 / 50 / 100 from
        0.459 / 0.379 / 0.325 (worse on all six seeds at N = 100; 2: 0.339)
        and moved l63-z W2 (seeds 0-5) to 9.61 / 8.36 / 6.77 from 10.53 /
        7.78 / 6.68. Not the default: where the modes differ, decisions
        within a few standard errors are right more often than not.
    mode_difference_alpha : float in (0, 1], default 0.01
        Two modes whose predicted measurements ``hx(x_i)`` share one mean by
        Hotelling's two-sample test at this level
        (:func:`~filterpy_diffusion.clustering.mode_difference_pvalue`
        above it) keep their prior masses: ``z`` may not rule one out, and
        the per-mode kernel's evidence shrinkage is total
        (``evidence_threshold = inf``). A mode's evidence is the mean of
        ``N(z; hx(x_i), R)`` over its members, so modes whose ``hx`` values
        share one distribution (mirror images under ``|x|``; Lorenz-63's
        lobes seen through ``z``) have one evidence for every ``z``, and any
        difference their members show is sampling noise. Modes that ``z``
        tells apart (Lorenz-63 observed in ``x``) fail the test at any
        usual level. The test runs on every two-mode update, so on mirror
        images it wrongly lets ``z`` weigh them on a share ``alpha`` of
        them. On tuning seeds (docs/design-log.md, entry 50), against the
        rule off: toy-abs W2 (seeds 0-8) at N = 20 0.219 at 0.01 against
        0.279 at 0.05, 0.088 at 0.001 and 0.430 off; ``wiljes2017`` (14
        seeds) 2.157 against 2.325, 2.192 and 2.367; l63-z (seeds 0-5)
        9.75 / 7.12 / 6.02 at N = 20 / 50 / 100 against 10.01 / 7.01 /
        6.02, 10.06 / 7.55 / 6.44 and 9.97 / 7.25 / 6.06; ``sakov2012``
        (3000-3005, N = 20 / 50 / 100) bit-identical at every level (its
        modes always differ in ``hx``). 1 turns the rule off (every split
        counts as told apart, the rule before). Only the means are
        compared: modes whose ``hx`` values differ only in spread count as
        alike (a test of the covariances too lost on tuning seeds). With a
        black-box ``simulate`` the test reads the simulated measurements
        (design-log entry 53); with an explicit ``kernel='covariance'`` the
        per-mode kernel keeps its shrinkage at ``evidence_threshold``.
    kernel_members_per_dim : float > 0, default inf (off)
        Opt-in: a one-mode ensemble whose joint ``(x_i, hx(x_i))`` fails a
        normality test (:func:`~filterpy_diffusion.clustering.gaussian_pvalue`
        at ``normality_alpha``) gets the covariance kernel instead of the
        one-mode core when it has at least this many members per joint
        dimension. The earlier default (10) helped the |x| toy problem at
        N = 20 (tuning seeds 0-2) but sent 262 of 500 Lorenz63.sakov2012
        updates at N = 100 (tuning seed 3000) to the kernel and lost the
        bridge's accuracy there (rmse 0.42 against 0.28); docs/design-log.md.
    kernel_max_h : float in (0, 1], default 0.95
        With that rule on: the one-mode core instead when the kernel's
        automatic h exceeds this (near h = 1 the kernel is almost one
        Gaussian that redraws every member; l63-z, development seed 21).
    members_per_dim : float >= 1, default 2.5
        The bridge (the one-mode update): the exact-likelihood weights must
        keep an effective sample size of at least ``members_per_dim (r + 1)``
        for ``r`` informed dimensions (:mod:`filterpy_diffusion.bridge`;
        DAPPER ``Lorenz63.sakov2012`` seeds 3000-3005); and each mode the
        mode test keeps must have ``members_per_dim (r + 1)`` members.
    resample_fraction : float in [0, 1], default 0.3
        The bridge's resampling threshold ``rho``: its weights are carried
        while their effective sample size stays above ``max(members_per_dim
        (r + 1), rho N)``, and resampled below it
        (:func:`~filterpy_diffusion.bridge.resample_threshold`; DAPPER's
        ``PartFilt`` ``NER``). Chosen on DAPPER ``Lorenz63.sakov2012``,
        tuning seeds 3000-3002, N = 50 and 100, over 0, 0.3, 0.5 and 1
        (docs/bridge.md); 0 resamples only at the floor.
    ess_target : float in (0, 1], default 0.5
        Automatic bandwidth of the isotropic and covariance kernels chosen
        explicitly: the smallest bandwidth whose analysis weights keep this
        fraction of N as effective sample size.
    mode_ess_target : float in (0, 1], default 0.7
        The same for the covariance kernel when ``kernel='auto'`` picks it
        (two modes, a simulator, or a singular R): development seeds 3-22 of
        l63-z at N = 50, W2 7.92 with 0.5 and 7.18 with 0.7.
    enkpf_ess_target : float in (0, 1], default 0.9
        The same for ``kernel='enkpf'`` (tuning seeds 0-2 among 0.5, 0.7,
        0.9: in 20-40 observed dimensions any weighting costs accuracy).
    normality_alpha : float in (0, 1), default 0.01
        Level of the normality tests: of the one-mode joint ensemble (see
        ``kernel_members_per_dim``), and of ``kernel='enkpf'`` with
        ``bandwidth='auto'``, which keeps ``g = 1`` (the EnKF) unless the
        predicted measurements fail it (l96-40, N = 50, tuning seeds 0-2: RMSE 0.300 without the
        test, 0.230 with it).
    h_range : (float, float), default (1e-3, 0.999)
        Search interval of the automatic bandwidth factor ``h``; the shrunk
        covariance kernel needs ``h < 1``.
    inflation_var : float > 0, default 0.01
        Prior variance of Miyoshi's adaptive inflation factor (``inflation=
        'adaptive'``, the simulator path, and the adaptive share of
        ``inflation='auto'`` when the forecast does not span the
        observations): how fast it may move per update.
    inflation_range : (low, high), default (0.5, 10.0)
        Range the adaptive inflation estimate ``lambda`` is kept in (applied
        as ``max(lambda, 1)``): one innovation's estimate is noisy, and the
        clip keeps an outlier from setting the running estimate. Not tuned
        (the range the adaptive filter had from the start); it binds only on
        innovations far from the ensemble's spread.
    xN : float > 0, default 1.0
        Confidence in the finite-size inflation's prior (DAPPER's ``xN``;
        1 is ``EnKF_N``'s untuned default).
    core_inflation_floor : bool, default True
        With finite-size inflation, a bridge move's Gaussian core inflates
        at least by the forecast's own finite-size factor for the whole
        likelihood (``etkf_analysis(..., inflation_floor=)``), unless the
        mode test split the forecast (EnKF-N's estimate presumes one
        Gaussian forecast). The core sees only the remainder
        ``R / (1 - gamma)``, whose weak innovation asks for almost no
        inflation even when the forecast is too narrow for the whole ``z``,
        and the weights cannot widen anything: on DAPPER
        ``Lorenz63.sakov2012`` at N = 100 (tuning seed 3001) the ensemble
        collapsed onto a wrong track. A rule, not a threshold: the floor is
        the estimate the plain ETKF would use. Tuning seeds 3000-3005,
        N = 20 / 50 / 100: rmse.a 0.458 / 0.386 / 0.347 with it, 0.466 /
        0.404 / 0.381 without; ``wiljes2017`` (14 seeds) 2.200 against
        2.236, and 2.406 with the floor on split forecasts too
        (docs/design-log.md, entry 29). A particle-filter move
        (``gamma = 1``) has no core; with ``shrink_jitter=True`` it takes
        the forecast's factor on its resampled anomalies, split forecast or
        not (``bridge_analysis(..., move_inflation=)``).
    shrink_jitter : bool, default False
        At a particle-filter move (``gamma = 1``, no core), draw the
        jittered copies towards their mode's weighted mean first (Liu and
        West 2001), so the move keeps the weighted mean and covariance
        instead of widening the copies by ``1 + h^2`` (Scott's ``h^2`` is
        0.31 at an ESS of 60 in 3 dimensions), and scale its anomalies by
        the forecast's finite-size factor, ``max(1, l_full)``, the floor a
        move's core gets (``bridge_analysis(..., shrink_jitter=True,
        move_inflation=)``), wherever the core's inflation is finite-size
        and ``core_inflation_floor`` is on. Opt-in, not the default: on
        tuning seeds it gained where the weights carry the analysis (DAPPER
        ``Lorenz63.sakov2012``, seeds 3000-3023, rmse.a 0.343 against 0.371
        at N = 100; our l63-full and l63-cubic at N = 250 4-5%, l96-10-abs
        at N = 250 0.267 against 0.358), but it lost track where the plain
        jitter's widening had kept the spread: ``Lorenz63.bocquet2012``
        (R = I) seed 3000, 0.67 against 0.25 at N = 100, one run above 0.5
        of 24 on ``sakov2012`` at N = 50, and l63-z at N = 250 cost 16% in
        W2 (docs/design-log.md, entry 40).
    move_jitter_minus_q : bool, default True
        A move's jitter leaves out what the forecast's own noise supplies:
        copies get ``N(0, (h^2 C_w - Q)_+)`` instead of ``N(0, h^2 C_w)``,
        ``Q`` the filter's process noise, which the next ``predict()`` adds
        to every member and so to the copies too
        (``bridge_analysis(..., process_noise=)``). A rule, not a
        threshold: Scott's kernel is the spread a copy should have by the
        next analysis, and with ``Q`` the jitter alone no longer has to
        make it. No effect where ``Q = 0`` (every DAPPER set-up measured:
        bit for bit the same). Tuning seeds 0-2, on / off, RMSE:
        l63-cubic 0.130 / 0.149 at N = 20 and 2-4% lower at N >= 50,
        l96-10-abs 0.323 / 0.349 at N = 250, l63-full within 3% either
        way; toy-abs W2 4-17% lower; l63-z W2 within the noise of a
        numerics-only change (docs/design-log.md, entry 59).
    move_members : {'auto', 'informed', 'state'}, default 'auto'
        What the bridge's ``members_per_dim`` counts. A move resamples and
        jitters whole members; the weights see only the ``r`` observed
        directions. ``'auto'``: a move at all needs the members a fully
        observed state of this size would need, ``N > c (min(N - 1,
        dim_x) + 1)`` (else the Gaussian core alone); within a move the
        floor counts ``r`` (``bridge_analysis(..., move_members='auto')``).
        ``'informed'`` (the default before): ``r`` only, so observing fewer
        directions of a large state allowed more weighting than observing
        all. ``'state'``: ``max(r, min(N - 1, dim_x))`` in both thresholds
        (``bridge_analysis(..., move_members='state')``). ``'informed'`` and ``'state'`` are the
        same where the observations span the state, and so is ``'auto'``
        on states small enough for a move (see ``move_max_jitter``). On
        tuning seeds (DAPPER 1.8.1, seeds
        3000-3002, 200 cycles; docs/design-log.md, entries 35 and 36):
        ``'auto'`` is ``'state'`` wherever the state is too large for a
        move, so ``LA.small`` (100 variables, 4 observed) rmse.a 0.033 /
        0.027 at N = 20 / 100 against 0.080 / 0.072 for ``'informed'``
        (``EnKF_N``'s values), the land-ocean ``miyoshi2011`` at N = 100
        runs where ``'informed'`` blew the model up on all three seeds,
        and ``bocquet2010`` at N = 20 0.313 against 0.515; and it is
        ``'informed'`` on small states, where ``'state'`` costs:
        ``Lorenz63.wiljes2017`` (14 seeds) 2.200 against 2.449, and
        ``DoublePendulum.settings101`` at N = 20 1.36 against 2.00.
    move_max_jitter : float in (0, 1], default 0.5
        With ``move_members='auto'``, a move also needs Scott's jitter for
        all N members in the state's ``min(N - 1, dim_x)`` directions to
        add less than this share of a copy's variance
        (:func:`~filterpy_diffusion.bridge.state_allows_move`; 1 drops the
        condition). Scott's factor tends to 1 as the dimension grows, and a
        move then redraws members as from a Gaussian, with Monte Carlo noise
        in every direction: at the default, 12 members for 3 variables, 129
        for 10, 4097 for 20. Not tuned (the break-even point, where the
        jitter adds as much variance as the members keep); on tuning seeds
        it changes nothing on Lorenz-63 and its relatives (3-4 variables,
        N >= 20) and keeps the Gaussian core where moves cost: DAPPER
        ``Lorenz96.sakov2008`` at N = 150 / 250, rmse.a 0.174 / 0.171
        against 0.307 / 0.335 (``EnKF_N`` 0.171 / 0.174); ``miyoshi2011``
        at N = 150 / 250 without the model blow-up; ``bocquet2010`` at
        N = 100 0.293 against 0.324; our l96-10-abs at N = 50 / 100 0.267 /
        0.257 against 0.370 / 0.346 and l96-20-cubic at N = 100 0.112
        against 0.160 (docs/design-log.md, entry 39).
    """
    mode_axes: int = MAX_AXES
    mode_screen: float = 3.0
    min_separation: float = MIN_SEPARATION
    refine_separation: float = REFINE_SEPARATION
    evidence_threshold: float = EVIDENCE_THRESHOLD
    mode_evidence: str = "monte-carlo"
    decision_threshold: float = 0.0
    mode_difference_alpha: float = 0.01
    kernel_members_per_dim: float = float("inf")
    kernel_max_h: float = 0.95
    members_per_dim: float = MEMBERS_PER_DIM
    resample_fraction: float = RESAMPLE_FRACTION
    ess_target: float = 0.5
    mode_ess_target: float = 0.7
    enkpf_ess_target: float = 0.9
    normality_alpha: float = 0.01
    h_range: tuple = (1e-3, 0.999)
    inflation_var: float = 0.01
    inflation_range: tuple = LAMBDA_RANGE
    xN: float = 1.0
    core_inflation_floor: bool = True
    shrink_jitter: bool = False
    move_jitter_minus_q: bool = True
    move_members: str = "auto"
    move_max_jitter: float = MAX_MOVE_JITTER

    def __post_init__(self):
        if not (isinstance(self.mode_axes, numbers.Integral) and not isinstance(self.mode_axes, bool)
                and self.mode_axes >= 1):
            raise ValueError(f"Policy.mode_axes must be an integer >= 1, got {self.mode_axes!r}")
        _positive("mode_screen", self.mode_screen)
        _positive("min_separation", self.min_separation)
        _positive("refine_separation", self.refine_separation)
        _positive("evidence_threshold", self.evidence_threshold, closed_low=True)
        _positive("decision_threshold", self.decision_threshold, closed_low=True)
        _positive("members_per_dim", self.members_per_dim, low=1.0, closed_low=True)
        _positive("resample_fraction", self.resample_fraction, high=1.0, closed_low=True)
        _positive("kernel_members_per_dim", self.kernel_members_per_dim)
        _positive("kernel_max_h", self.kernel_max_h, high=1.0)
        for name in ("ess_target", "mode_ess_target", "enkpf_ess_target"):
            _positive(name, getattr(self, name), high=1.0)
        _positive("normality_alpha", self.normality_alpha, high=1.0)
        _positive("mode_difference_alpha", self.mode_difference_alpha, high=1.0)
        _positive("inflation_var", self.inflation_var)
        _positive("xN", self.xN)
        for name in ("core_inflation_floor", "shrink_jitter", "move_jitter_minus_q"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Policy.{name} must be True or False, "
                                 f"got {getattr(self, name)!r}")
        _positive("move_max_jitter", self.move_max_jitter, high=1.0)
        if self.mode_evidence not in MODE_EVIDENCES:
            raise ValueError(f"Policy.mode_evidence must be one of {MODE_EVIDENCES}, "
                             f"got {self.mode_evidence!r}")
        if self.move_members not in MOVE_MEMBERS:
            raise ValueError(f"Policy.move_members must be one of {MOVE_MEMBERS}, "
                             f"got {self.move_members!r}")
        object.__setattr__(self, "h_range", _pair("h_range", self.h_range,
                                                  lambda lo, hi: 0 < lo < hi < 1,
                                                  "0 < low < high < 1"))
        object.__setattr__(self, "inflation_range", _pair(
            "inflation_range", self.inflation_range,
            lambda lo, hi: 0 < lo <= 1 <= hi < float("inf"), "0 < low <= 1 <= high < inf"))

    def replace(self, **changes):
        """A copy with ``changes`` (field names as keywords), validated."""
        return dataclasses.replace(self, **changes)


#: The defaults, as one object.
DEFAULT_POLICY = Policy()
