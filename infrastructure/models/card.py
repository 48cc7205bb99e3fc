"""The model card: ``card.json`` beside a model's ONNX files, read and checked.

Fields (``docs/models.md`` explains each): ``version``, ``trained_at`` (the end of the
training data; the model's age counts from it), ``max_age_days``, ``interval_minutes``,
``seed``, ``features`` (name, training ``min`` and ``max``), ``label`` (its definition and
parameters), ``theories`` (file, inputs), ``meta`` (file, inputs, logistic ``weights`` and
``intercept``), ``calibration`` (an isotonic table), ``data`` (source, symbols, SHA-256,
window, segments, rows), ``training`` and ``metrics`` (holdout accuracy, ECE, Brier).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from application.ports import ModelCard
from domain.features import FEATURES
from domain.labels import LabelSpec
from infrastructure.models.calibration import table_problem

CARD_FILE = "card.json"
CARD_SCHEMA = 1
DIRECTION_INPUT = "direction"
"""The meta-learner input that is +1 for the long row and −1 for the short row."""
IR_VERSION = 9
"""ONNX IR version of the shipped files (onnxruntime >= 1.15 reads it)."""
OPSET = (("", 17), ("ai.onnx.ml", 3))
CONFIDENCE_GATE = 0.77
"""The generator's default confidence gate, used for the card's holdout signal figures."""
VOLUME_GATE = 2.0
"""The generator's default volume-ratio gate, likewise."""


class ModelMismatch(Exception):  # noqa: N818 - reads as what happened to the model
    """A model directory does not match its card (or has none); the message is one line."""


@dataclass(frozen=True, slots=True)
class Part:
    """One ONNX file of a model and the inputs its card says it takes, in column order."""

    name: str
    file: str
    inputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredCard:
    """A parsed, checked ``card.json``: the port's ``ModelCard`` and what the adapter needs."""

    facts: ModelCard
    theories: tuple[Part, ...]
    meta: Part
    meta_weights: dict[str, float]
    meta_intercept: float
    calibration_raw: tuple[float, ...]
    calibration_calibrated: tuple[float, ...]
    raw: dict[str, Any]


def _need(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelMismatch(f"{where}: card field {key!r} is missing or of the wrong type")
    return value


def _part(raw: Any, where: str) -> Part:
    if not isinstance(raw, dict):
        raise ModelMismatch(f"{where}: a card model entry is not an object")
    inputs = _need(raw, "inputs", list, where)
    if not inputs or not all(isinstance(i, str) for i in inputs):
        raise ModelMismatch(f"{where}: card model {raw.get('name')!r} lists no inputs")
    return Part(str(raw.get("name", "meta")), _need(raw, "file", str, where), tuple(inputs))


def read_card(directory: Path) -> StoredCard:
    """The card of the model in ``directory``; ``ModelMismatch`` if absent or inconsistent."""
    path = directory / CARD_FILE
    where = f"model {directory}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelMismatch(f"{where} has no {CARD_FILE}") from None
    except (OSError, ValueError) as error:
        raise ModelMismatch(f"{where}: {CARD_FILE} is unreadable ({error})") from None
    if not isinstance(raw, dict) or raw.get("schema") != CARD_SCHEMA:
        raise ModelMismatch(f"{where}: {CARD_FILE} is not a schema {CARD_SCHEMA} model card")
    version = _need(raw, "version", str, where)
    where = f"model {version}"
    features = []
    ranges: dict[str, tuple[float, float]] = {}
    for entry in _need(raw, "features", list, where):
        name = _need(entry, "name", str, where)
        if name not in FEATURES:
            raise ModelMismatch(f"{where}: card feature {name!r} is not one tradewatch computes")
        low, high = (
            float(_need(entry, "min", (int, float), where)),
            float(_need(entry, "max", (int, float), where)),
        )
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ModelMismatch(f"{where}: card range of {name!r} is not a finite [min, max]")
        features.append(name)
        ranges[name] = (low, high)
    theories = tuple(_part(t, where) for t in _need(raw, "theories", list, where))
    meta_raw = _need(raw, "meta", dict, where)
    meta = _part(meta_raw, where)
    names = {t.name for t in theories}
    clash = names & ({DIRECTION_INPUT} | set(FEATURES))
    if clash:
        raise ModelMismatch(f"{where}: theory name {sorted(clash)[0]!r} is also a feature's name")
    for part in theories:
        unknown = [i for i in part.inputs if i not in ranges]
        if unknown:
            raise ModelMismatch(
                f"{where}: theory {part.name!r} reads {unknown[0]!r}, not a card feature"
            )
    for name in meta.inputs:
        if name not in names and name != DIRECTION_INPUT and name not in ranges:
            raise ModelMismatch(f"{where}: meta input {name!r} is no theory, direction or feature")
    weights = _need(meta_raw, "weights", dict, where)
    if set(weights) != set(meta.inputs):
        raise ModelMismatch(f"{where}: the meta weights do not name exactly the meta inputs")
    calibration = _need(raw, "calibration", dict, where)
    table_raw = tuple(float(x) for x in _need(calibration, "raw", list, where))
    table_cal = tuple(float(x) for x in _need(calibration, "calibrated", list, where))
    problem = table_problem(table_raw, table_cal)
    if problem:
        raise ModelMismatch(f"{where}: {problem}")
    label = _need(raw, "label", dict, where)
    try:
        spec = LabelSpec(
            stop_atr=float(label["stop_atr"]),
            reward_risk=float(label["reward_risk"]),
            horizon_bars=int(label["horizon_bars"]),
            taker_fee=float(label["taker_fee"]),
            breakeven_pct=float(label["breakeven_pct"]),
        )
        trained_at = datetime.fromisoformat(_need(raw, "trained_at", str, where))
    except (KeyError, ValueError, TypeError):
        raise ModelMismatch(f"{where}: the card's label or trained_at is incomplete") from None
    if trained_at.tzinfo is None:
        raise ModelMismatch(f"{where}: the card's trained_at has no time zone")
    found = raw.get("metrics")
    metrics: dict[str, Any] = found if isinstance(found, dict) else {}
    facts = ModelCard(
        version=version,
        features=tuple(features),
        feature_ranges=ranges,
        theories=tuple(t.name for t in theories),
        interval=timedelta(minutes=_need(raw, "interval_minutes", int, where)),
        label=spec,
        trained_at=trained_at,
        max_age=timedelta(days=_need(raw, "max_age_days", int, where)),
        holdout_ece=float(metrics.get("holdout_ece", math.nan)),
        holdout_brier=float(metrics.get("holdout_brier", math.nan)),
    )
    return StoredCard(
        facts=facts,
        theories=theories,
        meta=meta,
        meta_weights={k: float(v) for k, v in weights.items()},
        meta_intercept=float(_need(meta_raw, "intercept", (int, float), where)),
        calibration_raw=table_raw,
        calibration_calibrated=table_cal,
        raw=raw,
    )
