"""A normal (non-editable) install works from any folder and writes nothing into site-packages."""

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from ldwseg import __version__

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # builds a wheel and trains in a fresh environment


def _setuptools_builds_wheels() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (77, 0)  # pyproject.toml's build requirement (bdist_wheel is built in from 70.1)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_wheel_install_trains_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    # without a recent setuptools here, pip builds in an isolated environment of its own
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO), *isolation],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob(f"ldwseg-{__version__}-*.whl")  # pyproject.toml reads the version from ldwseg
    with zipfile.ZipFile(wheel) as built:
        names = built.namelist()
    assert f"ldwseg-{__version__}.dist-info/licenses/LICENSE" in names, names
    assert not any(n.startswith(("configs/", "tests/", "bench/")) for n in names), names

    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # the dependencies (torch, ...) come from this test's environment; ldwseg only from the wheel
    (site / "_ldwseg_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LDWSEG_DATA")}
    env["OMP_NUM_THREADS"] = "1"
    where = subprocess.check_output(
        [str(python), "-c", "import ldwseg; print(ldwseg.__file__)"], cwd=work, env=env, text=True
    )
    assert Path(where.strip()).is_relative_to(site), where

    before = _files(site)
    train = subprocess.run(
        [str(python), "-m", "ldwseg", "train", "--epochs", "1", "--out", "run", "--set", "model.base_width=4",
         "--set", "model.depth=2", "--set", "data.crop_size=32", "--set", "train.max_steps_per_epoch=2"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert "best val mIoU" in train.stdout
    assert (work / "run" / "best.safetensors").is_file()
    assert (work / "data" / "synthetic").is_dir()  # the embedded data set goes under the working folder
    assert _files(site) == before
