"""The ONNX signal model: loads a model directory, checks it against its card, infers.

Runtime only needs onnxruntime and numpy (never scikit-learn). Each ``InferenceSession`` is
created once per process: ``load_model`` keeps loaded models by directory. On a mismatch
between a file and its card (input or output names, shapes, element types; a meta-learner
whose weights are not the card's) loading fails with one ``ModelMismatch`` line.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from application.ports import ModelCard, Predictions
from infrastructure.models.calibration import apply_table
from infrastructure.models.card import (
    CARD_FILE,
    DIRECTION_INPUT,
    ModelMismatch,
    Part,
    StoredCard,
    read_card,
)

Floats = npt.NDArray[np.float64]
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
_FLOAT = "tensor(float)"
_LOADED: dict[Path, OnnxSignalModel] = {}
_LOADED_LOCK = threading.Lock()


def log_odds(p: Floats) -> Floats:
    """``ln(p / (1 − p))``, with ``p`` clipped to ``[1e-6, 1 − 1e-6]`` (a vote of at most ±13.8)."""
    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)


def _session(directory: Path, part: Part, version: str) -> ort.InferenceSession:
    """An onnxruntime session of ``part``, checked against the inputs the card lists."""
    where = f"model {version}: {part.file}"
    path = directory / part.file
    if not path.is_file():
        raise ModelMismatch(f"{where} is missing")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises several unrelated types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelMismatch(f"{where} is not a model onnxruntime can run ({first})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        names = ", ".join(repr(i.name) for i in inputs)
        raise ModelMismatch(f"{where} takes input {names}, the card expects {INPUT_NAME!r}")
    got = inputs[0]
    if got.type != _FLOAT:
        raise ModelMismatch(
            f"{where} input {INPUT_NAME!r} is {got.type}, the card expects {_FLOAT}"
        )
    width = len(part.inputs)
    shape = list(got.shape)
    if len(shape) != 2 or isinstance(shape[0], int) or shape[1] != width:
        raise ModelMismatch(
            f"{where} input {INPUT_NAME!r} has shape {shape}, the card expects [N, {width}]"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(OUTPUT_NAME)
    if out is None:
        raise ModelMismatch(f"{where} has no output {OUTPUT_NAME!r} (it has {sorted(outputs)})")
    if out.type != _FLOAT or len(out.shape) != 2 or out.shape[1] != 2:
        raise ModelMismatch(
            f"{where} output {OUTPUT_NAME!r} is {out.type} {list(out.shape)}, "
            f"the card expects {_FLOAT} [N, 2]"
        )
    return session


class OnnxSignalModel:
    """A ``SignalModel`` over the ONNX files and card of one model directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stored: StoredCard = read_card(directory)
        facts = self.stored.facts
        version = facts.version
        column = {name: i for i, name in enumerate(facts.features)}
        self._theories = [
            (_session(directory, part, version), [column[i] for i in part.inputs])
            for part in self.stored.theories
        ]
        meta = self.stored.meta
        self._meta = _session(directory, meta, version)
        theory_index = {t: i for i, t in enumerate(facts.theories)}
        self._meta_votes = [
            (j, theory_index[n]) for j, n in enumerate(meta.inputs) if n in theory_index
        ]
        self._meta_direction = [j for j, n in enumerate(meta.inputs) if n == DIRECTION_INPUT]
        self._meta_features = [
            (j, column[n])
            for j, n in enumerate(meta.inputs)
            if n not in theory_index and n != DIRECTION_INPUT
        ]
        self._weights = np.array(
            [self.stored.meta_weights[t] for t in facts.theories], dtype=np.float64
        )
        self._check_meta_weights()

    @property
    def card(self) -> ModelCard:
        """Version, features and their training ranges, label, age limit, holdout figures."""
        return self.stored.facts

    def _check_meta_weights(self) -> None:
        """Probe the meta-learner: it must be the card's logistic regression."""
        inputs = self.stored.meta.inputs
        probe = np.vstack([np.zeros(len(inputs)), np.eye(len(inputs))]).astype(np.float32)
        p = self._meta.run([OUTPUT_NAME], {"features": probe})[0][:, 1].astype(np.float64)
        p = np.clip(p, 1e-7, 1 - 1e-7)
        logit = np.log(p / (1 - p))
        expected = [self.stored.meta_intercept] + [
            self.stored.meta_intercept + self.stored.meta_weights[n] for n in inputs
        ]
        for name, got, want in zip(("intercept", *inputs), logit, expected, strict=True):
            if not math.isclose(float(got), want, rel_tol=1e-3, abs_tol=1e-3):
                raise ModelMismatch(
                    f"model {self.card.version}: meta.onnx does not have the card's weight "
                    f"for {name!r} ({want:.4f}; the file gives {float(got):.4f})"
                )

    def _votes(self, x: npt.NDArray[np.float32]) -> Floats:
        ups = [
            session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x[:, columns])})[0][:, 1]
            for session, columns in self._theories
        ]
        return np.column_stack(ups).astype(np.float64)

    def _meta_input(self, x: npt.NDArray[np.float32], ups: Floats) -> npt.NDArray[np.float32]:
        """The meta-learner's rows: every row as a long, then every row as a short."""
        n = x.shape[0]
        votes = log_odds(ups).astype(np.float32)
        rows = np.empty((2, n, len(self.stored.meta.inputs)), dtype=np.float32)
        sign = np.array([1.0, -1.0], dtype=np.float32)[:, None]
        for j, t in self._meta_votes:
            rows[:, :, j] = sign * votes[:, t]
        for j in self._meta_direction:
            rows[:, :, j] = sign
        for j, f in self._meta_features:
            rows[:, :, j] = x[:, f]
        return rows.reshape(2 * n, -1)

    def _meta_scores(self, x: npt.NDArray[np.float32], ups: Floats) -> tuple[Floats, Floats]:
        rows = self._meta_input(x, ups)
        p = self._meta.run([OUTPUT_NAME], {INPUT_NAME: rows})[0][:, 1]
        p = p.astype(np.float64).reshape(2, x.shape[0])
        return p[0], p[1]

    def session_feeds(
        self, features: Floats
    ) -> list[tuple[ort.InferenceSession, dict[str, npt.NDArray[np.float32]]]]:
        """Each session with the input ``predict`` gives it for ``features`` (for benchmarks:
        the bare ``session.run`` calls of a batch)."""
        x = self._check(features)
        feeds = [
            (session, {INPUT_NAME: np.ascontiguousarray(x[:, columns])})
            for session, columns in self._theories
        ]
        feeds.append((self._meta, {INPUT_NAME: self._meta_input(x, self._votes(x))}))
        return feeds

    def _check(self, features: Floats) -> npt.NDArray[np.float32]:
        width = len(self.card.features)
        if features.ndim != 2 or features.shape[1] != width:
            raise ValueError(
                f"model {self.card.version} takes rows of {width} features, got shape "
                f"{features.shape}"
            )
        return features.astype(np.float32)

    def raw_scores(self, features: Floats) -> tuple[Floats, npt.NDArray[np.int8]]:
        """The uncalibrated meta score of the preferred direction, and that direction."""
        x = self._check(features)
        long_, short = self._meta_scores(x, self._votes(x))
        direction = np.where(short > long_, -1, 1).astype(np.int8)
        return np.maximum(long_, short), direction

    def predict(self, features: Floats) -> Predictions:
        """Theory outputs, direction, calibrated confidence and contributions per row."""
        x = self._check(features)
        ups = self._votes(x)
        long_, short = self._meta_scores(x, ups)
        direction = np.where(short > long_, -1, 1).astype(np.int8)
        confidence = apply_table(
            np.maximum(long_, short),
            self.stored.calibration_raw,
            self.stored.calibration_calibrated,
        )
        confidence = np.where(np.isnan(long_) | np.isnan(short), np.nan, confidence)
        contributions = log_odds(ups) * self._weights * direction[:, None]
        return Predictions(
            theories=self.card.theories,
            theory_up=ups,
            direction=direction,
            confidence=confidence,
            contributions=contributions,
        )


