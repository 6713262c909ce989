"""ldwseg.analysis.compare: variants x seeds through the training of ``ldwseg train``."""

import json
import logging
import math
import os
import re
import signal
from pathlib import Path

import pytest
from scipy import stats

from ldwseg.analysis.compare import Variant, parse_variant, run_compare
from ldwseg.analysis.compare_summary import summarise
from ldwseg.analysis.compare_table import format_summary
from ldwseg.errors import ConfigError, Interrupted
from ldwseg.tasks import load_config, train

TINY = {"model.base_width": 4, "model.depth": 2, "data.crop_size": 32, "train.epochs": 1, "train.batch_size": 4,
        "train.max_steps_per_epoch": 3}  # fmt: skip
VARIANTS = [Variant("max", ("model.down=maxpool", "model.up=deconv")), Variant("ldw", ("model.down=ldw",))]


def test_parse_variant():
    assert parse_variant("ldw-db2: model.down=ldw  model.wavelet=db2") == Variant(
        "ldw-db2", ("model.down=ldw", "model.wavelet=db2")
    )
    assert parse_variant("base:") == Variant("base", ())


@pytest.mark.parametrize(
    "text, message",
    [
        ("model.down=ldw", "must look like 'NAME: section.field=value"),
        ("a b: model.down=ldw", "must look like"),
        ("x: train.seed=3", "the seeds come from --seeds"),
        ("x: train.task=recon", "every variant of a compare has the base's task"),
    ],
)
def test_parse_variant_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_variant(text)


def _rows(scores: dict[str, list[float]]) -> list[dict]:
    cost = {"params": 10, "flops": 20, "step_ms": 1.0, "peak_mem_mb": 2.0}
    return [
        {"variant": name, "seed": seed, "score": s, "best_score": s + 0.01, **cost}
        for name, values in scores.items()
        for seed, s in enumerate(values)
    ]


def test_summary_statistics_match_scipy():
    scores = {"a": [0.40, 0.42, 0.41, 0.45], "b": [0.43, 0.42, 0.47, 0.46]}
    summary = summarise(_rows(scores), metric="miou", variants=["a", "b"], seeds=[0, 1, 2, 3])
    a, b = summary["variants"]
    assert summary["metric"] == "miou" and a["name"] == "a"
    assert b["scores"] == scores["b"] and b["best_scores"] == pytest.approx([s + 0.01 for s in scores["b"]])
    assert b["mean"] == pytest.approx(sum(scores["b"]) / 4)
    assert b["std"] == pytest.approx(stats.tstd(scores["b"]))
    assert b["diff_mean"] == pytest.approx(0.025)
    assert b["t"] == pytest.approx(stats.ttest_rel(scores["b"], scores["a"]).statistic)
    assert b["wins"] == 3  # seed 1 ties
    assert a["diff_mean"] == 0 and a["t"] is None and a["wins"] == 0
    json.dumps(summary, allow_nan=False)  # strict JSON
    assert "| b |" in format_summary(summary) and "3/4" in format_summary(summary)


def test_pairs_give_the_interval_tests_and_holm():
    scores = {
        "max": [0.50, 0.52, 0.49, 0.51, 0.50],
        "ldw": [0.53, 0.55, 0.50, 0.54, 0.53],
        "spd": [0.505, 0.52, 0.495, 0.51, 0.505],
        "haar": [0.49, 0.50, 0.50, 0.52, 0.49],
    }
    seeds = list(range(5))
    pairs = [("max", "ldw"), ("spd", "ldw"), ("max", "spd"), ("max", "haar")]
    summary = summarise(_rows(scores), metric="miou", variants=list(scores), seeds=seeds, pairs=pairs, margin=0.01)
    primary, *secondary = summary["pairs"]
    assert primary["primary"] and not any(p["primary"] for p in secondary)
    diffs = [a - b for a, b in zip(scores["ldw"], scores["max"])]
    reference = stats.ttest_rel(scores["ldw"], scores["max"], alternative="greater")
    assert primary["t"] == pytest.approx(reference.statistic) and primary["p"] == pytest.approx(reference.pvalue)
    low, high = stats.ttest_rel(scores["ldw"], scores["max"]).confidence_interval(0.95)
    assert primary["ci95"] == pytest.approx([low, high])
    assert primary["diff_mean"] == pytest.approx(sum(diffs) / 5) and primary["decision"] == "gain"
    # Holm over the three secondary pairs, test by test, against statsmodels' formula written out
    for key in ("p", "p_loss", "p_equivalence"):
        raw = [p[key] for p in secondary]
        order = sorted(range(3), key=lambda i: raw[i])
        expected, running = [0.0] * 3, 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (3 - rank) * raw[i]))
            expected[i] = running
        assert [p[f"{key}_holm"] for p in secondary] == pytest.approx(expected)
        assert primary[f"{key}_holm"] == primary[key]  # the primary pair is not corrected
    # max -> spd: within +-0.01 by TOST (the 90% interval inside the margin)
    spd = secondary[1]
    tost = max(
        stats.ttest_1samp([a - b for a, b in zip(scores["spd"], scores["max"])], -0.01, alternative="greater").pvalue,
        stats.ttest_1samp([a - b for a, b in zip(scores["spd"], scores["max"])], 0.01, alternative="less").pvalue,
    )
    assert spd["p_equivalence"] == pytest.approx(tost) and spd["decision"] == "equivalent"
    json.dumps(summary, allow_nan=False)
    table = format_summary(summary, classes=[])
    assert "primary: max -> ldw" in table and "gain" in table and "equivalent" in table


