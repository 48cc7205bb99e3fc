"""How a model does on labelled rows: the model card's figures, and evaluating a model on
other data (plain numpy and onnxruntime, no scikit-learn).

**Candidates** are the rows the generator's default gates can turn into a signal: volume
ratio >= 2.0 and every feature inside the card's training range. The confidence is
calibrated on them, so the figures that judge it are over them. With ``p`` the prefix
(``holdout`` in a card; ``docs/models.md`` defines each):

* ``p_rows``, ``p_days``, ``p_out_of_range`` (share of rows with a feature outside the
  training range), ``p_candidates`` (how many candidates);
* over the candidates: ``p_base_rate`` (share whose preferred-direction trade wins),
  ``p_accuracy`` (confidence >= 0.5 against the win), ``p_ece`` and ``p_brier`` of the
  calibrated confidence, ``p_ece_raw`` and ``p_brier_raw`` of the raw meta score;
* ``p_ece_all_rows``: the calibrated confidence's ECE over every row (not what it is for);
* ``p_confident`` (confidence >= 0.77, any row) and ``p_signals`` (confidence >= 0.77 and a
  candidate: what the default gates pass before reward/risk and sizing), each with its
  ``count``, ``per_symbol_day``, ``win_rate`` and ``mean_confidence``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.features import FEATURES
from infrastructure.models.calibration import brier_score, expected_calibration_error
from infrastructure.models.card import CONFIDENCE_GATE, VOLUME_GATE, ModelMismatch
from infrastructure.models.dataset import (
    Dataset,
    TrainingData,
    TrainingDataError,
    build_dataset,
    read_candle_csv,
    synthetic_data,
)
from infrastructure.models.onnx_model import OnnxSignalModel, load_model, model_directory

Floats = npt.NDArray[np.float64]


def _columns(model: OnnxSignalModel) -> list[int]:
    return [FEATURES.index(n) for n in model.card.features]


def raw_scores(model: OnnxSignalModel, data: Dataset) -> tuple[Floats, Floats]:
    """The raw meta score of the preferred direction per row, and whether that trade won."""
    raw, direction = model.raw_scores(data.features[:, _columns(model)])
    return raw, np.where(direction > 0, data.win_long, data.win_short)


CANDIDATES = f"volume_ratio >= {VOLUME_GATE:g} and every feature inside its training range"


def candidates(model: OnnxSignalModel, data: Dataset) -> npt.NDArray[np.bool_]:
    """Rows the default gates could issue (before the confidence gate)."""
    ranges = model.card.feature_ranges
    low = np.array([ranges[n][0] for n in FEATURES])
    high = np.array([ranges[n][1] for n in FEATURES])
    x = data.features
    inside = np.all((x >= low) & (x <= high), axis=1)
    issuable: npt.NDArray[np.bool_] = inside & (x[:, FEATURES.index("volume_ratio")] >= VOLUME_GATE)
    return issuable


def figures(
    model: OnnxSignalModel, data: Dataset, interval: timedelta, prefix: str
) -> dict[str, Any]:
    """The figures of ``model`` over ``data``, each key starting with ``prefix``."""
    confidence = model.predict(data.features[:, _columns(model)]).confidence
    raw, wins = raw_scores(model, data)
    ranges = model.card.feature_ranges
    low = np.array([ranges[n][0] for n in FEATURES])
    high = np.array([ranges[n][1] for n in FEATURES])
    inside = np.all((data.features >= low) & (data.features <= high), axis=1)
    issuable = candidates(model, data)
    confident = confidence >= CONFIDENCE_GATE
    symbols = len(np.unique(data.symbol))
    days = (int(data.bar.max()) - int(data.bar.min()) + 1) * interval / timedelta(days=1)

    def subset(rows: npt.NDArray[np.bool_]) -> dict[str, Any]:
        count = int(rows.sum())
        return {
            "count": count,
            "per_symbol_day": count / (days * symbols),
            "win_rate": float(wins[rows].mean()) if count else None,
            "mean_confidence": float(confidence[rows].mean()) if count else None,
        }

    c, r, w = confidence[issuable], raw[issuable], wins[issuable]
    return {
        f"{prefix}_rows": len(data),
        f"{prefix}_days": days,
        f"{prefix}_out_of_range": float(1.0 - inside.mean()),
        f"{prefix}_candidates": int(issuable.sum()),
        f"{prefix}_base_rate": float(w.mean()) if w.size else None,
        f"{prefix}_accuracy": float(np.mean((c >= 0.5) == (w > 0.5))) if w.size else None,
        f"{prefix}_ece": expected_calibration_error(c, w),
        f"{prefix}_brier": brier_score(c, w),
        f"{prefix}_ece_raw": expected_calibration_error(r, w),
        f"{prefix}_brier_raw": brier_score(r, w),
        f"{prefix}_ece_all_rows": expected_calibration_error(confidence, wins),
        f"{prefix}_confident": subset(confident),
        f"{prefix}_signals": subset(confident & issuable),
    }


def evaluate(model: OnnxSignalModel, data: TrainingData) -> dict[str, Any]:
    """``model``'s figures over all of ``data`` (keys start with ``eval``)."""
    if data.interval != model.card.interval:
        raise TrainingDataError(
            f"model {model.card.version} is for {model.card.interval} bars, not {data.interval}"
        )
    rows = build_dataset(data.series, data.interval, model.card.label)
    return figures(model, rows, data.interval, "eval")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.evaluate_model``: a model's figures on other data."""
    parser = argparse.ArgumentParser(
        prog="evaluate_model",
        description="How a signal model does on the synthetic market or a candle file.",
    )
    parser.add_argument("--models-dir", type=Path, help="default: the shipped model")
    parser.add_argument("--candles", type=Path, help="a candle CSV (default: the synthetic market)")
    parser.add_argument("--interval", type=int, default=15, help="bar minutes (default 15)")
    parser.add_argument("--seed", type=int, default=7, help="synthetic market seed")
    parser.add_argument("--start", default="2026-01-10", help="synthetic window start (UTC)")
    parser.add_argument("--days", type=int, default=300, help="synthetic window days")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        model = load_model(model_directory(args.models_dir))
        if args.candles is None:
            start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
            data = synthetic_data(args.seed, args.days, start)
        else:
            interval = timedelta(minutes=args.interval)
            data = TrainingData(
                args.candles.name, read_candle_csv(args.candles, interval), interval
            )
        result = {"model": model.card.version, "data": data.source, **evaluate(model, data)}
    except (TrainingDataError, ModelMismatch, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {result['model']} on {result['data']}, {result['eval_days']:.1f} days:")
    print(
        f"  ECE {result['eval_ece']:.4f} (raw {result['eval_ece_raw']:.4f}), "
        f"Brier {result['eval_brier']:.4f}, accuracy {result['eval_accuracy']:.3f}, "
        f"base rate {result['eval_base_rate']:.3f}"
    )
    for key, label in (
        ("eval_confident", "confidence >= 0.77"),
        ("eval_signals", "+ volume, in range"),
    ):
        s = result[key]
        win = "-" if s["win_rate"] is None else f"{s['win_rate']:.3f}"
        mean = "-" if s["mean_confidence"] is None else f"{s['mean_confidence']:.3f}"
        print(
            f"  {label:<20} {s['count']:>5} rows, {s['per_symbol_day']:.2f} per symbol-day, "
            f"win rate {win}, mean confidence {mean}"
        )
    return 0
