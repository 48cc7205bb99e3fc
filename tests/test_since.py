"""``--since`` names an instant: written with any offset, it gives the same alerts and the
same controller decisions (the stamp was once the local wall time with a ``Z`` appended)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from ui.cli import app

DAY = datetime(2024, 1, 2, tzinfo=UTC)
H = timedelta(hours=1)
SAME_INSTANT = ("2024-01-02T10:00:00Z", "2024-01-02T12:00:00+02:00", "2024-01-02T05:00:00-05:00")


def listed(tw: Tradewatch, *args: str) -> Any:
    env = {
        "TRADEWATCH_HOME": str(tw.settings.home),
        "TRADEWATCH_DATABASE_URL": tw.settings.database,
    }
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_same_instant_with_three_offsets_gives_the_same_answer(
    make_tradewatch: Callable[..., Tradewatch],
) -> None:
    tw = make_tradewatch(max_consecutive_losses=2)
    tw.controller.clock = lambda: DAY + 10.5 * H
    # six signals (and their signal alerts) from 08:00 to 13:00; two losses make RED at
    # 09:30, a resume at 10:30, a win at 11:00 turns GREEN
    for hour in range(8, 14):
        tw.ledger.record_signal(SignalDraft(f"s{hour}", "BTCUSDT", Direction.LONG, DAY + hour * H))
    for signal_id, exit_at, price in (("s8", 9.0, 99.0), ("s9", 9.5, 99.0), ("s10", 11.0, 101.0)):
        entered_at = DAY + int(signal_id[1:]) * H
        tw.ledger.record_entry(signal_id, Fill.checked(100.0, 1.0, 0.0, entered_at, "entry"))
        if signal_id == "s10":
            tw.sync()
            tw.controller.resume("test", "checked the losses")
        tw.ledger.record_exit(signal_id, price, 0.0, "manual", DAY + exit_at * H)
    tw.sync()

    alerts = [listed(tw, "alerts", "--since", since, "--type", "signal") for since in SAME_INSTANT]
    assert alerts[0] == alerts[1] == alerts[2]
    assert [a["title"].split()[3] for a in alerts[0] if a["type"] == "signal"] == [
        "s10",
        "s11",
        "s12",
        "s13",
    ]
    decisions = [listed(tw, "audit", "--controller", "--since", since) for since in SAME_INSTANT]
    assert decisions[0] == decisions[1] == decisions[2]
    assert [(d["kind"], d["at"][11:16]) for d in decisions[0]] == [
        ("Controller.Resumed", "10:30"),
        ("Controller.StatusChanged", "11:00"),
    ]
    everything = listed(tw, "audit", "--controller")
    assert [d["at"][11:16] for d in everything][:1] == ["09:30"]  # before the instant