def test_lower_is_better_metrics_count_a_drop_as_the_win():
    scores = {"a": [0.20, 0.22, 0.21], "b": [0.15, 0.18, 0.16]}
    summary = summarise(_rows(scores), metric="l1", variants=["a", "b"], seeds=[0, 1, 2])
    assert summary["higher_is_better"] is False
    b = summary["variants"][1]
    assert b["wins"] == 3 and b["best_scores"] == pytest.approx([s + 0.01 for s in scores["b"]])
    pair = summary["pairs"][0]
    assert pair["decision"] == "gain" and pair["p"] < 0.05 and pair["diff_mean"] < 0


def test_equal_differences_give_no_t():
    """Every seed moved by the same amount: the spread is 0 up to rounding, and t is undefined, not 5e15."""
    scores = {"a": [0.1, 0.2, 0.3], "b": [0.2, 0.3, 0.4]}
    summary = summarise(_rows(scores), metric="miou", variants=["a", "b"], seeds=[0, 1, 2])
    assert summary["variants"][1]["t"] is None and summary["pairs"][0]["t"] is None
    assert summary["pairs"][0]["decision"] == "inconclusive" and summary["pairs"][0]["wins"] == 3


def test_per_class_means_skip_undefined_classes():
    rows = _rows({"a": [0.4, 0.5]})
    rows[0].update(iou_pole=0.1, iou_sky=0.9)
    rows[1].update(iou_pole=float("nan"), iou_sky=0.8)
    summary = summarise(rows, metric="miou", variants=["a"], seeds=[0, 1])
    assert summary["variants"][0]["per_class"] == pytest.approx({"pole": 0.1, "sky": 0.85})
    assert "| a | 0.1000 |" in format_summary(summary, classes=["pole"])


def test_summary_of_one_seed_has_no_t():
    summary = summarise(_rows({"a": [0.4], "b": [0.5]}), metric="miou", variants=["a", "b"], seeds=[0])
    assert summary["variants"][1]["std"] == 0 and summary["variants"][1]["t"] is None


def test_bad_arguments(tmp_path, private_data):
    base = load_config(None, TINY)
    with pytest.raises(ConfigError, match="variant names must differ"):
        run_compare(base, [VARIANTS[0], VARIANTS[0]], [0], tmp_path)
    with pytest.raises(ConfigError, match="distinct seeds"):
        run_compare(base, VARIANTS, [1, 1], tmp_path)
    with pytest.raises(ConfigError, match="variant 'bad'"):
        run_compare(base, [Variant("bad", ("model.down=nope",))], [0], tmp_path)
    assert not any(tmp_path.iterdir())  # nothing trained before every config was checked


COST = {"params": 10, "flops": 20, "step_ms": 1.0, "peak_mem_mb": 2.0}


def _finished_run(out: Path, variant: str, seed: int, mious: list[float]) -> None:
    """A run folder as a finished compare run leaves it: metrics.csv (val every epoch), result.json, cost.json."""
    run = out / variant / f"seed{seed}"
    run.mkdir(parents=True)
    rows = [f"{epoch},{m},{m / 2}" for epoch, m in enumerate(mious)]
    (run / "metrics.csv").write_text("epoch,val_miou,val_iou_pole\n" + "\n".join(rows) + "\n")
    (run / "result.json").write_text("{}")
    (out / variant / "cost.json").write_text(json.dumps(COST))


def test_report_summarises_the_complete_seeds_and_writes_nothing(tmp_path, private_data):
    base = load_config(None, TINY)
    finals = {("max", 0): 0.50, ("ldw", 0): 0.53, ("max", 1): 0.52, ("ldw", 1): 0.53, ("max", 2): 0.40}
    for (variant, seed), final in finals.items():
        _finished_run(tmp_path, variant, seed, [final - 0.1, final + 0.02, final])
    (tmp_path / "ldw" / "seed2").mkdir()  # ldw seed 2 still training: seed 2 is left out
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    summary = run_compare(base, VARIANTS, [0, 1, 2], tmp_path, margin=0.01, train=False)
    assert summary["seeds"] == [0, 1] and summary["planned_seeds"] == [0, 1, 2]
    max_, ldw = summary["variants"]
    assert max_["scores"] == [0.50, 0.52] and ldw["scores"] == [0.53, 0.53]  # the final epoch, not the best
    assert ldw["best_scores"] == pytest.approx([0.55, 0.55]) and ldw["per_class"]["pole"] == pytest.approx(0.265)
    diffs = [0.03, 0.01]
    pair = summary["pairs"][0]
    assert pair["diff_mean"] == pytest.approx(0.02) and pair["n"] == 2
    assert pair["t"] == pytest.approx(stats.ttest_1samp(diffs, 0).statistic)
    text = format_summary(summary)
    assert text.startswith("Interim: 2 of 3 seeds have finished runs of every variant (seeds 0, 1).")
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before  # nothing written

    summary["planned_seeds"] = [0, 1]
    assert not format_summary(summary).startswith("Interim")


