"""The shipped ONNX model: it loads, infers as its card says, and a mismatched one is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.linear_model import LogisticRegression

from application.ports import SignalModel
from domain.features import FEATURES, Ohlcv, feature_matrix
from domain.labels import LabelSpec
from domain.values import Direction
from infrastructure.market.synthetic import SyntheticMarket
from infrastructure.models.card import CARD_FILE, ModelMismatch
from infrastructure.models.evaluation import main as evaluate_main
from infrastructure.models.onnx_model import (
    SHIPPED_MODELS,
    OnnxSignalModel,
    load_model,
    log_odds,
    model_directory,
)
from scripts import bench_generator

M15 = timedelta(minutes=15)
pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")


@dataclass
class Clock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


@pytest.fixture(scope="module")
def shipped() -> OnnxSignalModel:
    return load_model(model_directory())


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """Feature rows of the synthetic market after the shipped model's training window."""
    market = SyntheticMarket(Clock(datetime(2026, 3, 1, tzinfo=UTC)))
    out = []
    for symbol in market.symbols:
        bars = market.ohlcv(symbol, M15, limit=1000)
        x = feature_matrix(bars)
        out.append(x[np.isfinite(x).all(axis=1)])
    return np.concatenate(out)


def test_the_shipped_model_has_one_version_and_a_complete_card(shipped: OnnxSignalModel) -> None:
    versions = [p for p in SHIPPED_MODELS.iterdir() if (p / CARD_FILE).is_file()]
    assert len(versions) == 1
    card = shipped.card
    assert card.version == versions[0].name
    assert card.features == FEATURES
    assert all(lo < hi for lo, hi in card.feature_ranges.values())
    assert card.theories == ("momentum", "mean_reversion", "volatility_breakout", "volume_pressure")
    assert card.interval == M15
    assert card.label == LabelSpec()
    assert card.max_age == timedelta(days=3650)
    assert 0 < card.holdout_ece < 0.05 and 0 < card.holdout_brier < 0.25
    for path in versions[0].iterdir():
        assert path.stat().st_size < 1_000_000


def test_it_implements_the_port_and_is_loaded_once(shipped: OnnxSignalModel) -> None:
    port: SignalModel = shipped
    assert port.card.version
    assert load_model(model_directory()) is shipped
    assert load_model(SHIPPED_MODELS / shipped.card.version) is shipped


def test_predictions_are_probabilities_directions_and_contributions(
    shipped: OnnxSignalModel, rows: np.ndarray
) -> None:
    p = shipped.predict(rows)
    assert len(p) == rows.shape[0]
    assert p.theory_up.shape == (rows.shape[0], 4)
    assert np.all((p.theory_up > 0) & (p.theory_up < 1))
    assert set(np.unique(p.direction)) == {-1, 1}
    assert np.all((p.confidence >= 0) & (p.confidence <= 1))
    weights = np.array([shipped.stored.meta_weights[t] for t in p.theories])
    expected = log_odds(p.theory_up) * weights * p.direction[:, None]
    np.testing.assert_allclose(p.contributions, expected)
    i = int(np.argmax(p.confidence))
    assert p.direction_of(i) in (Direction.LONG, Direction.SHORT)
    assert p.contributions_of(i) == dict(zip(p.theories, p.contributions[i].tolist(), strict=True))
    assert set(p.theory_outputs(i)) == set(p.theories)


def test_contributions_are_the_theories_share_of_the_meta_log_odds(
    shipped: OnnxSignalModel, rows: np.ndarray
) -> None:
    stored = shipped.stored
    p = shipped.predict(rows)
    raw, direction = shipped.raw_scores(rows)
    assert np.array_equal(direction, p.direction)
    w = stored.meta_weights
    context = sum(
        w[name] * rows[:, FEATURES.index(name)] for name in stored.meta.inputs if name in FEATURES
    )
    logit = (
        stored.meta_intercept + p.contributions.sum(axis=1) + w["direction"] * p.direction + context
    )
    np.testing.assert_allclose(logit, log_odds(raw), atol=2e-3)
    table = np.interp(raw, stored.calibration_raw, stored.calibration_calibrated)
    np.testing.assert_allclose(p.confidence, table)


