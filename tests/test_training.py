"""Training: purged walk-forward folds, calibration, candle files, and a reproducible card."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from domain.features import FEATURES
from infrastructure.market.synthetic import SyntheticMarket
from infrastructure.models.calibration import apply_table, brier_score, expected_calibration_error
from infrastructure.models.card import CARD_FILE
from infrastructure.models.dataset import (
    TrainingDataError,
    read_candle_csv,
    split_segments,
    synthetic_data,
    walk_forward_folds,
)
from infrastructure.models.onnx_model import load_model, model_directory
from infrastructure.models.training import main, platt_table, train

M15 = timedelta(minutes=15)


def stamped_rows(symbols: int = 3, bars: int = 1000) -> np.ndarray:
    """Bar numbers of rows for several symbols, interleaved as a dataset has them."""
    return np.concatenate([np.arange(5000, 5000 + bars) for _ in range(symbols)])


def test_walk_forward_folds_expand_and_keep_a_purge_gap() -> None:
    bar = stamped_rows()
    folds = walk_forward_folds(bar, n_folds=4, purge_bars=96)
    assert len(folds) == 4
    previous_test_end = None
    for k, fold in enumerate(folds, start=1):
        test_bars, train_bars = bar[fold.test], bar[fold.train]
        assert train_bars.max() + 96 < test_bars.min()  # no label reaches the test block
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert test_bars.min() == 5000 + 1000 * k // 5
        if previous_test_end is not None:
            assert test_bars.min() == previous_test_end  # blocks follow each other
        previous_test_end = test_bars.max() + 1
        # every row of an earlier block far enough back is trained on (an expanding window)
        assert np.array_equal(np.sort(fold.train), np.flatnonzero(bar + 96 < test_bars.min()))
    assert np.array_equal(
        np.sort(np.concatenate([f.test for f in folds])), np.flatnonzero(bar >= 5200)
    )


def test_a_fold_without_training_rows_is_an_error() -> None:
    with pytest.raises(TrainingDataError, match="fold 1 has no training or test rows"):
        walk_forward_folds(np.arange(300), n_folds=4, purge_bars=96)
    with pytest.raises(ValueError, match="n_folds"):
        walk_forward_folds(np.arange(300), n_folds=0, purge_bars=96)


def test_segments_are_in_time_order_and_purged() -> None:
    bar = stamped_rows()
    train, calibration, holdout = split_segments(bar, (0.6, 0.2, 0.2), purge_bars=96)
    assert bar[train].max() + 96 < bar[calibration].min()
    assert bar[calibration].max() + 96 < bar[holdout].min()
    assert bar[holdout].min() == 5800 and bar[holdout].max() == 5999
    assert bar[calibration].min() == 5600


def test_ece_and_brier_follow_the_written_definition() -> None:
    confidence = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.55])
    hits = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    # bins: [0,.1): .05/0; [.1,.2): .15,.15/0.5; [.5,.6): .55/0; [.9,1]: .95,1/1
    gaps = 1 * abs(0 - 0.05) + 2 * abs(0.5 - 0.15) + 1 * abs(0 - 0.55) + 2 * abs(1 - 0.975)
    assert expected_calibration_error(confidence, hits) == pytest.approx(gaps / 6)
    assert brier_score(confidence, hits) == pytest.approx(np.mean((confidence - hits) ** 2))
    assert math.isnan(expected_calibration_error(np.empty(0), np.empty(0)))


def test_calibration_fitted_on_held_out_data_improves_an_overconfident_score() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.9, 40_000)
    hits = (rng.uniform(size=truth.size) < truth).astype(np.float64)
    logit = np.log(truth / (1 - truth))
    raw = 1 / (1 + np.exp(-(2.5 * logit + 0.4)))  # overconfident and biased
    table = platt_table(raw[:20_000], hits[:20_000])
    calibrated = apply_table(raw[20_000:], table["raw"], table["calibrated"])
    before = expected_calibration_error(raw[20_000:], hits[20_000:])
    after = expected_calibration_error(calibrated, hits[20_000:])
    assert after < before / 4
    assert brier_score(calibrated, hits[20_000:]) < brier_score(raw[20_000:], hits[20_000:])
    assert table["a"] == pytest.approx(1 / 2.5, rel=0.1)


def test_training_with_the_same_seed_reproduces_the_shipped_card(tmp_path: Path) -> None:
    shipped = load_model(model_directory()).stored.raw
    card = train(synthetic_data(shipped["seed"]), tmp_path, seed=shipped["seed"], max_age_days=3650)
    assert card["version"] == shipped["version"]
    assert card["data"] == shipped["data"]
    assert card["features"] == shipped["features"]
    assert card["meta"]["weights"] == pytest.approx(shipped["meta"]["weights"], rel=1e-9)
    for key, value in shipped["metrics"].items():
        assert card["metrics"][key] == pytest.approx(value, rel=1e-9), key
    written = json.loads((tmp_path / card["version"] / CARD_FILE).read_text())
    assert written["metrics"] == card["metrics"]
    # Where it matters, among the rows the default gates pass, confidence means the win rate.
    signals = card["metrics"]["holdout_signals"]
    assert signals["count"] > 50
    assert abs(signals["win_rate"] - signals["mean_confidence"]) < 0.05
    assert card["metrics"]["holdout_ece"] < 0.06


def write_csv(path: Path, rows: list[tuple[str, str, float, float, float, float, float]]) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["symbol", "open_time", "open", "high", "low", "close", "volume"])
        out.writerows(rows)


def test_a_candle_file_reads_iso_and_epoch_times_and_splits_at_gaps(tmp_path: Path) -> None:
    path = tmp_path / "candles.csv"
    write_csv(
        path,
        [
            ("ethusdt", "1704067200000", 10, 11, 9, 10.5, 3),
            ("ETHUSDT", "2024-01-01T00:15:00Z", 10.5, 11, 10, 10.8, 4),
            ("ETHUSDT", "2024-01-01T01:00:00+00:00", 10.8, 11, 10.1, 10.2, 2),
            ("BTCUSDT", "2024-01-01T00:00:00Z", 100, 101, 99, 100, 1),
        ],
    )
    series = read_candle_csv(path, M15)
    assert [(s.symbol, len(s.bars)) for s in series] == [
        ("BTCUSDT", 1),
        ("ETHUSDT", 2),
        ("ETHUSDT", 1),
    ]
    assert series[1].bars.open_time.tolist() == [1704067200000, 1704068100000]


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (("BTCUSDT", "yesterday", 1, 2, 0.5, 1, 1), "open_time"),
        (("BTCUSDT", "2024-01-01T00:00:00Z", 1, 0.5, 0.4, 1, 1), "high"),
        (("BTCUSDT", "2024-01-01T00:00:00Z", 1, 2, 0.5, "x", 1), "close"),
    ],
)
def test_a_bad_candle_file_is_the_replay_readers_one_line_error(
    tmp_path: Path, row: tuple[str, str, float, float, float, float, float], column: str
) -> None:
    path = tmp_path / "bad.csv"
    write_csv(path, [row])
    with pytest.raises(TrainingDataError, match=f"bad.csv line 2, column {column}: ") as refused:
        read_candle_csv(path, M15)
    assert "\n" not in str(refused.value)


def test_duplicates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    bar = ("BTCUSDT", "2024-01-01T00:00:00Z", 1, 2, 0.5, 1, 1)
    write_csv(path, [bar, bar])
    with pytest.raises(TrainingDataError, match="a second BTCUSDT bar at 2024-01-01T00:00:00"):
        read_candle_csv(path, M15)


class _At:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def test_training_from_a_candle_file_writes_a_usable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    market = SyntheticMarket(_At(datetime(2024, 9, 1, tzinfo=UTC)), seed=3)
    bars = market.ohlcv("SOLUSDT", M15, start=datetime(2024, 1, 1, tzinfo=UTC), limit=None)
    path = tmp_path / "sol.csv"
    write_csv(
        path,
        [
            ("SOLUSDT", str(int(t)), o, h, lo, c, v)
            for t, o, h, lo, c, v in zip(
                bars.open_time, bars.open, bars.high, bars.low, bars.close, bars.volume, strict=True
            )
        ],
    )
    out = tmp_path / "models"
    assert main(["--candles", str(path), "--out", str(out), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "holdout accuracy" in printed and "ECE" in printed
    model = load_model(model_directory(out))
    assert model.card.max_age == timedelta(days=30)
    assert model.stored.raw["data"]["source"] == "file sol.csv"
    assert model.predict(np.zeros((1, len(FEATURES)))).confidence.shape == (1,)


def test_a_bad_file_is_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.csv"
    write_csv(path, [])
    assert main(["--candles", str(path), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: empty.csv: holds no candles"
