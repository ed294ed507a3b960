"""PriceHistory: the one in-memory form of a daily price series, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class PriceHistory:
    """A validated daily history and where it came from."""

    frame: pd.DataFrame
    name: str
    source: str  # "yahoo", "cache", "bundled", "csv" or "synthetic"
    notes: list[str] = field(default_factory=list)

    @property
    def start(self) -> pd.Timestamp:
        return self.frame.index[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.frame.index[-1]

    def describe(self) -> str:
        return (f"{self.name}: {len(self.frame):,} trading days from {self.start:%Y-%m-%d} to "
                f"{self.end:%Y-%m-%d}, source: {self.source}")

    def digest(self) -> str:
        """Short fingerprint of the exact data used (for tracking)."""
        import hashlib

        data = pd.util.hash_pandas_object(self.frame, index=True).to_numpy()
        return hashlib.sha256(data.tobytes()).hexdigest()[:16]
