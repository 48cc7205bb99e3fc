"""The Telegram sink against a fake Bot API and a nats-server of the test's own: each alert
delivered once, in order; outages, rate limits and misconfiguration lose nothing; a sink
killed between delivery and ack, restarted, or running twice sends nothing twice."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from domain.signal import SignalDraft
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from infrastructure.nats_relay import Backoff, publish_pending
from infrastructure.settings import Settings
from infrastructure.sinks import telegram
from infrastructure.sinks.consumer import SinkSettingsError, SinkUnavailableError
from tests.fakes.telegram import CHAT, TOKEN, FakeTelegram
from tests.nats_support import DAY, WAIT, NatsServer, relay_for, wait_for
from tests.sink_support import (
    Running,
    consumer_state,
    make_alert,
    nats_server,
    publish,
    publish_raw,
)

__all__ = ["nats_server"]  # the fixture, imported for the tests below
ROOT = Path(__file__).resolve().parent.parent
DURABLE = "tradewatch-telegram"


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def settings(tmp_path: Path, nats: NatsServer, fake: FakeTelegram, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path,
        "nats_url": nats.url,
        "telegram_bot_token": TOKEN,
        "telegram_chat_id": CHAT,
        "telegram_api_url": fake.url,
        "timezone": "Europe/Berlin",
    }
    values.update(overrides)
    return Settings(**values)


def sink(
    tmp_path: Path, nats: NatsServer, fake: FakeTelegram, ack_wait: float = 10.0, **overrides: Any
) -> Running:
    built = telegram.sink(
        settings(tmp_path, nats, fake, **overrides),
        backoff=Backoff(first=0.05, cap=0.2),
        ack_wait=ack_wait,
    )
    return Running(built)


def heads(fake: FakeTelegram) -> list[str]:
    return [text.splitlines()[0] for text in fake.texts()]


def settled(nats: NatsServer, durable: str = DURABLE) -> bool:
    return consumer_state(nats.url, durable) == (0, 0)


def test_each_alert_is_delivered_once_in_order(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    alerts = [make_alert(title=f"alert {i}") for i in range(5)]
    publish(nats_server.url, *alerts)
    with sink(tmp_path, nats_server, fake) as running:
        wait_for(lambda: len(fake.delivered) == 5 and settled(nats_server))
        assert running.sink.stats.delivered == 5
    assert heads(fake) == [f"📈 alert {i}" for i in range(5)]
    assert {m.chat_id for m in fake.delivered} == {CHAT}
    assert {m.parse_mode for m in fake.delivered} == {"HTML"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_alerts_from_the_real_policy_reach_the_chat_in_their_formats(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram, tw: Tradewatch
) -> None:
    tw.settings.nats_url = nats_server.url
    tw.alerts.clock = lambda: DAY + timedelta(minutes=5)  # a Tuesday, 12:05 UTC
    draft = SignalDraft(
        "s1", "BTCUSDT", Direction.LONG, DAY, confidence=0.81, entry_low=50_000,
        entry_high=50_100, stop_loss=49_000, take_profit=52_000, position_size=0.05,
        timeframe="15m",
    )  # fmt: skip
    tw.ledger.record_signal(draft)
    tw.sync()
    assert asyncio.run(publish_pending(relay_for(tw))) == 3
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 3)
    signal, daily, weekly = fake.texts()
    assert signal.splitlines()[:3] == [
        "📈 Signal: BTCUSDT LONG",
        "Confidence: 81.0%",
        "BTCUSDT LONG",
    ]
    assert "<pre>BTCUSDT LONG\nEntry: 50000 - 50100\nSL: 49000\nTP: 52000\nSize: 0.05</pre>" in (
        fake.delivered[0].text
    )
    assert daily.splitlines()[:3] == [
        "🌅 Daily Status",
        "Date: Tue 10 Nov 2026",
        "Status: 🟢 GREEN",
    ]
    assert "Signals Ready: 1" in daily.splitlines()
    assert weekly.splitlines()[:3] == [
        "📊 Weekly Report",
        "Week: the 7 days to 2026-11-10",
        "Trades: 0",
    ]


def test_an_outage_of_telegram_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    fake.down()
    publish(nats_server.url, *(make_alert(title=f"alert {i}") for i in range(3)))
    with sink(tmp_path, nats_server, fake) as running:
        wait_for(lambda: fake.attempts() >= 4)
        assert fake.delivered == []
        fake.up()
        wait_for(lambda: len(fake.delivered) == 3 and settled(nats_server))
        assert running.sink.stats.failures >= 4
    assert heads(fake) == [f"📈 alert {i}" for i in range(3)]


def test_a_rate_limit_is_waited_out_as_telegram_asks(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tradewatch.sinks")
    fake.fail(429, retry_after=1)
    publish(nats_server.url, make_alert(title="limited"))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 1)
    assert fake.attempts() == 2
    (warning,) = [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]
    assert warning.endswith("retrying in 1 s")  # retry_after, not the backoff's 0.05 s


def test_a_wrong_chat_waits_for_the_fix_then_delivers(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    fake.chats = set()
    publish(nats_server.url, make_alert(title="first"), make_alert(title="second"))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: fake.attempts() >= 3)
        fake.chats = {CHAT}  # the operator fixed it (here: the bot was added to the chat)
        wait_for(lambda: len(fake.delivered) == 2)
    assert heads(fake) == ["📈 first", "📈 second"]


def test_an_alert_refused_for_good_is_passed_over_once(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    fake.fail(400, description="Bad Request: something about this one message")
    publish(nats_server.url, make_alert(title="refused"), make_alert(title="next"))
    with sink(tmp_path, nats_server, fake) as running:
        wait_for(lambda: len(fake.delivered) == 1 and settled(nats_server))
        assert running.sink.stats.refused == 1
    assert heads(fake) == ["📈 next"]


def test_markup_telegram_cannot_parse_is_sent_as_plain_text(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    fake.fail(400, description="Bad Request: can't parse entities: unsupported start tag")
    publish(nats_server.url, make_alert(title="a <b> title", text="x & y"))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 1)
    (sent,) = fake.delivered
    assert sent.parse_mode is None
    assert sent.text.splitlines()[:2] == ["📈 a <b> title", "x & y"]


def test_html_in_trader_text_is_escaped(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    evil = "<script>alert(1)</script> & co"
    publish(nats_server.url, make_alert(title=evil, text=evil))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 1)
    (sent,) = fake.delivered
    assert sent.parse_mode == "HTML" and "<script>" not in sent.text
    assert sent.visible.splitlines()[:2] == [f"📈 {evil}", evil]


def test_an_alert_over_4096_characters_arrives_in_parts(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    lines = [f"{i:03d} <&>" + "z" * 39 for i in range(84)]
    publish(nats_server.url, make_alert(title="long " + "t" * 190, text="\n".join(lines)))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 2 and settled(nats_server))
    first, second = fake.texts()
    assert first.splitlines()[0].endswith("(1/2)") and second.splitlines()[0].endswith("(2/2)")
    body = first.splitlines()[1:] + second.splitlines()[1:]
    assert [line for line in body if line[:3].isdigit()] == lines


def test_a_stopped_sink_resumes_a_long_alert_at_its_next_part(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    text = "\n".join(f"{i:03d} " + "z" * 45 for i in range(78))
    publish(nats_server.url, make_alert(title="long " + "t" * 190, text=text))
    fake.fail(500, times=None, after_delivered=1)  # part 1 goes through, part 2 does not
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: fake.attempts() >= 3)
    assert len(fake.delivered) == 1
    fake.up()
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 2 and settled(nats_server))
    assert [t.splitlines()[0][-5:] for t in fake.texts()] == ["(1/2)", "(2/2)"]


def test_a_restart_resumes_where_it_stopped_and_doubles_nothing(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    publish(nats_server.url, make_alert(title="a"), make_alert(title="b"))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 2 and settled(nats_server))
    publish(nats_server.url, make_alert(title="c"))
    with sink(tmp_path, nats_server, fake):
        wait_for(lambda: len(fake.delivered) == 3 and settled(nats_server))
    assert heads(fake) == ["📈 a", "📈 b", "📈 c"]


def test_an_alert_published_again_is_not_sent_again(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    alert = make_alert(title="once")
    publish(nats_server.url, alert)
    with sink(tmp_path, nats_server, fake) as running:
        wait_for(lambda: len(fake.delivered) == 1 and settled(nats_server))
        # the relay publishing it again past the stream's duplicate window (a restore)
        publish(nats_server.url, alert, msg_id="republished-after-a-restore")
        wait_for(lambda: running.sink.stats.duplicates == 1 and settled(nats_server))
    assert heads(fake) == ["📈 once"]


def test_the_sink_killed_after_delivery_before_its_ack_sends_nothing_twice(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    publish(nats_server.url, *(make_alert(title=f"alert {i}") for i in range(3)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    env.update(
        PYTHONPATH=str(ROOT),
        TRADEWATCH_HOME=str(tmp_path),
        TRADEWATCH_NATS_URL=nats_server.url,
        TRADEWATCH_TELEGRAM_BOT_TOKEN=TOKEN,
        TRADEWATCH_TELEGRAM_CHAT_ID=CHAT,
        TRADEWATCH_TELEGRAM_API_URL=fake.url,
    )
    child = subprocess.run(
        [sys.executable, "-m", "tests.sink_process", "telegram", "--die-after", "2",
         "--ack-wait", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WAIT * 2, check=False,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr
    assert heads(fake) == ["📈 alert 0", "📈 alert 1"]
    assert consumer_state(nats_server.url, DURABLE) == (1, 1)  # alert 1 was never acked
    with sink(tmp_path, nats_server, fake) as running:
        wait_for(lambda: len(fake.delivered) == 3 and settled(nats_server))
        assert running.sink.stats.duplicates == 1  # alert 1, redelivered, not sent again
    assert heads(fake) == ["📈 alert 0", "📈 alert 1", "📈 alert 2"]


def test_types_are_routed_by_the_setting(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    kinds = ["signal", "critical", "daily_status", "warning"]
    publish(nats_server.url, *(make_alert(k, title=k) for k in kinds))
    with sink(tmp_path, nats_server, fake, telegram_types="critical, warning") as running:
        wait_for(lambda: settled(nats_server) and running.sink.stats.skipped == 2)
    assert heads(fake) == ["🔴 critical", "🟡 warning"]


def test_two_sinks_at_once_deliver_each_alert_once_in_order(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    with sink(tmp_path, nats_server, fake), sink(tmp_path, nats_server, fake):
        publish(nats_server.url, *(make_alert(title=f"alert {i:02d}") for i in range(20)))
        wait_for(lambda: len(fake.delivered) >= 20 and settled(nats_server))
    assert heads(fake) == [f"📈 alert {i:02d}" for i in range(20)]


def test_a_payload_that_is_not_an_alert_is_passed_over(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    publish_raw(nats_server.url, "tradewatch.alerts.signal.info", b"{not json")
    publish(nats_server.url, make_alert(title="valid"))
    with sink(tmp_path, nats_server, fake) as running:
        wait_for(lambda: len(fake.delivered) == 1 and settled(nats_server))
        assert running.sink.stats.invalid == 1
    assert heads(fake) == ["📈 valid"]


def test_nats_going_away_and_back_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, fake: FakeTelegram
) -> None:
    publish(nats_server.url, make_alert(title="before"))
    # a nats-server killed may forget its latest acks: it then redelivers "before" (after
    # ack_wait), and the delivered ids keep it from being sent twice
    with sink(tmp_path, nats_server, fake, ack_wait=1.0) as running:
        wait_for(lambda: len(fake.delivered) == 1 and settled(nats_server))
        nats_server.kill()
        wait_for(lambda: running.sink.stats.failures >= 1)
        nats_server.start()
        publish(nats_server.url, make_alert(title="after"))
        wait_for(lambda: len(fake.delivered) == 2 and settled(nats_server))
    assert heads(fake) == ["📈 before", "📈 after"]


def test_missing_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(SinkSettingsError) as found:
        telegram.transport(Settings(home=tmp_path))
    assert str(found.value) == (
        "the Telegram sink needs TRADEWATCH_NATS_URL, TRADEWATCH_TELEGRAM_BOT_TOKEN, "
        "TRADEWATCH_TELEGRAM_CHAT_ID"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("telegram_types", "signal,bogus", "'bogus' is not an alert type"),
        ("telegram_chat_id", "not a chat", "String should match pattern"),
        ("telegram_api_url", "ftp://x", "must start with http:// or https://"),
        ("telegram_consumer", "has space", "String should match pattern"),
    ],
)
def test_bad_telegram_settings_are_refused(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_the_token_never_shows_in_a_reason(tmp_path: Path) -> None:
    unreachable = Settings(
        home=tmp_path,
        nats_url="nats://127.0.0.1:4222",
        telegram_bot_token=SecretStr(TOKEN),
        telegram_chat_id=CHAT,
        telegram_api_url="http://127.0.0.1:9",
    )
    with pytest.raises(SinkUnavailableError) as found:
        asyncio.run(telegram.transport(unreachable).send("x"))
    assert "cannot reach the Telegram Bot API at http://127.0.0.1:9" in str(found.value)
    assert TOKEN not in str(found.value)
