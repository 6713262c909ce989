"""metrics.csv: one row per epoch, numbered from 1 as the console numbers them, columns that appear later included."""

import csv
import logging

import pytest

from ldwseg.engine.logs import (
    PACE_EPOCHS,
    TRAINING_LOGGER,
    MetricLog,
    epoch_pace,
    format_duration,
    log_label,
    time_left,
)


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
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
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
    assert [(r["epoch"], r["train_loss"]) for r in rows] == [("1", "0.0"), ("2", "1.0"), ("3", "9.0")]


def test_a_run_resumed_at_its_first_epoch_keeps_no_row(tmp_path):
    log = MetricLog(tmp_path)
    log.write(0, {"train_loss": 1.0})
    log.close()
    MetricLog(tmp_path, start_epoch=0).close()  # a fresh start
    assert not (tmp_path / "metrics.csv").exists()
    log = MetricLog(tmp_path)
    log.write(0, {"train_loss": 1.0})
    log.write(1, {"train_loss": 2.0})
    log.close()
    resumed = MetricLog(tmp_path, start_epoch=1)  # the 0-based epoch 1 (console: epoch 2) is done again
    resumed.close()
    assert [r["epoch"] for r in _read(tmp_path / "metrics.csv")] == ["1"]


def test_tensorboard_steps_are_the_epoch_numbers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricLog(tmp_path)
    for epoch in range(2):
        log.write(epoch, {"train_loss": float(epoch)})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2]


def test_time_left_and_durations():
    assert time_left(3.2, 25) == ", ~1m20s left"
    assert time_left(3.2, 0) == ""
    assert [format_duration(s) for s in (0.04, 9.94, 9.96, 59.4, 3599, 3600, 7500)] == [
        "0.0s",
        "9.9s",
        "10s",
        "59s",
        "59m59s",
        "1h00m",
        "2h05m",
    ]


def test_log_label_prefixes_the_training_loop_lines_only_while_active(caplog):
    loop = logging.getLogger(TRAINING_LOGGER)
    with caplog.at_level(logging.INFO, logger="ldwseg"):
        with log_label("LDW, no attention"):
            loop.info("epoch %d/%d  loss %.1f", 3, 8, 0.5)
            logging.getLogger("ldwseg.other").info("untouched")
        loop.info("epoch %d/%d", 4, 8)
    assert [r.getMessage() for r in caplog.records] == [
        "LDW, no attention: epoch 3/8  loss 0.5",
        "untouched",
        "epoch 4/8",
    ]


def test_the_pace_is_the_median_of_recent_epochs_and_ignores_a_paused_one():
    steady = [30.0 + (i % 3) for i in range(40)]  # 30, 31, 32, ...
    paused = steady[:-1] + [1660.0]  # the process stopped for 27 minutes in the last epoch
    assert epoch_pace(steady) == 31.0
    assert epoch_pace(paused) == 31.0
    assert epoch_pace([1660.0]) == 1660.0  # the first epoch is all there is to go by
    faster = [60.0] * 20 + [30.0] * PACE_EPOCHS  # the machine got quieter: only recent epochs count
    assert epoch_pace(faster) == 30.0
