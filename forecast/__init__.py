"""forecast: recurrent networks for stock index series, honest walk-forward backtests, MLflow tracking."""

__version__ = "0.1.0"
