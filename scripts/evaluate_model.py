"""Evaluate a signal model on other data: ``python -m scripts.evaluate_model --help``.

Runtime dependencies only (onnxruntime, numpy). By default the shipped model on 300 days of
the synthetic market after its training window; ``--candles FILE`` for your own candles.
"""

from __future__ import annotations

import sys

from infrastructure.models.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
