"""Errors raised when a command would break a rule of the ledger."""


class DomainError(ValueError):
    """A command was refused because it would break an invariant.

    The message is one line that names the problem, fit to show a trader as is.
    """


class NotFoundError(DomainError):
    """The command names a signal or trade that the ledger does not hold."""


class ConflictError(DomainError):
    """The command contradicts a fact already recorded (a retry with other content)."""