def test_the_direction_is_the_side_whose_trade_scores_higher(
    shipped: OnnxSignalModel, rows: np.ndarray
) -> None:
    stored = shipped.stored
    w = stored.meta_weights
    p = shipped.predict(rows)
    votes = log_odds(p.theory_up) @ np.array([w[t] for t in p.theories])
    context = sum(w[n] * rows[:, FEATURES.index(n)] for n in stored.meta.inputs if n in FEATURES)
    long_, short = (
        stored.meta_intercept + d * (votes + w["direction"]) + context for d in (1.0, -1.0)
    )
    expected = np.where(short > long_, -1, 1)
    clear = np.abs(long_ - short) > 1e-3  # float32 inside the graph
    assert np.array_equal(p.direction[clear], expected[clear])
    raw, _ = shipped.raw_scores(rows)
    np.testing.assert_allclose(log_odds(raw), np.maximum(long_, short), atol=2e-3)


def test_a_wrong_number_of_columns_is_refused(shipped: OnnxSignalModel) -> None:
    with pytest.raises(ValueError, match="takes rows of 16 features"):
        shipped.predict(np.zeros((3, 5)))


def test_nan_features_give_nan_confidence(shipped: OnnxSignalModel, rows: np.ndarray) -> None:
    broken = rows[:2].copy()
    broken[0, :] = np.nan
    p = shipped.predict(broken)
    assert np.isnan(p.confidence[0]) and np.isfinite(p.confidence[1])


