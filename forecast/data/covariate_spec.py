"""A covariate as the user names it: a ticker or a CSV, and its transform (no numpy here: settings read it).

How covariates enter a window is in ``covariates.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ForecastError, shorten
from .tickers import check_ticker

TRANSFORMS = ("return", "diff", "level")
PANEL = "panel"          # --covariates panel: every other series of a panel, by its returns


@dataclass(frozen=True)
class Covariate:
    """One covariate as given: a ticker or a CSV path, and its transform."""

    source: str
    transform: str = "return"
    csv: bool = False

    @classmethod
    def parse(cls, text: str, csv: bool = False) -> "Covariate":
        """``TICKER[:transform]`` (``--covariates``) or ``PATH[:transform]`` (``--covariate-csv``)."""
        flag = "--covariate-csv" if csv else "--covariates"
        source, _, transform = str(text).strip().rpartition(":") if ":" in str(text) else (str(text).strip(), "", "")
        transform = transform.strip().lower() or "return"
        if transform not in TRANSFORMS:
            raise ForecastError(f"{flag} {shorten(text)}: the transform after the colon must be one of "
                                f"{', '.join(TRANSFORMS)}")
        if not source.strip():
            raise ForecastError(f"{flag} {shorten(text)}: name a {'file' if csv else 'ticker'} before the colon")
        return cls(source.strip() if csv else check_ticker(source.strip()), transform, csv)

    @property
    def name(self) -> str:
        return Path(self.source).stem if self.csv else self.source

    def text(self) -> str:
        return f"{self.source}:{self.transform}"
