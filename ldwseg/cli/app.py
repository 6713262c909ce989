"""The typer app, its global options, the entry point and the error handling shared by every command.

Every command turns a known problem (:class:`~ldwseg.errors.LDWSegError`, a missing or
unwritable file, a bad option) into one line on stderr and a non-zero exit:

* 2: a problem with the input (options, config, data, checkpoint, paths);
* 1: the machine (out of memory, disk full) or an unexpected error, which is reported as
  a bug (``LDWSEG_DEBUG=1`` shows its traceback);
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

from ..config import DEVICE_PATTERN
from ..engine.runlock import LOCK_NAME, held_by_another_process
from ..errors import ConfigError, LDWSegError
from ..io.atomic import storage_errno
from ..version import __version__
from .help import DefaultsTyper, config_default

__all__ = [
    "app", "main", "user_errors", "progress", "fail", "check_device", "check_output", "check_run_folder",
    "config_default", "new_output", "remove_if_empty",
]  # fmt: skip

app = DefaultsTyper(
    name="ldwseg",
    help="Segmentation and reconstruction with Learnable Discrete Wavelet Pooling (LDW-Pooling).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: "[default: ...]" stays visible (rich reads it as markup), wraps in any pipe
)

log = logging.getLogger("ldwseg")

DEBUG_ENV = "LDWSEG_DEBUG"
"""Set to 1 to see the traceback of an unexpected error instead of its one-line summary."""

USAGE_EXIT = 2
MACHINE_EXIT = 1
INTERRUPT_EXIT = 130

# typer raises click's exceptions, or (typer >= 0.20) those of its own copy of click: take them from typer.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_NoArgsIsHelp = getattr(sys.modules[_ClickException.__module__], "NoArgsIsHelpError", None)
_PASS_THROUGH = (typer.Exit, typer.Abort, _ClickException)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ldwseg {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and results."),
) -> None:
    """Segmentation and reconstruction with Learnable Discrete Wavelet Pooling."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr, force=True
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def fail(message: str, code: int = USAGE_EXIT) -> None:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code)


def check_device(value: str | None) -> str | None:
    """Callback of the ``--device`` options: refuse names torch does not know before any work is done."""
    if value is not None and not DEVICE_PATTERN.fullmatch(value.strip()):
        raise typer.BadParameter(f"{value!r} is not a device; use auto, cpu, cuda or cuda:N")
    return None if value is None else value.strip()


def check_output(path: Path, *, folder: bool, option: str = "--out") -> None:
    """Refuse an output path that cannot be written before any work is done.

    ``folder``: the path is a folder to create or fill (else a file to create or replace).
    """
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file; expected a folder, choose another path")
    if not folder and path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; expected a file name such as {path / 'output.png'}")
    blocker = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise ConfigError(f"{option} {path} cannot be created: {blocker} is a file, not a folder; choose another path")


def check_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Never replace the run in ``out`` silently: refuse it unless ``resume``; ``overwrite`` removes it first.

    Under ``torchrun`` only rank 0 removes it, and a group that the elastic agent restarted
    skips both (it goes on from its own checkpoint, see :mod:`ldwseg.engine.fit`).
    """
    from ..engine.run_folder import check_new_run, clear_run

    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    if overwrite:
        removed = clear_run(out) if os.environ.get("RANK", "0") == "0" else []
        if removed:
            log.info("--overwrite: removed the earlier run's %s from %s", ", ".join(removed), out)
    elif not resume:
        check_new_run(out)


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when it holds no files but unheld run locks, e.g. after a run failed at its start."""
    if not folder.is_dir():
        return
    files = [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]
    if any(p.name != LOCK_NAME or held_by_another_process(p) for p in files):
        return
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def new_output(folder: Path) -> Iterator[None]:
    """Run the body; if it fails and ``folder`` (or parents of it) did not exist before, remove what it created when that holds nothing.

    A command that fails before writing its results (bad data, a bad option found late)
    then leaves no empty output folder behind. Files it did write are kept. Under
    ``torchrun`` only rank 0 cleans up, as only rank 0 writes.
    """
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # e.g. runs/ of runs/voc12
    try:
        yield
    except BaseException:
        if created and os.environ.get("RANK", "0") == "0":
            remove_if_empty(created[-1])
        raise


