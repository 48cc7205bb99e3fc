"""Train the signal models: theory models, a stacked meta-learner, a calibration table, and
the model card. Needs the ``train`` extra (scikit-learn, skl2onnx, onnx).

The procedure (deterministic: fixed seed, one thread):

1. rows = every bar with complete features and a known label, for every symbol;
2. time segments: training (50 %), calibration (30 %), holdout (20 %), each purged of the
   rows whose label reaches into the next one;
3. each theory is a gradient-boosted classifier of P(up) on its own features; on the
   training segment, ``FOLDS`` expanding walk-forward folds (purge = the label horizon)
   give out-of-fold theory outputs;
4. the meta-learner, a logistic regression, learns from those out-of-fold outputs
   whether the trade in each direction wins (``domain.labels``);
5. the theories are refitted on the whole training segment and exported to ONNX with the
   meta-learner; from here on every number comes from the exported models run by
   onnxruntime, exactly as they ship;
6. Platt scaling of wins on the meta score of the preferred direction, fitted on the
   calibration segment's *candidates* (the rows the generator's default volume gate lets
   through, features in range: the only rows that can become signals), becomes the card's
   calibration table;
7. the holdout segment gives the card's figures (``infrastructure.models.evaluation``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from domain.features import FEATURES
from domain.labels import LabelSpec
from infrastructure.models.card import (
    CARD_FILE,
    DIRECTION_INPUT,
    IR_VERSION,
    OPSET,
)
from infrastructure.models.dataset import (
    SYNTHETIC_DAYS,
    THEORY_TARGET_ATR,
    Dataset,
    TrainingData,
    TrainingDataError,
    build_dataset,
    data_hash,
    read_candle_csv,
    split_segments,
    synthetic_data,
    walk_forward_folds,
)
from infrastructure.models.evaluation import CANDIDATES, candidates, figures, raw_scores
from infrastructure.models.onnx_model import OnnxSignalModel, log_odds

Floats = npt.NDArray[np.float64]

THEORIES: dict[str, tuple[str, ...]] = {
    "momentum": ("ret_4", "ret_16", "ret_48", "trend_slope", "efficiency"),
    "mean_reversion": ("rsi_14", "zscore_48", "ret_1", "ret_4", "close_location"),
    "volatility_breakout": (
        "breakout_up",
        "breakout_down",
        "range_atr",
        "atr_ratio",
        "volume_ratio",
        "ret_1",
        "ret_48",
        "efficiency",
    ),
    "volume_pressure": ("volume_ratio", "signed_volume", "close_location", "ret_1", "range_atr"),
}
"""Each theory and the features it reads. Funding/basis is left out: candles carry no
funding rates, so no training data exists for it."""
META_CONTEXT = ("atr_pct", "volume_ratio", "efficiency")
"""Direction-neutral features the meta-learner also reads (they move P(win), not the side)."""
THEORY_MODEL: dict[str, Any] = {
    "max_iter": 40,
    "learning_rate": 0.2,
    "max_depth": 3,
    "max_bins": 63,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "early_stopping": False,
}
FOLDS = 4
CALIBRATION_POINTS = 161
MIN_CALIBRATION_ROWS = 100
SEGMENTS = (0.5, 0.3, 0.2)
SHIPPED = Path(__file__).with_name("shipped")


def _theory_model(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(**THEORY_MODEL, random_state=seed)


def _columns(names: Sequence[str]) -> list[int]:
    return [FEATURES.index(n) for n in names]


def _fit_theories(data: Dataset, seed: int) -> dict[str, HistGradientBoostingClassifier]:
    decided = ~np.isnan(data.up)
    models = {}
    for name, inputs in THEORIES.items():
        model = _theory_model(seed)
        model.fit(data.features[decided][:, _columns(inputs)], data.up[decided].astype(np.int64))
        models[name] = model
    return models


def _meta_rows(votes: Floats, context: Floats) -> Floats:
    """Meta-learner inputs: the long rows, then the short rows (votes times the direction)."""
    n = votes.shape[0]
    rows = []
    for direction in (1.0, -1.0):
        rows.append(np.column_stack([direction * votes, np.full(n, direction), context]))
    return np.concatenate(rows)


def _meta_inputs() -> tuple[str, ...]:
    return (*THEORIES, DIRECTION_INPUT, *META_CONTEXT)


def _out_of_fold(train: Dataset, label: LabelSpec, seed: int) -> tuple[Floats, Floats]:
    """Out-of-fold theory votes on the training segment, and the rows' meta labels."""
    folds = walk_forward_folds(train.bar, FOLDS, label.horizon_bars)
    votes, context, longs, shorts = [], [], [], []
    for fold in folds:
        models = _fit_theories(train.take(fold.train), seed)
        test = train.take(fold.test)
        votes.append(
            np.column_stack(
                [
                    log_odds(models[n].predict_proba(test.features[:, _columns(i)])[:, 1])
                    for n, i in THEORIES.items()
                ]
            )
        )
        context.append(test.features[:, _columns(META_CONTEXT)])
        longs.append(test.win_long)
        shorts.append(test.win_short)
    x = _meta_rows(np.concatenate(votes), np.concatenate(context))
    return x, np.concatenate([*longs, *shorts])


