"""How the ``tradewatch`` command ends: one line for every error, as the README promises.

Click (inside typer) reports a usage error (an unknown command or option, a missing
argument, a value out of range) as a boxed, many-line message. Here the command runs with
``standalone_mode=False`` and each such error becomes one line, ``error: <what is wrong>;
see 'tradewatch <command> --help'``, with exit code 2; ``--help`` itself is untouched.
Anything unexpected is one line too (exit code 1), unless ``TRADEWATCH_DEBUG`` is set.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import typer
import typer.main
from rich.console import Console
from rich.markup import escape

DEBUG_VARIABLE = "TRADEWATCH_DEBUG"
"""Set it (to anything) to see the traceback of an unexpected error."""


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces (and trimmed)."""
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def print_error(console: Console, message: str) -> None:
    """``error: <message>`` on one line of ``console`` (markup in the message is shown as is)."""
    console.print(
        f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True
    )


def usage_message(error: typer.TyperException) -> str:
    """A click usage error as one phrase, with where to find the usage."""
    message = one_line(error.format_message()).replace("Value error, ", "").rstrip(".")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    ctx: Any = getattr(error, "ctx", None)
    if ctx is not None:
        message += f"; see '{ctx.command_path} --help'"
    return message


def forced_entry(
    symbol: str | None,
    direction: str,
    price: str,
    qty: str,
    fee: str,
    source: str,
    at: str | None,
) -> str:
    """The ``tradewatch entry`` command line of a manual trade, with ``--force`` added.

    A manual trade refused by the controller left nothing in the ledger (not even its
    signal id), so the way on is to say the whole command again, forced.
    """
    words = ["tradewatch", "entry", "--symbol", str(symbol), "--direction", direction, price]
    for option, value, default in (
        ("--qty", qty, "1"),
        ("--fee", fee, "0"),
        ("--source", source, "manual"),
        ("--at", at, None),
    ):
        if value is not None and value != default:
            words += [option, value]
    return shlex.join([*words, "--force"])


def _is_help(error: typer.TyperException) -> bool:
    """Click's ``no_args_is_help``: a group called without a command; its 'message' is the help."""
    return type(error).__name__ == "NoArgsIsHelpError"


def run(app: typer.Typer, args: Sequence[str] | None, console: Console) -> int:
    """Run the app on ``args`` (``sys.argv`` when None); the exit code it ends with."""
    command = typer.main.get_command(app)
    try:
        code = command.main(
            args=None if args is None else list(args), prog_name="tradewatch", standalone_mode=False
        )
    except typer.TyperException as e:  # click's usage errors (and its other errors) derive from it
        if _is_help(e):
            ctx: Any = getattr(e, "ctx", None)
            shown = ctx.get_help() if ctx is not None else ""  # typer's rich help prints itself
            if shown:
                sys.stdout.write(shown + "\n")
            return 2
        print_error(console, usage_message(e))
        return int(getattr(e, "exit_code", 2))
    except typer.Abort:
        print_error(console, "aborted")
        return 1
    except Exception as e:  # the last line of defence: a bug must still be one line
        if os.environ.get(DEBUG_VARIABLE):
            raise
        print_error(
            console,
            f"unexpected {type(e).__name__}: {e} (set {DEBUG_VARIABLE}=1 to see the traceback)",
        )
        return 1
    return code if isinstance(code, int) else 0
