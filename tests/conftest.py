"""Shared fixtures: every test runs in its own folder, offline, with its own MLflow store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# What the CLI's main does before MLflow is imported (the tests import it first): quiet migrations.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from yahoo_fake import FakeResponse, chart_payload, not_found_payload  # noqa: E402


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """cwd, download cache and MLflow store in a temporary folder; the network call always fails."""
    import yfinance.data

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORECAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def offline(self, url, *args, **kwargs):
        raise ConnectionError("tests never touch the network")

    monkeypatch.setattr(yfinance.data.YfData, "_make_request", offline)
    return tmp_path


@pytest.fixture
def yahoo(monkeypatch):
    """Serve a frame (or 'not found') from the replaced Yahoo network call."""
    import yfinance.data

    def serve(ticker: str, frame=None):
        payload = chart_payload(ticker, frame) if frame is not None else not_found_payload(ticker)
        status = 200 if frame is not None else 404
        monkeypatch.setattr(yfinance.data.YfData, "_make_request",
                            lambda self, url, *a, **k: FakeResponse(payload, status))

    return serve


@pytest.fixture
def tiny_train():
    """CPU, few epochs: fast and quiet."""
    from forecast.config.settings import TrainSettings

    return TrainSettings(max_epochs=3, batch_size=64, patience=2, accelerator="cpu", seed=7)
