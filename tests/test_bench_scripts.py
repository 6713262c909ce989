"""Every script in bench/ runs: its --help, and a tiny real run where one is cheap."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def run_script(script: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip


def test_the_bench_folder_is_covered():
    assert {s.name for s in SCRIPTS} >= {"pool.py", "seg_compare.py", "unet_variants.py", "paper_constraints.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help(script, tmp_path):
    result = run_script(script, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert list(tmp_path.iterdir()) == []


def test_paper_constraints_prints_the_haar_example(tmp_path):
    result = run_script(BENCH / "paper_constraints.py", "--steps", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # (1/2, 1/2) has energy 0.5 and L_wavelet 2.6716 whatever the minimiser does
    assert "sum of squares 0.50" in result.stdout and "L_wavelet = 2.6716" in result.stdout
    assert result.stdout.count("K=") == 4


def test_unet_variants_table(tmp_path):
    result = run_script(BENCH / "unet_variants.py", "--width", "4", "--size", "32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| maxpool") or line.startswith("| ldw")]
    assert len(rows) >= 6


@pytest.mark.slow
def test_seg_compare_trains_every_variant(tmp_path, data_dir):
    result = run_script(
        BENCH / "seg_compare.py", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "1", "--width", "4",
        "--crop", "32", "--eval-every", "1", "--seeds", "0", "--out", str(tmp_path / "runs"),
        "--json", str(tmp_path / "summary.json"), cwd=tmp_path, env={"LDWSEG_DATA": str(data_dir)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    variants = summary["variants"]
    assert [v["name"] for v in variants] == ["maxpool", "ldw", "ldw-efficient"]
    for v in variants:  # the summary's score is the run's own final-epoch val mIoU
        rows = (tmp_path / "runs" / v["name"] / "seed0" / "metrics.csv").read_text().splitlines()
        header, last = rows[0].split(","), rows[-1].split(",")
        assert v["scores"][0] == pytest.approx(float(last[header.index("val_miou")]))
    assert variants[1]["params"] > variants[0]["params"]  # the LDW convs see 4C channels after each pool
    assert len(list((tmp_path / "runs").glob("*/seed0/best.safetensors"))) == 3
    assert "| ldw-efficient |" in result.stdout


@pytest.mark.slow
def test_recon_photos_scores_a_recon_compare_folder_with_paired_tables(tmp_path, data_dir):
    env = {"LDWSEG_DATA": str(data_dir)}
    out = tmp_path / "cmp"
    compare = subprocess.run(
        [sys.executable, "-m", "ldwseg", "compare", "--task", "recon", "--seeds", "0,1", "--epochs", "1",
         "--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32",
         "--set", "train.max_steps_per_epoch=1", "--out", str(out),
         "--variant", "max-detail: model.down=maxpool-detail model.up=unpool-detail",
         "--variant", "ldw-detail: model.down=ldw-ll model.up=ldw-detail"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )  # fmt: skip
    assert compare.returncode == 0, compare.stderr
    shared = tmp_path / "shared"
    samples = shared / "voc2012_val_crops" / "samples"
    samples.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(samples / f"{i}_image.png")
    args = ["--compare", str(out), "--shared", str(shared), "--pair", "max-detail,ldw-detail"]
    result = run_script(BENCH / "recon_photos.py", *args, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    variants = {v["variant"]: v for v in json.loads(result.stdout)["variants"]}
    assert set(variants) == {"max-detail", "ldw-detail"}
    assert [r["seed"] for r in variants["ldw-detail"]["runs"]] == [0, 1]
    table = run_script(BENCH / "recon_photos.py", *args, cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    means = [r["mean_psnr"] for name in ("max-detail", "ldw-detail") for r in variants[name]["runs"]]
    diff = (means[2] - means[0] + means[3] - means[1]) / 2  # ldw-detail - max-detail, seed by seed
    rows = [line for line in table.stdout.splitlines() if line.startswith("| primary: max-detail -> ldw-detail |")]
    assert len(rows) == 2 and f"{diff:+.4f}" in rows[0], table.stdout  # the pair in the mean and the worst table


@pytest.mark.parametrize(
    "args", [["missing.safetensors"], ["--compare", "missing-folder"]], ids=["checkpoint", "compare"]
)
def test_recon_photos_reports_a_missing_path_in_one_line(tmp_path, args):
    samples = tmp_path / "shared" / "voc2012_val_crops" / "samples"
    samples.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(samples / "0_image.png")
    result = run_script(BENCH / "recon_photos.py", *args, "--shared", str(tmp_path / "shared"), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing" in lines[0], result.stderr


def test_evidence_only_runs_the_named_variants_and_their_pairs(tmp_path):
    result = run_script(BENCH / "evidence.py", "camvid", "--print", "--only", "max,spd,ldw-haar", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("$ ldwseg compare")]
    named = [[part.split(":")[0].strip("'") for part in line.split("--variant ")[1:]] for line in commands]
    assert named == [["max", "ldw-haar", "spd"], ["max", "ldw-haar"], ["spd", "ldw-haar"]]
    assert list(tmp_path.iterdir()) == []  # --print runs nothing
    wrong = run_script(BENCH / "evidence.py", "camvid", "--print", "--only", "max,nope", cwd=tmp_path)
    assert wrong.returncode != 0 and "nope" in wrong.stderr and "ldw-grouped-db2" in wrong.stderr


def test_archive_runs_keeps_the_small_files_of_finished_runs_only(tmp_path):
    source = tmp_path / "cmp"
    for run, finished in (("max/seed0", True), ("max/seed1", False)):
        folder = source / run
        folder.mkdir(parents=True)
        for name in ("metrics.csv", "config.yaml", "environment.json", "best.safetensors", "last.state.pt"):
            (folder / name).write_text(name)
        if finished:
            (folder / "result.json").write_text("{}")
    for name in ("summary.json", "summary-primary.json", "compare-primary.csv", "compare.png", "summary-x.txt"):
        (source / name).write_text("{}")
    result = run_script(BENCH / "archive_runs.py", str(source), str(tmp_path / "kept"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    kept = sorted(str(p.relative_to(tmp_path / "kept")) for p in (tmp_path / "kept").rglob("*") if p.is_file())
    assert kept == ["compare-primary.csv", "max/seed0/config.yaml", "max/seed0/environment.json",
                    "max/seed0/metrics.csv", "max/seed0/result.json", "summary-primary.json",
                    "summary.json"]  # fmt: skip


def test_learning_curve_reports_best_final_and_the_budget_rule(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # best 0.63 at 25; within 0.01 of it: 0.62 at 15 (not a multiple of 10) and 0.625 at 30
    scores = {5: 0.30, 10: 0.50, 15: 0.62, 20: 0.58, 25: 0.63, 30: 0.625}
    lines = ["epoch,train_loss,val_miou"] + [f"{e},1.0,{scores.get(e, '')}" for e in range(1, 31)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    result = run_script(BENCH / "learning_curve.py", str(run), "--out", str(tmp_path / "c.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {run} "))
    assert row == f"| {run} | 0.6300 (25) | 0.6250 (30) | 30 |"
    assert (tmp_path / "c.png").stat().st_size > 0
    wrong = run_script(BENCH / "learning_curve.py", str(run), "--metric", "dice", cwd=tmp_path)
    assert wrong.returncode != 0 and "val_miou" in wrong.stderr


def test_learning_curve_means_each_designs_seeds_at_the_epochs_all_validated(tmp_path):
    scores = {  # seed 1 of "b" alone validated epoch 15: no mean there, or it would be b's best
        ("a", 0): {10: 0.40, 20: 0.60}, ("a", 1): {10: 0.50, 20: 0.62},
        ("b", 0): {10: 0.30, 20: 0.64}, ("b", 1): {10: 0.36, 15: 0.9, 20: 0.61},
    }  # fmt: skip
    for (design, seed), values in scores.items():
        run = tmp_path / design / f"seed{seed}"
        run.mkdir(parents=True)
        rows = ["epoch,val_miou"] + [f"{e},{values.get(e, '')}" for e in range(1, 21)]
        (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    runs = [str(tmp_path / d / f"seed{s}") for d, s in scores]
    result = run_script(BENCH / "learning_curve.py", *runs, "--mean", "--out", str(tmp_path / "m.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| a ", "| b "))]
    a20, b20 = np.array([0.60, 0.62]), np.array([0.64, 0.61])
    assert rows == [
        f"| a | 2 | {a20.mean():.4f} ± {a20.std(ddof=1):.4f} | 20 | {a20.mean():.4f} (20) |",
        f"| b | 2 | {b20.mean():.4f} ± {b20.std(ddof=1):.4f} | 20 | {b20.mean():.4f} (20) |",
    ]
    assert (tmp_path / "m.png").stat().st_size > 0


def test_library_speed_times_the_shapes_given_and_counts_page_faults(tmp_path):
    result = run_script(BENCH / "library_speed.py", "--shape", "2,8,16,16", "--repeats", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| (")]
    assert len(rows) == 1 and rows[0].startswith("| (2, 8, 16, 16) |")  # the pools only, no reverse-pool row
    faults = rows[0].rstrip(" |").rsplit("|", 1)[1].split(" / ")
    assert len(faults) == 2 and all(f.strip().isdigit() for f in faults)
    bad = run_script(BENCH / "library_speed.py", "--shape", "8,128,63,64", cwd=tmp_path)
    assert bad.returncode == 2 and "H, W even" in bad.stderr


def test_converged_prints_the_preregistered_commands(tmp_path):
    result = run_script(BENCH / "converged.py", "--print", "--camvid", "CamVid", "--drive", "DRIVE", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    primary, drive, secondary, knob = (line for line in lines if not line.startswith("#"))
    extensions = [line for line in lines if line.startswith("# only if the 5 seeds decide neither gain nor no gain: ")]
    assert len(extensions) == 2 and all("--seeds 0,1,2,3,4,5,6,7" in line for line in extensions)
    assert "--out runs/converged-camvid" in extensions[0] and "--out runs/converged-drive" in extensions[1]
    assert primary.startswith("ldwseg compare --config configs/camvid_converged.yaml --data-root CamVid --epochs 200")
    assert "--seeds 0,1,2,3,4 --out runs/converged-camvid" in primary and "--pair max,default --margin 0.01" in primary
    assert "--seeds 0,1,2 --out runs/converged-camvid" in secondary and "--no-primary" in secondary
    assert "--pair spd-efficient,default --pair max,paper --pair fixed,default" in secondary
    assert "--data-root DRIVE --metric dice" in drive and "--out runs/converged-drive" in drive
    assert knob.startswith("ldwseg sweep") and "--constraint orthogonal --wavelet-weights 0,0.01,0.1,1,10" in knob
    assert list(tmp_path.iterdir()) == []
    wrong = run_script(BENCH / "converged.py", "tertiary", "--print", cwd=tmp_path)
    assert wrong.returncode == 2 and "unknown stage tertiary" in wrong.stderr


@pytest.mark.slow
def test_converged_report_checks_every_variant_and_writes_nothing(tmp_path):
    (tmp_path / "converged-camvid").mkdir()
    repo = BENCH.parent
    result = run_script(BENCH / "converged.py", "--report", "--out", str(tmp_path), cwd=repo)
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    # every variant's config was checked before the runs were looked for
    assert len(errors) == 3 and "is not a folder" in errors[1]
    assert all("no seed whose runs of every variant" in errors[i] for i in (0, 2))
    assert "(max, default, spd-efficient, paper, fixed)" in errors[2]
    assert [p.name for p in tmp_path.rglob("*")] == ["converged-camvid"]


def _converged_module():
    spec = importlib.util.spec_from_file_location("converged", BENCH / "converged.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("decided", "extended"), [("gain", False), ("equivalent", False), ("loss", True),
                                                   ("inconclusive", True)])  # fmt: skip
def test_converged_adds_seeds_5_to_7_only_when_5_seeds_do_not_decide(monkeypatch, tmp_path, decided, extended):
    converged = _converged_module()
    ran = []
    monkeypatch.setattr(converged, "_run", lambda name, command, report: ran.append((name, command)) or 0)
    monkeypatch.setattr(converged, "decision", lambda command: decided)
    assert converged.main(["primary", "drive", "--out", str(tmp_path)]) == 0
    seeds = [command[command.index("--seeds") + 1] for _, command in ran]
    if extended:
        assert [name for name, _ in ran] == ["primary", "primary, 8 seeds", "drive", "drive, 8 seeds"]
        assert seeds == ["0,1,2,3,4", "0,1,2,3,4,5,6,7"] * 2
        assert ran[1][1] == converged.extended(ran[0][1])  # the same command but for the seeds
    else:
        assert [name for name, _ in ran] == ["primary", "drive"] and seeds == ["0,1,2,3,4"] * 2
    ran.clear()
    assert converged.main(["secondary", "knob", "--out", str(tmp_path)]) == 0
    assert [name for name, _ in ran] == ["secondary", "knob"]  # exploratory: never extended


def test_converged_stops_when_the_5_seed_decision_cannot_be_read(monkeypatch, tmp_path, capsys):
    converged = _converged_module()
    ran = []
    monkeypatch.setattr(converged, "_run", lambda name, command, report: ran.append(name) or 0)
    monkeypatch.setattr(converged, "decision", lambda command: None)
    assert converged.main(["primary", "drive", "--out", str(tmp_path)]) == 1
    assert ran == ["primary"] and "the 5-seed decision could not be read" in capsys.readouterr().err


def test_converged_keeps_each_compare_stages_summary(monkeypatch, tmp_path):
    converged = _converged_module()
    folder = tmp_path / "converged-camvid"

    def run(name, command, report):  # as compare: each stage writes its summary into the shared folder
        folder.mkdir(exist_ok=True)
        (folder / "summary.json").write_text(name)
        (folder / "compare.csv").write_text(name)
        return 0

    monkeypatch.setattr(converged, "_run", run)
    monkeypatch.setattr(converged, "decision", lambda command: "gain")
    assert converged.main(["primary", "secondary", "--out", str(tmp_path)]) == 0
    assert (folder / "summary-primary.json").read_text() == "primary"
    assert (folder / "summary-secondary.json").read_text() == "secondary"
    assert (folder / "compare-primary.csv").read_text() == "primary"


@pytest.mark.slow
def test_converged_reads_the_5_seed_decision_of_kept_runs(tmp_path):
    converged = _converged_module()
    command = converged.stages(tmp_path, tmp_path, tmp_path)["primary"]
    out = tmp_path / "converged-camvid"
    cost = {"params": 10, "flops": 20, "step_ms": 1.0, "peak_mem_mb": 2.0}

    def finish(variant, seed, final):
        run = out / variant / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text(f"epoch,val_miou\n1,{final - 0.05}\n2,{final}\n")
        (run / "result.json").write_text("{}")
        (out / variant / "cost.json").write_text(json.dumps(cost))

    gains = [0.031, 0.025, 0.028, 0.034, 0.022]  # the default 2.2-3.4 points above max pooling: t = 11.7
    for seed in range(4):
        finish("max", seed, 0.60 + seed / 100)
        finish("default", seed, 0.60 + seed / 100 + gains[seed])
    assert converged.decision(command) is None  # seed 4 unfinished: no decision yet
    finish("max", 4, 0.64)
    finish("default", 4, 0.64 + gains[4])
    assert converged.decision(command) == "gain"
    for seed in range(5):  # the same runs, differences within +-0.003: inside the margin of 0.01
        (out / "default" / f"seed{seed}" / "metrics.csv").write_text(
            f"epoch,val_miou\n2,{0.60 + seed / 100 + (-1) ** seed * 0.003}\n"
        )
    assert converged.decision(command) == "equivalent"


def test_converged_keeps_finished_runs_while_a_stage_runs_and_after(monkeypatch, tmp_path):
    converged = _converged_module()
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    seen_while_running = []

    def run(name, command, report):  # a compare that finishes one run, then trains on for a while
        folder = runs / "converged-camvid"
        for seed, finished in ((0, True), (1, False)):
            run_folder = folder / "max" / f"seed{seed}"
            run_folder.mkdir(parents=True)
            for file in ("metrics.csv", "config.yaml", "last.safetensors"):
                (run_folder / file).write_text(file)
            if finished:
                (run_folder / "result.json").write_text("{}")
        deadline = time.monotonic() + 30
        while not (kept / "converged-camvid" / "max" / "seed0" / "metrics.csv").is_file():
            assert time.monotonic() < deadline, "nothing kept while the stage ran"
            time.sleep(0.02)
        seen_while_running.append(True)
        (folder / "summary.json").write_text("{}")
        return 0

    monkeypatch.setattr(converged, "KEEP_EVERY", 0.05)
    monkeypatch.setattr(converged, "_run", run)
    monkeypatch.setattr(converged, "decision", lambda command: "gain")
    assert converged.main(["primary", "--out", str(runs), "--keep", str(kept)]) == 0
    assert seen_while_running == [True]
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files == ["converged-camvid/max/seed0/config.yaml", "converged-camvid/max/seed0/metrics.csv",
                     "converged-camvid/max/seed0/result.json", "converged-camvid/summary-primary.json",
                     "converged-camvid/summary.json"]  # fmt: skip
