"""bench/gpu_check.py: its reduced CPU dry run passes every check, a failed check fails the script, and
without CUDA it says so in one line."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def load_script(monkeypatch):
    """A fresh copy of the script as a module (registered while the test runs: its dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)
    spec.loader.exec_module(module)
    return module


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)  # fmt: skip


def test_the_quick_cpu_dry_run_passes_every_check_and_prints_one_table(tmp_path):
    result = run("--cpu-dry-run", "--quick", "--compile-backend", "eager", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ldwseg gpu_check on the CPU (dry run)") and lines[-1] == "all checks passed"
    table = lines[1:-1]
    assert table[0].split() == ["check", "value", "limit", "status"]
    checks = [line.split("  ")[0] for line in table[2:]]
    groups = {check.split()[0] for check in checks}
    assert groups == {"ops", "autocast", "unet", "attention", "loop", "train", "evaluate", "speed", "compile"}
    assert sum(check.startswith("ops ") for check in checks) == 12  # 4 ops x K = 2, 4, 8
    assert sum(line.endswith("PASS") for line in table) >= 30 and not any(line.endswith("FAIL") for line in table)
    assert list(tmp_path.iterdir()) == []  # the runs and the synthetic data went to a temporary folder


def test_a_failed_check_is_a_fail_row_and_exit_status_1(capsys, monkeypatch):
    gpu_check = load_script(monkeypatch)
    gpu_check.OPS_LIMIT = 0.0  # float32 against float64 is never exact
    before = os.environ.get("LDWSEG_DATA")
    code = gpu_check.main(["--cpu-dry-run", "--quick", "--only", "ops,autocast"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[-1] == "12 failed"
    assert all(line.endswith("FAIL") for line in out.splitlines() if line.startswith("ops "))
    assert "autocast bf16 round trip PSNR dB" in out
    assert os.environ.get("LDWSEG_DATA") == before  # its temporary data folder is not left behind


def test_a_check_that_breaks_is_reported_and_the_others_still_run(capsys, monkeypatch):
    gpu_check = load_script(monkeypatch)

    def broken(setup, report):
        raise RuntimeError("no kernel image is available\nsecond line")

    gpu_check.CHECKS["ops"] = broken
    assert gpu_check.main(["--cpu-dry-run", "--quick", "--only", "ops,autocast"]) == 1
    out = capsys.readouterr().out
    assert "error: RuntimeError: no kernel image is available" in out and "second line" not in out
    assert "autocast bf16 round trip" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script runs its checks")
def test_without_cuda_it_prints_one_line_and_exits_77(tmp_path):
    result = run(cwd=tmp_path)
    assert result.returncode == 77
    assert result.stdout.strip() == (
        "gpu_check: no CUDA device here, nothing checked (run it on a GPU machine, or --cpu-dry-run)"
    )


def test_an_unknown_check_is_refused(tmp_path):
    result = run("--cpu-dry-run", "--only", "ops,nope", cwd=tmp_path)
    assert result.returncode == 2 and "unknown check 'nope'" in result.stderr


def test_exact_checks_run_without_tf32_and_rows_are_echoed_as_they_come(capsys, monkeypatch):
    gpu_check = load_script(monkeypatch)
    seen = {}

    def record(name):
        def check(setup, report):
            seen[name] = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            report.add(f"{name} probe", "1", ok=True)

        return check

    for name in ("ops", "speed"):
        gpu_check.CHECKS[name] = record(name)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert gpu_check.main(["--cpu-dry-run", "--quick", "--only", "ops,speed"]) == 0
    assert seen == {"ops": (False, False), "speed": (True, torch.backends.cuda.matmul.allow_tf32)}
    assert torch.backends.cudnn.allow_tf32  # restored after the check
    err = capsys.readouterr().err.splitlines()
    assert err == ["gpu_check: PASS ops probe: 1", "gpu_check: PASS speed probe: 1"]


def test_compile_does_not_start_without_the_time_it_needs(capsys, monkeypatch):
    gpu_check = load_script(monkeypatch)
    started = []
    gpu_check.CHECKS["compile"] = lambda setup, report: started.append(True)
    gpu_check.MIN_SECONDS["compile"] = 50.0
    assert gpu_check.main(["--cpu-dry-run", "--only", "compile", "--budget", "40"]) == 1
    assert not started and "compile  not run: 40 s of the 40 s budget left" in capsys.readouterr().out
