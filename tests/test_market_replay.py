"""The candle-file market: good files replayed; a bad one refused, one line naming line, column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.ports import Gap, MarketUnavailable
from domain.candles import Instrument
from infrastructure.market.replay import (
    INSTRUMENTS,
    CandleFileError,
    ReplayMarket,
    default_instrument,
)
from tests.candle_csv import FIXTURES, parse_candles

IV = timedelta(minutes=15)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
HEADER = "symbol,open_time,open,high,low,close,volume\n"


def write(tmp_path: Path, body: str, header: str = HEADER, name: str = "candles.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + body)
    return path


def bars(symbol: str, count: int, *, start: datetime = T0, iso: bool = True) -> str:
    lines = []
    for n in range(count):
        moment = start + n * IV
        when = (
            moment.isoformat().replace("+00:00", "Z")
            if iso
            else str(int(moment.timestamp() * 1000))
        )
        price = 100 + n
        lines.append(f"{symbol},{when},{price},{price + 2},{price - 1},{price + 1},{10 + n}\n")
    return "".join(lines)


def test_a_good_file_replays_oldest_first(tmp_path: Path) -> None:
    # two symbols, interleaved and reversed; ISO times for one, epoch milliseconds for the other
    lines = (bars("BTCUSDT", 6) + bars("ETHUSDT", 6, iso=False)).splitlines(keepends=True)
    market = ReplayMarket.from_file(write(tmp_path, "".join(reversed(lines))))

    btc = market.closed_candles("BTCUSDT", IV, limit=4)
    eth = market.closed_candles("ETHUSDT", IV, limit=100)

    assert market.symbols == ("BTCUSDT", "ETHUSDT")
    assert [c.open_time for c in btc.candles] == [T0 + n * IV for n in (2, 3, 4, 5)]
    assert [c.open_time for c in eth.candles] == [T0 + n * IV for n in range(6)]
    first = eth.candles[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (100, 102, 99, 101, 10)
    assert first.interval == IV and first.symbol == "ETHUSDT"
    assert market.now() == T0 + 6 * IV  # the close of the last bar
    assert btc.gaps == eth.gaps == ()


def test_start_end_and_limit(tmp_path: Path) -> None:
    market = ReplayMarket.from_file(write(tmp_path, bars("BTCUSDT", 20)))

    upto = market.closed_candles("BTCUSDT", IV, end=T0 + 5 * IV + timedelta(minutes=7), limit=2)
    since = market.closed_candles("BTCUSDT", IV, start=T0 + 3 * IV, limit=3)
    window = market.closed_candles("BTCUSDT", IV, start=T0 + 18 * IV, end=T0 + 30 * IV, limit=9)

    assert [c.open_time for c in upto.candles] == [T0 + 3 * IV, T0 + 4 * IV]
    assert [c.open_time for c in since.candles] == [T0 + 3 * IV, T0 + 4 * IV, T0 + 5 * IV]
    assert [c.open_time for c in window.candles] == [T0 + 18 * IV, T0 + 19 * IV]


def test_times_in_other_zones_and_without_one(tmp_path: Path) -> None:
    body = (
        "BTCUSDT,2024-03-01T01:00:00+01:00,1,1,1,1,1\n"  # 00:00 UTC
        "BTCUSDT,2024-03-01 00:15:00,1,1,1,1,1\n"  # no zone: UTC
        f"BTCUSDT,{int((T0 + 2 * IV).timestamp() * 1000)},1,1,1,1,1\n"
    )
    market = ReplayMarket.from_file(write(tmp_path, body))

    times = [c.open_time for c in market.closed_candles("BTCUSDT", IV).candles]

    assert times == [T0, T0 + IV, T0 + 2 * IV]
    assert all(t.tzinfo == UTC for t in times)


def test_a_gap_is_reported_not_filled_in(tmp_path: Path) -> None:
    body = bars("BTCUSDT", 3) + bars("BTCUSDT", 2, start=T0 + 6 * IV)
    market = ReplayMarket.from_file(write(tmp_path, body))

    batch = market.closed_candles("BTCUSDT", IV)

    assert len(batch.candles) == 5
    assert batch.gaps == (Gap("BTCUSDT", after=T0 + 3 * IV, before=T0 + 6 * IV),)
    assert batch.gaps[0].missing == 3 * IV


def test_another_interval(tmp_path: Path) -> None:
    hourly = timedelta(hours=1)
    body = "".join(f"SOLUSDT,{(T0 + n * hourly).isoformat()},1,2,1,2,5\n" for n in range(4))
    market = ReplayMarket.from_file(write(tmp_path, body), hourly)

    assert len(market.closed_candles("SOLUSDT", hourly).candles) == 4
    with pytest.raises(MarketUnavailable, match=r"^SOLUSDT: candles.csv holds 1h bars, not 15m$"):
        market.closed_candles("SOLUSDT", IV)
    with pytest.raises(MarketUnavailable, match=r"^XRPUSDT: not in candles.csv$"):
        market.closed_candles("XRPUSDT", hourly)


def test_instruments_built_in_overridden_and_default(tmp_path: Path) -> None:
    body = bars("BTCUSDT", 2) + "".join(
        f"XBTUSDT,{(T0 + n * IV).isoformat()},60000,60010,59990,{60000 + n},1\n" for n in range(3)
    )
    mine = Instrument("ETHUSDT", 0.05, 0.1, 0.1, 10.0)
    market = ReplayMarket.from_file(write(tmp_path, body), instruments={"ETHUSDT": mine})

    btc = market.instrument("BTCUSDT")
    assert (btc.tick_size, btc.qty_step, btc.min_order_qty, btc.min_notional) == (
        0.1,
        0.001,
        0.001,
        5.0,
    )
    assert market.instrument("ETHUSDT") is mine
    assert market.instrument("SOLUSDT") == INSTRUMENTS["SOLUSDT"]
    unknown = market.instrument("XBTUSDT")  # the rule at a BTC-like price gives Bybit's BTC rules
    assert (unknown.tick_size, unknown.qty_step, unknown.min_order_qty) == (0.1, 0.001, 0.001)
    assert unknown.min_notional == 5.0
    with pytest.raises(MarketUnavailable, match=r"^DOGEUSDT: not in candles\.csv$"):
        market.instrument("DOGEUSDT")


@pytest.mark.parametrize(
    ("price", "tick", "step"),
    [(60_000, 0.1, 0.001), (3_000, 0.01, 0.01), (150, 0.001, 0.1), (0.15, 1e-06, 100.0)],
)
def test_the_default_instrument_rule(price: float, tick: float, step: float) -> None:
    rules = default_instrument("ANYUSDT", price)

    assert (rules.tick_size, rules.qty_step, rules.min_order_qty) == (tick, step, step)
    assert 10 <= rules.qty_step * price <= 100


GOOD = "BTCUSDT,2024-03-01T00:00:00Z,100,102,99,101,10\n"
BAD_FILES = {
    "missing column": (
        "symbol,open_time,open,high,low,close\nBTCUSDT,2024-03-01T00:00:00Z,1,1,1,1\n",
        "candles.csv line 1: the header lacks column(s) volume "
        "(expected symbol,open_time,open,high,low,close,volume)",
    ),
    "column twice": (
        "symbol,open_time,open,high,low,close,volume,close\n",
        "candles.csv line 1: column 'close' twice in the header",
    ),
    "bad number": (
        HEADER + GOOD + "BTCUSDT,2024-03-01T00:15:00Z,100,abc,99,101,10\n",
        "candles.csv line 3, column high: 'abc' is not a number up to 1e18",
    ),
    "not finite": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,100,102,99,inf,10\n",
        "candles.csv line 2, column close: 'inf' is not a number up to 1e18",
    ),
    "too big": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,100,102,99,101,1e19\n",
        "candles.csv line 2, column volume: '1e19' is not a number up to 1e18",
    ),
    "zero price": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,0,102,99,101,10\n",
        "candles.csv line 2, column open: 0 must be > 0",
    ),
    "negative volume": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,100,102,99,101,-1\n",
        "candles.csv line 2, column volume: -1 must be >= 0",
    ),
    "high below close": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,100,100.5,99,101,10\n",
        "candles.csv line 2, column high: 100.5 is below the open or the close",
    ),
    "low above open": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,100,102,100.5,101,10\n",
        "candles.csv line 2, column low: 100.5 is above the open or the close",
    ),
    "control character": (
        HEADER + GOOD + "BTC\x07USDT,2024-03-01T00:15:00Z,100,102,99,101,10\n",
        "candles.csv line 3, column symbol: control character U+0007",
    ),
    "control character in the header": (
        "symbol,open_time,open,high,low,close,vol\x00ume\n",
        "candles.csv line 1, column #7: control character U+0000",
    ),
    "duplicate header": (
        HEADER + GOOD + HEADER,
        "candles.csv line 3: a second header row",
    ),
    "time too early": (
        HEADER + "BTCUSDT,1999-12-31T00:00:00Z,100,102,99,101,10\n",
        "candles.csv line 2, column open_time: 1999-12-31T00:00:00+00:00 is outside 2009 to 2099",
    ),
    "time too late": (
        HEADER + "BTCUSDT,4102444800000,100,102,99,101,10\n",
        "candles.csv line 2, column open_time: 2100-01-01T00:00:00+00:00 is outside 2009 to 2099",
    ),
    "epoch seconds": (
        HEADER + "BTCUSDT,1709251200,100,102,99,101,10\n",
        "candles.csv line 2, column open_time: 1709251200 looks like epoch seconds; "
        "milliseconds expected",
    ),
    "huge epoch": (
        HEADER + "BTCUSDT,99999999999999999999,100,102,99,101,10\n",
        "candles.csv line 2, column open_time: 99999999999999999999 ms is out of range",
    ),
    "not a time": (
        HEADER + "BTCUSDT,yesterday,100,102,99,101,10\n",
        "candles.csv line 2, column open_time: 'yesterday' is neither ISO 8601 nor epoch "
        "milliseconds",
    ),
    "bad symbol": (
        HEADER + "BTC-USDT,2024-03-01T00:00:00Z,100,102,99,101,10\n",
        "candles.csv line 2, column symbol: 'BTC-USDT' is not a symbol",
    ),
    "field count": (
        HEADER + "BTCUSDT,2024-03-01T00:00:00Z,100,102,99,101\n",
        "candles.csv line 2: 6 fields, the header has 7",
    ),
    "same bar twice": (
        HEADER + GOOD + "ETHUSDT,2024-03-01T00:00:00Z,1,1,1,1,1\n" + GOOD,
        "candles.csv line 4: a second BTCUSDT bar at 2024-03-01T00:00:00+00:00 (lines 2 and 4)",
    ),
    "off the interval": (
        HEADER + GOOD + "BTCUSDT,2024-03-01T00:05:00Z,100,102,99,101,10\n",
        "candles.csv line 3, column open_time: BTCUSDT bars at 2024-03-01T00:00:00+00:00 and "
        "2024-03-01T00:05:00+00:00 are not a whole number of 15m apart (is the file's "
        "interval 15m?)",
    ),
    "bad quoting": (
        HEADER + 'BTCUSDT,"2024-03-01T00:00:00Z"x,100,102,99,101,10\n',
        "candles.csv line 2: not valid CSV (',' expected after '\"')",
    ),
    "empty": (
        "",
        "candles.csv: empty, expected the header symbol,open_time,open,high,low,close,volume",
    ),
    "header only": (HEADER, "candles.csv: holds no candles"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_refused_with_one_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "candles.csv"
    path.write_text(text)

    with pytest.raises(CandleFileError) as refused:
        ReplayMarket.from_file(path)

    assert str(refused.value) == expected


def test_not_utf8_and_parquet_and_missing_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + b"BTCUSDT,2024-03-01T00:00:00Z,1,1,1,1,\xff\n")
    parquet = tmp_path / "candles.parquet"
    parquet.write_bytes(b"PAR1")

    with pytest.raises(CandleFileError, match=r"^latin.csv line 2: not UTF-8 text$"):
        ReplayMarket.from_file(latin)
    with pytest.raises(CandleFileError, match=r"^candles.parquet: Parquet is not read; export"):
        ReplayMarket.from_file(parquet)
    with pytest.raises(CandleFileError, match="cannot read"):
        ReplayMarket.from_file(tmp_path / "nothing.csv")


def test_extra_columns_blank_lines_and_a_bom_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "candles.csv"
    text = "\ufeffOpen_Time,Symbol,open,high,low,close,volume,turnover\n\n" + (
        "2024-03-01T00:00:00Z,btcusdt,100,102,99,101,10,1010\n\n"
    )
    path.write_text(text)

    batch = ReplayMarket.from_file(path).closed_candles("BTCUSDT", IV)

    assert [(c.symbol, c.open_time, c.close) for c in batch.candles] == [("BTCUSDT", T0, 101.0)]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.csv")), ids=lambda p: p.stem)
def test_the_paper_exchanges_candle_fixtures_read_the_same(path: Path) -> None:
    expected = sorted(parse_candles(path.read_text()), key=lambda c: (c.symbol, c.open_time))
    market = ReplayMarket.from_file(path)

    got = [c for s in market.symbols for c in market.closed_candles(s, IV, limit=10_000).candles]

    assert got == expected
