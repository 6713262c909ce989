"""Per-epoch metrics to CSV and TensorBoard (rank 0 only)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

__all__ = ["MetricLog"]

log = logging.getLogger(__name__)


class MetricLog:
    """One CSV row per epoch in ``out/metrics.csv``, mirrored to ``out/tensorboard``.

    A fresh run (``start_epoch == 0``) starts a new file; a resumed run keeps the rows
    of the epochs before ``start_epoch`` and drops any later ones.
    """

    def __init__(self, out: Path, *, enabled: bool = True, start_epoch: int = 0) -> None:
        self.path = out / "metrics.csv"
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        rows: list[dict[str, str]] = []
        if start_epoch > 0 and self.path.exists():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < start_epoch]
        self.fields: list[str] | None = list(rows[0]) if rows else None
        if rows:
            self._rewrite(rows)
        else:
            self.path.unlink(missing_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start_epoch or None)
        except ImportError:
            log.warning("tensorboard is not installed; metrics go to %s only", self.path)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore", restval="")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, epoch: int, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"epoch": epoch, **row}
        if self.fields is None:
            self.fields = list(row)
            self._rewrite([row])
        elif any(key not in self.fields for key in row):
            # a column that earlier rows lack (val_* when eval_every > 1): the header grows, earlier cells stay empty
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.fields += [key for key in row if key not in self.fields]
            self._rewrite([*rows, row])
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore", restval="").writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
