"""The typer app, its global options and the error handling shared by every command.

Every command turns a known problem (:class:`~ldwseg.errors.LDWSegError`, a missing
file, an unreadable image) into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import typer

from .. import __version__
from ..errors import LDWSegError

app = typer.Typer(
    name="ldwseg",
    help="Segmentation and reconstruction with Learnable Discrete Wavelet Pooling (LDW-Pooling).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

__all__ = ["app", "user_errors", "progress", "fail"]

log = logging.getLogger("ldwseg")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ldwseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and results."),
) -> None:
    """Segmentation and reconstruction with Learnable Discrete Wavelet Pooling."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr, force=True
    )


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def user_errors(fn: Callable) -> Callable:
    """Run a command, reporting known problems as one line instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LDWSegError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except KeyboardInterrupt:
            fail("interrupted")

    return wrapper


def progress(iterable: Iterable, desc: str) -> Iterable:
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, disable=not sys.stderr.isatty())
