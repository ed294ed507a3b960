"""Hyperparameter sweeps: each network tuned by walk-forward validation before the test period.

``space``: the search space as Optuna distributions and a trial's settings from its values.
``validation``: the validation folds and the objective (one trial: refit and score every fold).
``studies``: RDB storage with heartbeats, one study per model, the worker loop, dead workers' trials.
``trial_runs``: the sweep's MLflow parent run and one nested run per trial, logged by hand.
``results``: best settings (``best/<model>.yaml``), tables, importances and figures, read back by
``forecast backtest --from-sweep``.

The command itself is ``forecast.commands.sweep``.
"""