def test_the_runtime_never_imports_scikit_learn() -> None:
    code = (
        "import sys; from infrastructure.models.onnx_model import load_model, model_directory;"
        "m = load_model(model_directory()); import numpy as np;"
        "m.predict(np.zeros((2, len(m.card.features))));"
        "print(sorted(k for k in sys.modules"
        " if k.split('.')[0] in ('sklearn', 'skl2onnx', 'onnx')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


# --- mismatched models -------------------------------------------------------------------


def copy_shipped(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_directory(), target)
    return target


def tiny_model(width: int, kind: type = FloatTensorType) -> onnx.ModelProto:
    x = np.random.default_rng(0).normal(size=(50, width))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    proto: onnx.ModelProto = to_onnx(
        model,
        initial_types=[("features", kind([None, width]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(model): {"zipmap": False}},
    )
    return proto


def overwrite(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def rename_input(directory: Path) -> None:
    proto = onnx.load(str(directory / "momentum.onnx"))
    proto.graph.input[0].name = "x"
    for node in proto.graph.node:
        node.input[:] = ["x" if i == "features" else i for i in node.input]
    onnx.save(proto, str(directory / "momentum.onnx"))


def rename_output(directory: Path) -> None:
    proto = onnx.load(str(directory / "momentum.onnx"))
    for out in proto.graph.output:
        if out.name == "probabilities":
            out.name = "probs"
    for node in proto.graph.node:
        node.output[:] = ["probs" if o == "probabilities" else o for o in node.output]
    onnx.save(proto, str(directory / "momentum.onnx"))


def edit_card(change: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        card = json.loads((directory / CARD_FILE).read_text())
        change(card)
        (directory / CARD_FILE).write_text(json.dumps(card))

    return apply


def _set_weight(card: dict[str, object]) -> None:
    card["meta"]["weights"]["momentum"] += 0.5  # type: ignore[index]


def _unknown_feature(card: dict[str, object]) -> None:
    card["features"][0]["name"] = "moon_phase"  # type: ignore[index]


def _bad_table(card: dict[str, object]) -> None:
    card["calibration"]["calibrated"] = list(reversed(card["calibration"]["calibrated"]))  # type: ignore[index]


MISMATCHES: dict[str, tuple[Callable[[Path], None], str]] = {
    "renamed input": (rename_input, "momentum.onnx takes input 'x', the card expects 'features'"),
    "wrong shape": (
        lambda d: onnx.save(tiny_model(4), str(d / "momentum.onnx")),
        r"momentum.onnx input 'features' has shape \[.*, 4\], the card expects \[N, 5\]",
    ),
    "wrong type": (
        lambda d: onnx.save(tiny_model(5, DoubleTensorType), str(d / "momentum.onnx")),
        r"momentum.onnx input 'features' is tensor\(double\), the card expects tensor\(float\)",
    ),
    "renamed output": (rename_output, "momentum.onnx has no output 'probabilities'"),
    "not onnx": (
        lambda d: overwrite(d / "meta.onnx", b"not a model"),
        "meta.onnx is not a model onnxruntime can run",
    ),
    "missing file": (
        lambda d: (d / "volume_pressure.onnx").unlink(),
        "volume_pressure.onnx is missing",
    ),
    "meta weights": (
        edit_card(_set_weight),
        "meta.onnx does not have the card's weight for 'momentum'",
    ),
    "unknown feature": (edit_card(_unknown_feature), "card feature 'moon_phase' is not one"),
    "calibration": (edit_card(_bad_table), "the calibration table is not increasing"),
    "no card": (lambda d: (d / CARD_FILE).unlink(), "has no card.json"),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_mismatched_model_is_refused_with_one_clear_line(tmp_path: Path, case: str) -> None:
    directory = copy_shipped(tmp_path)
    damage, message = MISMATCHES[case]
    damage(directory)
    with pytest.raises(ModelMismatch, match=message) as refused:
        OnnxSignalModel(directory)
    assert "\n" not in str(refused.value)


def test_the_models_dir_setting_picks_a_model_or_the_newest_in_a_folder(tmp_path: Path) -> None:
    one = copy_shipped(tmp_path)
    assert model_directory(one) == one
    folder = tmp_path / "models"
    older = folder / "a-older"
    newer = folder / "b-newer"
    shutil.copytree(one, older)
    shutil.copytree(one, newer)
    edit_card(lambda c: c.update(trained_at="2030-01-01T00:00:00+00:00"))(older)
    assert model_directory(folder) == older
    with pytest.raises(ModelMismatch, match="no model in"):
        model_directory(tmp_path / "empty")


def test_a_generator_can_gate_the_last_closed_bar(shipped: OnnxSignalModel) -> None:
    """What the generator will do: features of each symbol's last closed bar, then infer."""
    market = SyntheticMarket(Clock(datetime(2026, 2, 1, 12, 5, tzinfo=UTC)))
    last = []
    for symbol in market.symbols:
        batch = market.closed_candles(symbol, shipped.card.interval, limit=200)
        last.append(feature_matrix(Ohlcv.of(batch.candles))[-1])
    p = shipped.predict(np.array(last))
    assert len(p) == 3 and np.isfinite(p.confidence).all()


def test_the_benchmark_prints_each_figure_beside_its_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_generator.main(["--runs", "5", "--json"])  # its exit code depends on the machine
    figures = json.loads(capsys.readouterr().out)
    assert [f["name"].split(":")[0] for f in figures] == ["all bars", "last bar"]
    for f in figures:
        assert f["value_ms"] > 0 and f["baseline_ms"] > 0
        assert f["ratio"] == pytest.approx(f["value_ms"] / f["baseline_ms"])


def test_evaluating_the_model_on_fresh_synthetic_days(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_main(["--start", "2026-02-01", "--days", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == load_model(model_directory()).card.version
    assert result["eval_rows"] > 5000 and result["eval_candidates"] > 50
    assert 0 <= result["eval_ece"] < 1
    assert evaluate_main(["--models-dir", "/nonexistent", "--days", "20"]) == 2
    assert "no model in /nonexistent" in capsys.readouterr().err