def load_model(directory: Path) -> OnnxSignalModel:
    """The model in ``directory``, loaded once per process (its sessions are reused)."""
    key = directory.resolve()
    with _LOADED_LOCK:
        model = _LOADED.get(key)
        if model is None:
            model = _LOADED[key] = OnnxSignalModel(key)
        return model


SHIPPED_MODELS = Path(__file__).with_name("shipped")


def model_directory(models_dir: Path | None = None) -> Path:
    """The model to use: ``models_dir`` (``TRADEWATCH_MODELS_DIR``) if set, else the shipped one.

    A directory with a ``card.json`` is that model; otherwise the newest (by ``trained_at``,
    then name) of its subdirectories that have one.
    """
    root = models_dir if models_dir is not None else SHIPPED_MODELS
    if (root / CARD_FILE).is_file():
        return root
    candidates = sorted(p for p in root.glob(f"*/{CARD_FILE}")) if root.is_dir() else []
    if not candidates:
        raise ModelMismatch(f"no model in {root} (no {CARD_FILE} in it or its subdirectories)")
    dated = []
    for card in candidates:
        try:
            dated.append((read_card(card.parent).facts.trained_at, card.parent.name, card.parent))
        except ModelMismatch:
            continue
    if not dated:
        raise ModelMismatch(f"no readable model card under {root}")
    return max(dated)[2]