def _export(model: Any, inputs: int, path: Path, doc: str) -> None:
    with warnings.catch_warnings():
        # skl2onnx hands onnx booleans for int attributes; protobuf < 7 (pinned) accepts them.
        warnings.filterwarnings("ignore", "Field onnx.AttributeProto", DeprecationWarning)
        proto = to_onnx(
            model,
            initial_types=[("features", FloatTensorType([None, inputs]))],
            target_opset=dict(OPSET),
            options={id(model): {"zipmap": False}},
        )
    proto.ir_version = IR_VERSION
    proto.doc_string = doc
    onnx.save_model(proto, str(path))


def _segment_window(data: Dataset, interval: timedelta) -> list[str]:
    step = interval // timedelta(milliseconds=1)
    first = datetime.fromtimestamp(int(data.bar.min()) * step / 1000, UTC)
    last = datetime.fromtimestamp((int(data.bar.max()) + 1) * step / 1000, UTC)
    return [first.isoformat(), last.isoformat()]


def train(
    data: TrainingData,
    out: Path,
    *,
    seed: int = 7,
    label: LabelSpec | None = None,
    max_age_days: int = 30,
) -> dict[str, Any]:
    """Train, export and measure a model into ``out/<version>/``; returns its card."""
    label = label or LabelSpec()
    with threadpool_limits(limits=1):
        return _train(data, out, seed, label, max_age_days)


