"""One labelled run of a command that trains several (``compare``, ``sweep``, ``ablate``).

:func:`train_labelled` trains a config into its folder, or goes on with the run there, so a
command stopped anywhere goes on when it is run again with the same arguments:

* a finished run (its ``result.json`` written) is kept and its result read back;
* an unfinished one (a ``last.state.pt``) is resumed exactly where it stopped;
* a folder that holds a run of other settings is refused, never mixed.

The run's log lines start with its label (:func:`~ldwseg.engine.logs.log_label`), and so
do the descriptions its progress bars get.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import Config
from ..engine.fit import FitResult
from ..engine.logs import format_duration, log_label
from ..engine.run_folder import RunFolder, check_same_settings
from ..engine.stopping import rerun_goes_on, rerun_resumes
from ..errors import Interrupted, WriteFailed
from ..io.atomic import atomic_write
from ..tasks import train

__all__ = ["RESULT_FILE", "run_position", "train_labelled"]

log = logging.getLogger(__name__)

RESULT_FILE = RunFolder(Path()).result.name
"""Written into a run's folder when it finishes: the :class:`~ldwseg.engine.fit.FitResult` as JSON."""


def train_labelled(cfg: Config, out: Path, *, label: str, whose: str, progress: Callable | None = None) -> FitResult:
    """Train ``cfg`` into ``out`` unless it finished there (see the module docstring); its result.

    Args:
        cfg: the run's full config.
        out: its folder.
        label: what its log lines and progress bars start with.
        whose: whose settings the folder must hold, for the refusal ("this compare's").
        progress: wraps the batches of an epoch, as :func:`ldwseg.tasks.train`'s.

    Raises:
        ConfigError: ``out`` holds a run of other settings than ``cfg``.
        WriteFailed: the disk refused a file of the run; running the same command again goes on.
    """
    check_same_settings(out, cfg, whose=whose)
    done = RunFolder(out).result
    if done.is_file():
        log.info("%s: finished earlier, kept (%s)", label, out)
        return FitResult(**json.loads(done.read_text()))
    resume = RunFolder(out).state.is_file()
    log.info("%s: %s %s", label, "resuming" if resume else "training", out)
    wrap = (lambda batches, desc: progress(batches, f"{label} {desc}")) if progress is not None else None
    try:
        with log_label(label):
            result = train(cfg, out, resume=resume, progress=wrap)
        text = json.dumps(dataclasses.asdict(result), indent=2) + "\n"
        atomic_write(done, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except WriteFailed as err:
        raise rerun_goes_on(err) from err
    except Interrupted as err:
        raise rerun_resumes(err) from err
    return result


def run_position(number: int, count: int, spent: Sequence[tuple[float, int]], epochs_after: int, *, label: str) -> str:
    """The line before a run of a compare: which of the runs to train it is and, once this call
    has trained one, how long those after it take at the pace so far (``spent``: seconds and
    epochs of each run trained; ``epochs_after``: the epochs of the runs after this one).

    >>> run_position(1, 3, [], 20, label="max seed 0")
    'max seed 0: run 1 of 3 to train'
    >>> run_position(2, 3, [(100.0, 10)], 10, label="ldw seed 0")
    'ldw seed 0: run 2 of 3 to train; the runs after it: ~1m40s at 10s an epoch'
    """
    line = f"{label}: run {number} of {count} to train"
    epochs = sum(e for _, e in spent)
    if epochs == 0 or epochs_after == 0:
        return line
    pace = sum(t for t, _ in spent) / epochs
    return f"{line}; the runs after it: ~{format_duration(pace * epochs_after)} at {format_duration(pace)} an epoch"
