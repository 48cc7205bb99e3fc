"""The market settings: symbols, interval, and the Bybit environment (from the environment)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from infrastructure.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray TRADEWATCH_*/BYBIT_* variable or tradewatch.toml reaches these tests."""
    for name in list(os.environ):
        if name.startswith(("TRADEWATCH_", "BYBIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRADEWATCH_CONFIG", str(tmp_path / "absent.toml"))


def test_defaults() -> None:
    settings = Settings()

    assert settings.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert settings.interval == 15 and settings.candle_interval == timedelta(minutes=15)
    assert (settings.bybit_testnet, settings.bybit_demo, settings.bybit_url) == (False, False, None)


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWATCH_SYMBOLS", " ethusdt, BTCUSDT,ETHUSDT ,")
    monkeypatch.setenv("TRADEWATCH_INTERVAL", "60")
    monkeypatch.setenv("BYBIT_TESTNET", "true")
    monkeypatch.setenv("BYBIT_DEMO", "1")
    monkeypatch.setenv("TRADEWATCH_BYBIT_URL", "http://127.0.0.1:9")

    settings = Settings()

    assert settings.symbols == ("ETHUSDT", "BTCUSDT")  # upper-cased, deduplicated, in order
    assert settings.candle_interval == timedelta(hours=1)
    assert settings.bybit_testnet and settings.bybit_demo
    assert settings.bybit_url == "http://127.0.0.1:9"


def test_from_the_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "tradewatch.toml"
    config.write_text('symbols = ["solusdt"]\ninterval = 5\nbybit_testnet = true\n')
    monkeypatch.setenv("TRADEWATCH_CONFIG", str(config))

    settings = Settings()

    assert (settings.symbols, settings.interval, settings.bybit_testnet) == (("SOLUSDT",), 5, True)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("TRADEWATCH_SYMBOLS", "BTC-USDT", "'BTC-USDT' is not a symbol"),
        ("TRADEWATCH_SYMBOLS", " , ", "name at least one symbol"),
        ("TRADEWATCH_SYMBOLS", "BTC\x07USDT", "is not a symbol"),
        ("TRADEWATCH_INTERVAL", "0", "greater than 0"),
        ("TRADEWATCH_INTERVAL", "20000", "less than or equal to 10080"),
        ("TRADEWATCH_BYBIT_URL", "ftp://x", "must start with http:// or https://"),
        ("TRADEWATCH_BYBIT_TIMEOUT", "0", "greater than 0"),
    ],
)
def test_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=problem):
        Settings()
