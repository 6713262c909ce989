"""What a run reports: per-epoch metrics to CSV and TensorBoard (rank 0 only), and its log lines.

:class:`MetricLog` writes ``metrics.csv`` and the TensorBoard events; :func:`time_left`
words the estimate at the end of each epoch line; :func:`log_label` prefixes the
training loop's lines with the setting of one run among several (``sweep``, ``ablate``,
``compare``).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import statistics
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write
from .run_folder import RunFolder

__all__ = ["TRAINING_LOGGER", "MetricLog", "epoch_pace", "format_duration", "log_label", "time_left"]

log = logging.getLogger(__name__)

TRAINING_LOGGER = "ldwseg.engine.fit"
"""The logger of the training loop's lines (start, resume, one per epoch): the one :func:`log_label` labels."""


class MetricLog:
    """One CSV row per epoch in ``out/metrics.csv``, mirrored to ``out/tensorboard``.

    Epochs are numbered from 1, as the console numbers them: :meth:`write` takes the
    0-based ``epoch`` of the loop and writes ``epoch + 1`` (also the TensorBoard step). A
    fresh run (``start_epoch == 0``) starts a new file; a run resumed at the 0-based
    ``start_epoch`` keeps the rows of the epochs before it (numbers ``1..start_epoch``)
    and drops any later ones. The file is rewritten whole and atomically at every row (it
    is small), so a full disk or a crash never leaves half a row for a resume to read.
    """

    def __init__(self, out: Path, *, enabled: bool = True, start_epoch: int = 0) -> None:
        self.path = RunFolder(out).metrics
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        rows: list[dict[str, Any]] = []
        if start_epoch > 0 and self.path.exists():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= start_epoch]
        self.rows = rows
        self.fields: list[str] | None = list(rows[0]) if rows else None
        if rows:
            self._rewrite()
        else:
            self.path.unlink(missing_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            # steps are epoch numbers: the resumed epoch start_epoch + 1 and later ones are written again
            folder = RunFolder(out).tensorboard
            self.writer = SummaryWriter(str(folder), purge_step=start_epoch + 1 if start_epoch else None)
        except ImportError:
            log.warning("tensorboard is not installed; metrics go to %s only", self.path)

    def _rewrite(self) -> None:
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore", restval="")
                writer.writeheader()
                writer.writerows(self.rows)

        atomic_write(self.path, write)

    def write(self, epoch: int, row: dict[str, Any]) -> None:
        """Append the row of the 0-based ``epoch`` (written as epoch ``epoch + 1``)."""
        if not self.enabled:
            return
        row = {"epoch": epoch + 1, **row}
        # a column that earlier rows lack (val_* when eval_every > 1): the header grows, earlier cells stay empty
        self.fields = [*(self.fields or []), *(key for key in row if key not in (self.fields or []))]
        self.rows.append(row)
        self._rewrite()
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, epoch + 1)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_duration(seconds: float) -> str:
    """``seconds`` as a person reads a duration: ``"3.2s"``, ``"45s"``, ``"1m20s"``, ``"2h05m"``.

    >>> format_duration(3.24), format_duration(44.6), format_duration(80), format_duration(7500)
    ('3.2s', '45s', '1m20s', '2h05m')
    """
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


PACE_EPOCHS = 10
"""The recent epochs whose median time predicts the rest of a run."""


def epoch_pace(seconds: Sequence[float]) -> float:
    """Seconds per epoch for the time left: the median of the last :data:`PACE_EPOCHS` epochs.

    The median, so that one slow epoch (a paused process, a burst of load on the machine)
    does not multiply the estimate; it leaves out the occasional validation epoch's extra
    time too, which is a small part of a run.

    >>> epoch_pace([12.0, 11.0, 13.0, 1660.0])
    12.5
    """
    return statistics.median(list(seconds)[-PACE_EPOCHS:])


def time_left(seconds_per_epoch: float, epochs_left: int) -> str:
    """The end of an epoch line: ``", ~1m20s left"`` at ``seconds_per_epoch`` per remaining epoch; ``""`` at the end.

    The line is written whether or not a progress bar shows (in a pipe or a log file there is none).

    >>> time_left(3.2, 25), time_left(3.2, 0)
    (', ~1m20s left', '')
    """
    return f", ~{format_duration(seconds_per_epoch * epochs_left)} left" if epochs_left > 0 else ""


class _Label(logging.Filter):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = f"{self.label}: {record.getMessage()}", ()
        return True


@contextlib.contextmanager
def log_label(label: str) -> Iterator[None]:
    """While active, the training loop's log lines start with ``"<label>: "``.

    For commands that train several runs in turn, so that each epoch line names its run:

    >>> with log_label("LDW, no attention"):  # doctest: +SKIP
    ...     train(cfg, out)  # "LDW, no attention: epoch 3/8  loss ..."
    """
    logger, label_filter = logging.getLogger(TRAINING_LOGGER), _Label(label)
    logger.addFilter(label_filter)
    try:
        yield
    finally:
        logger.removeFilter(label_filter)
