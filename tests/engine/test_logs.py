"""metrics.csv: one row per epoch, columns that appear later included."""

import csv

from ldwseg.engine.logs import MetricLog


def _read(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_validation_columns_that_start_later_are_kept(tmp_path):
    log = MetricLog(tmp_path)
    log.write(0, {"train_loss": 1.0, "seconds": 2.0})  # eval_every=2: no validation yet
    log.write(1, {"train_loss": 0.5, "seconds": 2.0, "val_miou": 0.25})
    log.write(2, {"train_loss": 0.4, "seconds": 2.0})
    log.close()
    rows = _read(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [r["val_miou"] for r in rows] == ["", "0.25", ""]
    assert [r["train_loss"] for r in rows] == ["1.0", "0.5", "0.4"]


def test_resumed_log_keeps_earlier_epochs_only(tmp_path):
    log = MetricLog(tmp_path)
    for epoch in range(3):
        log.write(epoch, {"train_loss": float(epoch), "val_miou": 0.1 * epoch})
    log.close()
    resumed = MetricLog(tmp_path, start_epoch=2)
    resumed.write(2, {"train_loss": 9.0, "val_miou": 0.9})
    resumed.close()
    rows = _read(tmp_path / "metrics.csv")
    assert [(r["epoch"], r["train_loss"]) for r in rows] == [("0", "0.0"), ("1", "1.0"), ("2", "9.0")]
