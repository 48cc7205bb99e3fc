"""The controller process: reacts to exits (and day boundaries) by deciding the traffic light.

It follows the event log with its own tracking position, stored atomically with the
decisions it records (eventsourcing's process recorder), so a crash between deciding and
recording reprocesses the exit and records the decision once. Two processes racing on the
same exit conflict on the controller's version; the loser re-reads and finds it done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from eventsourcing.domain import Aggregate

from application.bookkeeping import Bookkeeper, KeptBook, VoidedTrade
from application.ledger import TradeLedger
from application.process import FaultSink, TrackedProcess
from domain.controller import CONTROLLER_ID, Controller
from domain.controller_policy import Status, Thresholds, evaluate
from domain.days import TradingDay
from domain.events import Causation
from domain.signal import Gate
from projections.facts import EventLog, Fact

PROCESS_NAME = "controller"
"""The controller's tracking key in the event store."""


class ControllerProcess(TrackedProcess):
    """Decides the traffic light from the ledger's exits; records decisions exactly once."""

    name = PROCESS_NAME

    def __init__(
        self,
        ledger: TradeLedger,
        log: EventLog,
        books: Bookkeeper,
        faults: FaultSink,
        *,
        thresholds: Thresholds,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = 1000,
    ) -> None:
        super().__init__(ledger, log, faults, page_size)
        self.books = books
        self.kept = KeptBook(books)
        self.thresholds = thresholds
        self.clock = clock

    def controller(self) -> Controller:
        """The controller as recorded (a fresh GREEN one if none was yet)."""
        found = self.ledger.find(CONTROLLER_ID)
        if isinstance(found, Controller):
            return found
        return Controller.start(
            self.clock(), Causation.command("controller.start", str(CONTROLLER_ID))
        )

    def gate(self) -> Gate:
        """The gate new signals record."""
        return self.controller().gate()

    def handler(self, position: int) -> Callable[[Fact], Sequence[Aggregate]]:
        """Evaluate the policy as of each exit; the controller changes on a new colour."""
        controller = self.controller()
        book = self.kept.at(position)
        exits = self.books.reader()

        def handle(fact: Fact) -> Sequence[Aggregate]:
            change = exits.closed_trade(fact)
            if change is None:
                self.kept.handled(fact.id)
                return ()
            self.kept.handling()
            if isinstance(change, VoidedTrade):
                if not book.remove(change.signal_id):
                    self.kept.handled(fact.id)
                    return ()  # an open trade voided: no measurement changes
                at = change.at
            else:
                book.put(change)
                at = change.exit_time
            decision = evaluate(
                book.measurements(at), controller.state, at, self.thresholds, self.books.zone
            )
            cause = Causation(fact.state["correlation_id"], fact.event_id)
            changed = controller.decide(
                decision, [fact.id], [fact.event_id], cause, self.thresholds
            )
            self.kept.handled(fact.id)
            return (controller,) if changed else ()

        return handle

    def after_events(self) -> None:
        """At a new day (of the configured zone), let a RED held by the cool-down go."""
        controller = self.controller()
        state = controller.state
        now = self.clock()
        held_since = state.last_red_at or state.red_since
        if state.status is not Status.RED or state.paused or held_since is None:
            return
        today = TradingDay.of(now, self.books.zone).day
        if today <= TradingDay.of(held_since, self.books.zone).day:
            return
        self.reconsider(controller, now, f"clock:{today.isoformat()}")

    def reconsider(self, controller: Controller, now: datetime, cause_id: str) -> int:
        """Evaluate on the latest numbers (after a resume or at a day boundary)."""
        book = self.kept.at(self.position())
        decision = evaluate(
            book.measurements(now), controller.state, now, self.thresholds, self.books.zone
        )
        cause = Causation(str(CONTROLLER_ID), cause_id)
        if not controller.decide(decision, [], [cause_id], cause, self.thresholds):
            return 0
        self.save(controller)
        return 1

    def pause(self, by: str, reason: str) -> Controller:
        """Stop trading by hand."""
        controller = self.controller()
        controller.pause_trading(
            by, reason, self.clock(), Causation.command("controller.pause", str(CONTROLLER_ID))
        )
        self.ledger.save(controller)
        return controller

    def resume(self, by: str, reason: str) -> Controller:
        """Lift a pause or cool-down, then let the numbers decide at once."""
        self.run_once()
        controller = self.controller()
        controller.resume_trading(
            by, reason, self.clock(), Causation.command("controller.resume", str(CONTROLLER_ID))
        )
        self.ledger.save(controller)
        self.reconsider(controller, self.clock(), f"{CONTROLLER_ID}:{controller.version}")
        return controller
