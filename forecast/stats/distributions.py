"""Forecast distributions as data: one object per model and stretch of forecast days (numpy/scipy only).

Every model that forecasts a distribution hands over a ``Distribution``: a family and its
moments per day and step, ``mean`` and ``sd`` ``[N, H]`` in the target's units, ``df`` for the
Student t (``nu > 2``; its scale is ``sd * sqrt((nu - 2) / nu)``), or, for historical
simulation, the sample itself ``[N, M]`` (the same for every step). Quantiles, CRPS and
negative log-likelihood come from the closed forms of ``scoring_rules`` (the sample's
empirical distribution for ``empirical``). The point forecast of such a model is ``mean``.

A network's output in target units is ``[N, H]`` for a point forecast and ``[N, H, P]`` for a
distribution, ``P`` = (mean, sd) for the normal and (mean, sd, df) for the Student t
(``from_output``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scoring_rules as sr

FAMILIES = ("normal", "student-t", "empirical")
PARAMETERS = {"normal": 2, "student-t": 3}        # P: columns of a network's distribution output


@dataclass
class Distribution:
    """Forecast distributions of ``N`` days, ``H`` steps ahead each."""

    family: str                         # normal | student-t | empirical
    mean: np.ndarray                    # [N, H]
    sd: np.ndarray                      # [N, H] standard deviation
    df: np.ndarray | None = None        # [N, H] student-t degrees of freedom (> 2)
    samples: np.ndarray | None = None   # [N, M] empirical: the values whose distribution is forecast

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(len(self.mean), -1)
        self.sd = np.asarray(self.sd, dtype=np.float64).reshape(self.mean.shape)
        if (self.family == "student-t") != (self.df is not None):
            raise ValueError("df is given for the student-t family, and only for it")
        if self.df is not None:
            self.df = np.asarray(self.df, dtype=np.float64).reshape(self.mean.shape)
        if (self.family == "empirical") != (self.samples is not None):
            raise ValueError("samples are given for the empirical family, and only for it")
        if self.samples is not None:
            self.samples = np.asarray(self.samples, dtype=np.float64)

    @classmethod
    def from_output(cls, family: str, output: np.ndarray) -> "Distribution":
        """From a network's output ``[N, H, P]``: (mean, sd) or (mean, sd, df)."""
        out = np.asarray(output, dtype=np.float64)
        if out.ndim != 3 or out.shape[-1] != PARAMETERS.get(family, -1):
            raise ValueError(f"a {family} network's output must be [N, H, {PARAMETERS.get(family)}], got {out.shape}")
        return cls(family, out[..., 0], out[..., 1], out[..., 2] if family == "student-t" else None)

    def __len__(self) -> int:
        return len(self.mean)

    @staticmethod
    def concat(parts: list["Distribution"]) -> "Distribution":
        """The forecasts of several stretches of days (folds), one after the other."""
        first = parts[0]
        if any(p.family != first.family for p in parts):
            raise ValueError(f"cannot join distributions of families {sorted({p.family for p in parts})}")
        join = lambda name: None if getattr(first, name) is None else np.concatenate([getattr(p, name) for p in parts])
        return Distribution(first.family, join("mean"), join("sd"), join("df"), join("samples"))

    # ------------------------------------------------------------ one step

    def _at(self, step: int):
        i = step - 1
        return self.mean[:, i], self.sd[:, i], None if self.df is None else self.df[:, i]

    def t_scale(self, step: int = 1) -> np.ndarray:
        _, sd, df = self._at(step)
        return sr.student_t_scale(sd, df)

    def quantiles(self, levels, step: int = 1) -> np.ndarray:
        """``[N, L]`` quantiles at ``levels`` of the ``step``-ahead forecast."""
        mean, sd, df = self._at(step)
        if self.family == "normal":
            return sr.quantiles_normal(mean, sd, levels)
        if self.family == "student-t":
            return sr.quantiles_student_t(mean, self.t_scale(step), df, levels)
        return sr.quantiles_sample(self.samples, levels)

    def crps(self, y: np.ndarray, step: int = 1) -> np.ndarray:
        """``[N]`` CRPS of each day's forecast at the outcome ``y`` (closed form; exact for the sample)."""
        mean, sd, df = self._at(step)
        if self.family == "normal":
            return sr.crps_normal(y, mean, sd)
        if self.family == "student-t":
            return sr.crps_student_t(y, mean, self.t_scale(step), df)
        return sr.crps_sample(y, self.samples)

    def nll(self, y: np.ndarray, step: int = 1) -> np.ndarray:
        """``[N]`` negative log-likelihood at ``y``; NaN for an empirical distribution (it has no density)."""
        mean, sd, df = self._at(step)
        if self.family == "normal":
            return sr.nll_normal(y, mean, sd)
        if self.family == "student-t":
            return sr.nll_student_t(y, mean, self.t_scale(step), df)
        return np.full(len(self), np.nan)

    def sample(self, step: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """``[N, size]`` draws of each day's ``step``-ahead forecast (the sample's values, drawn with replacement,
        for an empirical distribution)."""
        mean, sd, df = self._at(step)
        if self.family == "normal":
            return mean[:, None] + sd[:, None] * rng.standard_normal((len(self), size))
        if self.family == "student-t":
            return mean[:, None] + self.t_scale(step)[:, None] * rng.standard_t(df[:, None], (len(self), size))
        picks = rng.integers(0, self.samples.shape[1], (len(self), size))
        return np.take_along_axis(self.samples, picks, axis=1)

    def columns(self, levels, step: int = 1) -> dict[str, np.ndarray]:
        """The ``predictions.csv`` columns of one step: ``q01 ... q99`` (``quantile_column``), ``scale`` (the
        standard deviation) and ``df`` (NaN unless Student t)."""
        q = self.quantiles(levels, step)
        out = {sr.quantile_column(level): q[:, j] for j, level in enumerate(levels)}
        out["scale"] = self.sd[:, step - 1]
        out["df"] = self.df[:, step - 1] if self.df is not None else np.full(len(self), np.nan)
        return out


def column_names(levels) -> list[str]:
    """The distribution columns of ``predictions.csv``, in order."""
    return [sr.quantile_column(level) for level in levels] + ["scale", "df"]
