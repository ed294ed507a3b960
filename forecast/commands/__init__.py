"""One module per command, each a typed entry function that takes one settings object from ``config.py``.

``fit.fit``, ``predict.predict``, ``backtest.backtest``, ``compare.compare``, ``lab.bench`` and
``lab.gradients`` are what the command line calls (see the table in ``cli.py``) and what a
notebook calls too; ``common`` holds what they share: loading data and the record of a run.
"""
