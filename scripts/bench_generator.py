"""Benchmark the signal model: features plus inference for 20 symbols × 200 candles.

Run ``python -m scripts.bench_generator --help``. The candles come from the synthetic
market (20 symbols made from the three shipped profiles), as arrays, so what is timed is the
generator's own work, not building ``Candle`` objects. Each figure is the median of
``--runs`` runs, printed beside a **raw baseline measured in the same run on the same
batch**, and the ratio of the two:

* **all bars**: ``feature_matrix`` of the 20 × 200 candles, then ``predict`` on all 4,000
  rows (the warm-up rows included, as a catch-up over a window does). Baseline: the bare
  ``InferenceSession.run`` calls of the same 4,000 rows (four theories and the meta-learner,
  inputs prepared beforehand). Targets: at most 2 × the baseline, under 20 ms.
* **last bar**: the same features, then ``predict`` on the last closed bar of each symbol
  (20 rows), which is what one generator run needs. Baseline: the bare ``run`` calls on
  those 20 rows. Shown for information: with 20 rows the sessions are so fast that the
  features dominate; its target is the 20 ms.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from domain.candles import Instrument
from domain.features import Ohlcv, feature_matrix
from infrastructure.market.synthetic import PROFILES, SymbolProfile, SyntheticMarket
from infrastructure.models.onnx_model import (
    OUTPUT_NAME,
    OnnxSignalModel,
    load_model,
    model_directory,
)

TARGET_MS = 20.0
TARGET_RATIO = 2.0
SYMBOLS = 20
CANDLES = 200


@dataclass(frozen=True)
class Figure:
    """One measured figure, its raw baseline, and whether it meets its targets."""

    name: str
    value_ms: float
    baseline_ms: float
    ratio_target: float | None

    @property
    def ratio(self) -> float:
        """``value / baseline``."""
        return self.value_ms / self.baseline_ms

    @property
    def met(self) -> bool:
        """Under 20 ms, and within the ratio target when it has one."""
        within = self.ratio_target is None or self.ratio <= self.ratio_target
        return self.value_ms < TARGET_MS and within


class _At:
    def now(self) -> datetime:
        return datetime(2024, 3, 1, tzinfo=UTC)


def candles() -> Ohlcv:
    """20 symbols × 200 closed 15-minute candles, stacked: arrays of shape (20, 200)."""
    bases = list(PROFILES.values())
    profiles = {}
    for i in range(SYMBOLS):
        base = bases[i % len(bases)]
        symbol = f"SYN{i:02d}USDT"
        rules = base.instrument
        profiles[symbol] = SymbolProfile(
            Instrument(symbol, rules.tick_size, rules.qty_step, rules.min_order_qty, 5.0),
            base.anchor_price * (1 + 0.05 * i),
            base.daily_volatility,
            base.minute_volume,
        )
    market = SyntheticMarket(_At(), profiles=profiles)
    series = [market.ohlcv(s, timedelta(minutes=15), limit=CANDLES) for s in profiles]
    return Ohlcv(*(np.stack([getattr(b, f) for b in series]) for f in Ohlcv.__slots__))


def raw_runner(model: OnnxSignalModel, rows: np.ndarray) -> Callable[[], None]:
    """The bare session runs of ``rows``, with the inputs ``predict`` would give them."""
    feeds = model.session_feeds(rows)

    def run() -> None:
        for session, feed in feeds:
            session.run([OUTPUT_NAME], feed)

    return run


def median_ms(work: Callable[[], object], runs: int) -> float:
    """Median wall time of ``work`` in ms, after as many warm-up calls (at most 20)."""
    for _ in range(min(runs, 20)):
        work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(runs: int) -> list[Figure]:
    """Both figures and their baselines, interleaved so that load hits them alike."""
    model = load_model(model_directory())
    bars = candles()
    x = feature_matrix(bars)
    every = x.reshape(-1, x.shape[-1])
    last = x[:, -1, :]

    def all_bars() -> None:
        f = feature_matrix(bars)
        model.predict(f.reshape(-1, f.shape[-1]))

    def last_bar() -> None:
        f = feature_matrix(bars)
        model.predict(f[:, -1, :])

    raw_all, raw_last = raw_runner(model, every), raw_runner(model, last)
    values: dict[str, list[float]] = {k: [] for k in ("all", "raw_all", "last", "raw_last")}
    rounds = 5
    for _ in range(rounds):
        values["all"].append(median_ms(all_bars, runs // rounds))
        values["raw_all"].append(median_ms(raw_all, runs // rounds))
        values["last"].append(median_ms(last_bar, runs // rounds))
        values["raw_last"].append(median_ms(raw_last, runs // rounds))
    m = {k: statistics.median(v) for k, v in values.items()}
    return [
        Figure(
            f"all bars: features + predict, {SYMBOLS * CANDLES} rows",
            m["all"],
            m["raw_all"],
            TARGET_RATIO,
        ),
        Figure(f"last bar: features + predict, {SYMBOLS} rows", m["last"], m["raw_last"], None),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures (or ``--json``); exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_generator", description=__doc__)
    parser.add_argument("--runs", type=int, default=500, help="timed runs per figure")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    figures = measure(max(args.runs, 5))
    model = load_model(model_directory()).card.version
    if args.json:
        print(
            json.dumps(
                [{**f.__dict__, "ratio": f.ratio, "met": f.met, "model": model} for f in figures],
                indent=2,
            )
        )
    else:
        print(f"signal model {model} on {platform.processor() or platform.machine()}")
        print(f"{'figure':<44} {'value':>9} {'baseline':>9} {'ratio':>6} {'target':>16}  met?")
        for f in figures:
            target = f"< {TARGET_MS:g} ms" + (f", <= {f.ratio_target:g}x" if f.ratio_target else "")
            print(
                f"{f.name:<44} {f.value_ms:>6.2f} ms {f.baseline_ms:>6.2f} ms "
                f"{f.ratio:>5.2f}x {target:>16}  {'yes' if f.met else 'NO'}"
            )
        print("baseline: bare InferenceSession.run of the same rows (4 theories + meta), same run")
    return 0 if all(f.met for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
