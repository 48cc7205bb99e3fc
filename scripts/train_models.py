"""Train tradewatch's signal models: ``python -m scripts.train_models --help``.

Needs the ``train`` extra (``pip install -e '.[train]'``). Without ``--candles`` it trains
on the synthetic market (the shipped model); see ``docs/models.md``.
"""

from __future__ import annotations

import sys

from infrastructure.models.training import main

if __name__ == "__main__":
    sys.exit(main())