def _where(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    return f" {name}" if name != "" else ""


def _os_error(exc: OSError) -> tuple[str, int]:
    """The message and exit status of an operating-system error."""
    where = _where(exc)
    if isinstance(exc, FileNotFoundError):
        return f"file or folder not found:{where or ' ' + str(exc)}; check the path", USAGE_EXIT
    if isinstance(exc, IsADirectoryError):
        what = where.strip() or "the path"
        return f"{what} is a folder, but a file was expected; give the path of a file", USAGE_EXIT
    if isinstance(exc, NotADirectoryError):
        return (
            f"{where.strip() or 'the path'} is not a folder: part of the path is a regular file; "
            "choose a path under a folder",
            USAGE_EXIT,
        )
    if isinstance(exc, FileExistsError):
        return (
            f"cannot create folder{where}: a file of that name exists; remove it or choose another path",
            USAGE_EXIT,
        )
    if isinstance(exc, PermissionError):
        return (
            f"permission denied:{where or ' ' + str(exc)}; check its permissions or choose a location you can "
            "read and write",
            USAGE_EXIT,
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        writing = where or " a file"
        message = f"no space left on the device (writing{writing}); free disk space or write elsewhere (--out)"
        return message, MACHINE_EXIT
    if exc.errno == errno.EROFS:
        return f"read-only file system:{where}; write elsewhere (--out)", MACHINE_EXIT
    if exc.errno == errno.ENAMETOOLONG:
        return f"file name too long:{where}; use a shorter path", USAGE_EXIT
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}{f' ({where.strip()})' if where else ''}; check the path and the disk", MACHINE_EXIT


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _from_worker(exc: BaseException) -> tuple[str, bool] | None:
    """The original message of an error a DataLoader worker re-raised here, and whether it is ldwseg's.

    PyTorch re-raises a worker's exception with the worker's traceback in its message;
    its last line is ``module.Class: message``.
    """
    text = str(exc)
    if "DataLoader worker" not in text or "Original Traceback" not in text:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    name, _, message = last.partition(": ")
    return (message or last), name.startswith("ldwseg.")


def _report(exc: BaseException) -> int:
    """Print the one line for ``exc`` on stderr and return the exit status; re-raise bugs under LDWSEG_DEBUG."""
    worker = _from_worker(exc)
    if worker is not None and worker[1]:
        message, code = worker[0], USAGE_EXIT
    elif worker is not None and not _debug():
        message = f"a data-loading worker failed: {worker[0]}; rerun with {DEBUG_ENV}=1 for the traceback"
        code = MACHINE_EXIT
    elif isinstance(exc, LDWSegError):
        message, code = str(exc) or type(exc).__name__, getattr(exc, "exit_code", USAGE_EXIT)
    elif isinstance(exc, KeyboardInterrupt):
        message, code = "interrupted", INTERRUPT_EXIT
    elif _debug():
        raise exc
    elif _is_out_of_memory(exc):
        message = (
            f"out of memory ({_one_line(str(exc))[:200] or type(exc).__name__}); use a smaller --batch-size, "
            "crop size (--set data.crop_size=...) or width (--set model.base_width=...), smaller images, "
            "or a machine with more memory"
        )
        code = MACHINE_EXIT
    elif isinstance(exc, BrokenPipeError):
        return MACHINE_EXIT  # stdout was closed (ldwseg ... | head): nothing to say, nowhere to say it
    elif isinstance(exc, OSError):
        message, code = _os_error(exc)
    elif storage_errno(exc) is not None:  # a library's error around a full or failing disk (torch, safetensors)
        number = storage_errno(exc)
        message, code = _os_error(OSError(number, os.strerror(number)))
        message = f"{message} ({type(exc).__name__}: {_one_line(str(exc))[:200]})"
    else:
        detail = _one_line(str(exc))
        message = (
            f"unexpected {type(exc).__name__}{f': {detail}' if detail else ''}; "
            f"rerun with {DEBUG_ENV}=1 for the traceback, and report it"
        )
        code = MACHINE_EXIT
    typer.echo(f"error: {_one_line(message)}", err=True)
    return code


def user_errors(fn: Callable) -> Callable:
    """Run a command, reporting any problem as one line instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            code = _report(exc)
            raise typer.Exit(code) from None

    return wrapper


def _usage_line(exc: Exception) -> str:
    message = _one_line(exc.format_message()).rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "ldwseg"
    return f"error: {message}; see '{where} --help'"


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning("warning: %s: %s", category.__name__, _one_line(str(message)))


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ldwseg`` console script: run a command, return its exit status.

    Usage errors (unknown option or command, a bad value, a missing argument) print one
    ``error: ...`` line and return 2 instead of click's usage box; any other failure goes
    through the same one-line reporting as the commands'.
    """
    command = typer.main.get_command(app)
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line  # one line per warning, like everything else on stderr
        try:
            result = command.main(args=list(argv) if argv is not None else None, prog_name="ldwseg",
                                  standalone_mode=False)  # fmt: skip
        except _ClickException as exc:
            if _NoArgsIsHelp is not None and isinstance(exc, _NoArgsIsHelp):  # bare "ldwseg": the help
                typer.echo(exc.ctx.get_help())
            else:
                typer.echo(_usage_line(exc), err=True)
            return getattr(exc, "exit_code", USAGE_EXIT)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            return MACHINE_EXIT
        except (Exception, KeyboardInterrupt) as exc:
            return _report(exc)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def progress(iterable: Iterable, desc: str) -> Iterable:
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, disable=not sys.stderr.isatty())