def _train(
    data: TrainingData, out: Path, seed: int, label: LabelSpec, max_age_days: int
) -> dict[str, Any]:
    rows = build_dataset(data.series, data.interval, label)
    train_rows, calib_rows, holdout_rows = split_segments(rows.bar, SEGMENTS, label.horizon_bars)
    training, calibration, holdout = (rows.take(r) for r in (train_rows, calib_rows, holdout_rows))

    meta_x, meta_y = _out_of_fold(training, label, seed)
    meta = LogisticRegression(C=1.0, max_iter=1000)
    meta.fit(meta_x, meta_y.astype(np.int64))
    theories = _fit_theories(training, seed)

    digest = data_hash(data.series)
    identity = json.dumps(
        [
            digest,
            seed,
            FEATURES,
            label.as_dict(),
            THEORIES,
            META_CONTEXT,
            THEORY_MODEL,
            FOLDS,
            SEGMENTS,
            CANDIDATES,
            "platt",
        ],
        sort_keys=True,
    )
    version = "tw-" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    directory = out / version
    directory.mkdir(parents=True, exist_ok=True)
    for name, model in theories.items():
        _export(model, len(THEORIES[name]), directory / f"{name}.onnx", f"tradewatch {name}")
    _export(meta, len(_meta_inputs()), directory / "meta.onnx", "tradewatch meta-learner")

    ranges = {
        name: (float(training.features[:, i].min()), float(training.features[:, i].max()))
        for i, name in enumerate(FEATURES)
    }
    end_ms = (int(rows.bar.max()) + 1) * (data.interval // timedelta(milliseconds=1))
    card: dict[str, Any] = {
        "schema": 1,
        "version": version,
        "trained_at": datetime.fromtimestamp(end_ms / 1000, UTC).isoformat(),
        "max_age_days": max_age_days,
        "interval_minutes": data.interval // timedelta(minutes=1),
        "seed": seed,
        "features": [{"name": n, "min": lo, "max": hi} for n, (lo, hi) in ranges.items()],
        "label": {"definition": _LABEL_TEXT, **label.as_dict()},
        "theories": [
            {
                "name": name,
                "file": f"{name}.onnx",
                "inputs": list(inputs),
                "target": f"price touches +{THEORY_TARGET_ATR:g} ATR before "
                f"-{THEORY_TARGET_ATR:g} ATR within {label.horizon_bars} bars",
            }
            for name, inputs in THEORIES.items()
        ],
        "meta": {
            "file": "meta.onnx",
            "inputs": list(_meta_inputs()),
            "weights": {
                name: float(w) for name, w in zip(_meta_inputs(), meta.coef_[0], strict=True)
            },
            "intercept": float(meta.intercept_[0]),
        },
        "calibration": {"method": "isotonic", "raw": [0.0, 1.0], "calibrated": [0.0, 1.0]},
        "data": {
            "source": data.source,
            "symbols": sorted({s.symbol for s in data.series}),
            "sha256": digest,
            "window": _segment_window(rows, data.interval),
            "segments": {
                "training": _segment_window(training, data.interval),
                "calibration": _segment_window(calibration, data.interval),
                "holdout": _segment_window(holdout, data.interval),
            },
            "rows": {
                "training": len(training),
                "meta_out_of_fold": int(meta_x.shape[0] // 2),
                "calibration": len(calibration),
                "holdout": len(holdout),
            },
        },
        "training": {
            "walk_forward_folds": FOLDS,
            "purge_bars": label.horizon_bars,
            "theory_model": {"HistGradientBoostingClassifier": THEORY_MODEL},
            "meta_model": "LogisticRegression(C=1.0)",
            "libraries": {
                p: package_version(p) for p in ("scikit-learn", "skl2onnx", "onnx", "numpy")
            },
        },
        "metrics": {},
    }
    _write_card(directory, card)

    model = OnnxSignalModel(directory)
    raw, wins = raw_scores(model, calibration)
    issuable = candidates(model, calibration)
    if issuable.sum() < MIN_CALIBRATION_ROWS:
        raise TrainingDataError(
            f"only {int(issuable.sum())} calibration rows pass the volume gate; "
            f"calibrating needs {MIN_CALIBRATION_ROWS}: use more data"
        )
    card["calibration"] = {
        **platt_table(raw[issuable], wins[issuable]),
        "fitted_on": f"calibration segment, {CANDIDATES}",
        "rows": int(issuable.sum()),
    }
    _write_card(directory, card)

    card["metrics"] = figures(OnnxSignalModel(directory), holdout, data.interval, "holdout")
    _write_card(directory, card)
    return card


def platt_table(raw: Floats, wins: Floats) -> dict[str, Any]:
    """Platt scaling of ``raw`` scores against ``wins``, as a table for the card.

    ``calibrated = σ(a · logit(raw) + b)``, fitted by maximum likelihood, tabulated at
    ``CALIBRATION_POINTS`` raw scores evenly spaced in logit (−8 … 8).
    """
    z = log_odds(raw)[:, None]
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(z, wins.astype(np.int64))
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    grid = np.linspace(-8.0, 8.0, CALIBRATION_POINTS)
    return {
        "method": "platt",
        "a": a,
        "b": b,
        "raw": [float(x) for x in 1.0 / (1.0 + np.exp(-grid))],
        "calibrated": [float(x) for x in 1.0 / (1.0 + np.exp(-(a * grid + b)))],
    }


def _write_card(directory: Path, card: dict[str, Any]) -> None:
    text = json.dumps(card, indent=2, allow_nan=False)
    (directory / CARD_FILE).write_text(text + "\n", encoding="utf-8")


_LABEL_TEXT = (
    "1 when the trade opened at the signal bar's close wins: stop at entry -/+ stop_atr x "
    "ATR(Wilder 14), target at entry +/- reward_risk x the stop distance; bars after the "
    "signal bar, up to horizon_bars: an open past the stop or target exits at the open, a "
    "bar touching both counts as the stop, else the first level touched; at the horizon the "
    "trade exits at the close; net % after taker fees on entry and exit above breakeven_pct"
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.train_models``: train from the synthetic market or a candle file."""
    parser = argparse.ArgumentParser(
        prog="train_models", description="Train tradewatch's signal models and write the card."
    )
    parser.add_argument("--candles", type=Path, help="a candle CSV (default: the synthetic market)")
    parser.add_argument("--interval", type=int, default=15, help="bar minutes (default 15)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=SYNTHETIC_DAYS, help="synthetic days")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="where model versions go")
    parser.add_argument("--max-age-days", type=int, help="default 30; 3650 for synthetic")
    parser.add_argument("--json", action="store_true", help="print the model card")
    args = parser.parse_args(argv)
    try:
        if args.candles is None:
            data = synthetic_data(args.seed, args.days)
            max_age = args.max_age_days or 3650
        else:
            interval = timedelta(minutes=args.interval)
            data = TrainingData(
                f"file {args.candles.name}", read_candle_csv(args.candles, interval), interval
            )
            max_age = args.max_age_days or 30
        card = train(data, args.out, seed=args.seed, max_age_days=max_age)
    except (TrainingDataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics = card["metrics"]
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    print(
        f"model {card['version']} in {args.out / card['version']}: holdout accuracy "
        f"{metrics['holdout_accuracy']:.3f}, ECE {metrics['holdout_ece']:.4f} "
        f"(raw {metrics['holdout_ece_raw']:.4f}), Brier {metrics['holdout_brier']:.4f}"
    )
    return 0 if math.isfinite(metrics["holdout_ece"]) else 1