def test_report_refuses_no_complete_seed_and_other_settings(tmp_path, private_data):
    base = load_config(None, TINY)
    _finished_run(tmp_path, "max", 0, [0.5])
    with pytest.raises(ConfigError, match="no seed whose runs of every variant \\(max, ldw\\) have finished"):
        run_compare(base, VARIANTS, [0], tmp_path, train=False)
    _finished_run(tmp_path, "ldw", 0, [0.5])
    load_config(None, {**TINY, "optim.lr": 0.1}).save(tmp_path / "ldw" / "seed0" / "config.yaml")
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        run_compare(base, VARIANTS, [0], tmp_path, train=False)


def _stop_after_first_batch(iterable, desc):
    for i, item in enumerate(iterable):
        yield item
        if i == 0 and desc.startswith("ldw seed 1"):
            os.kill(os.getpid(), signal.SIGINT)  # the training saves after this step and stops


@pytest.mark.slow
def test_compare_scores_equal_separate_trainings_and_resume(tmp_path, private_data, monkeypatch, caplog):
    base = load_config(None, TINY)
    out = tmp_path / "cmp"
    caplog.set_level(logging.INFO, logger="ldwseg.analysis.compare")
    with pytest.raises(Interrupted, match="run the same command again: it keeps the finished runs") as stopped:
        run_compare(base, VARIANTS, [0, 1], out, progress=_stop_after_first_batch)
    assert "--resume" not in str(stopped.value) and stopped.value.exit_code == 130
    assert (out / "ldw" / "seed1" / "last.state.pt").is_file() and not (out / "ldw" / "seed1" / "result.json").exists()
    lines = [r.getMessage() for r in caplog.records if " to train" in r.getMessage()]
    assert lines[0] == "max seed 0: run 1 of 4 to train"  # no pace before a run has trained
    assert re.fullmatch(r"ldw seed 0: run 2 of 4 to train; the runs after it: ~\S+ at \S+ an epoch", lines[1])
    assert lines[3].startswith("ldw seed 1: run 4 of 4 to train") and len(lines) == 4
    caplog.clear()
    files = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    interim = run_compare(base, VARIANTS, [0, 1], out, train=False)  # seed 1's ldw run is unfinished
    assert interim["seeds"] == [0] and sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == files

    summary = run_compare(base, VARIANTS, [0, 1], out)  # skips the three finished runs, resumes the fourth
    lines = [r.getMessage() for r in caplog.records if " to train" in r.getMessage()]
    assert lines == ["ldw seed 1: run 1 of 1 to train"]
    assert [v["name"] for v in summary["variants"]] == ["max", "ldw"]
    for v in summary["variants"]:
        assert set(v) >= {"params", "flops", "step_ms", "peak_mem_mb", "scores", "best_scores", "mean", "std",
                          "diff_mean", "diff_std", "wins", "t"}  # fmt: skip
        assert v["params"] > 0 and v["flops"] > 0 and v["step_ms"] > 0 and v["peak_mem_mb"] > 0
    assert summary["variants"][1]["params"] > summary["variants"][0]["params"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert [v["scores"][0] for v in interim["variants"]] == [v["scores"][0] for v in summary["variants"]]
    assert run_compare(base, VARIANTS, [0, 1], out, train=False)["variants"] == summary["variants"]
    assert (out / "compare.png").stat().st_size > 0 and len((out / "compare.csv").read_text().splitlines()) == 5

    for variant, overrides in (
        ("max", {"model.down": "maxpool", "model.up": "deconv"}),
        ("ldw", {"model.down": "ldw"}),
    ):
        for i, seed in enumerate([0, 1]):
            alone = train(load_config(None, {**TINY, **overrides, "train.seed": seed}), tmp_path / f"{variant}{seed}")
            score = next(v for v in summary["variants"] if v["name"] == variant)["scores"][i]
            assert score == alone.last_score and math.isfinite(score)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("ldwseg.analysis.runs.train", no_training)
    assert run_compare(base, VARIANTS, [0, 1], out) == summary


@pytest.mark.slow
def test_changed_settings_are_refused(tmp_path, private_data):
    base = load_config(None, TINY)
    run_compare(base, VARIANTS[:1], [0], tmp_path)
    changed = load_config(None, {**TINY, "optim.lr": 0.1})
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        run_compare(changed, VARIANTS[:1], [0], tmp_path)
