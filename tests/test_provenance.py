"""ldwseg.provenance.environment: the versions, source commit and device of a run, checked against the real ones."""

import platform
import shutil
import subprocess
from pathlib import Path

import albumentations
import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
import torchvision

import ldwseg
from ldwseg import provenance
from ldwseg.provenance import environment

REPO = Path(__file__).resolve().parents[1]
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="needs git")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def package_in(folder: Path) -> Path:
    """A copy of the ldwseg package's ``__init__.py`` at ``folder/ldwseg``."""
    package = folder / "ldwseg"
    package.mkdir(parents=True)
    shutil.copy(Path(ldwseg.__file__), package / "__init__.py")
    return package


def test_versions_are_the_running_ones():
    env = environment()
    assert env["ldwseg"] == ldwseg.__version__
    assert env["python"] == platform.python_version()
    assert env["torch"] == torch.__version__
    assert env["torchvision"] == torchvision.__version__.split("+")[0]
    assert env["segmentation_models_pytorch"] == smp.__version__
    assert env["albumentations"] == albumentations.__version__
    assert env["numpy"] == np.__version__
    assert "device" not in env
    assert all(v is None or isinstance(v, str) for v in env.values())


def test_device_description():
    assert environment("cpu")["device"] == f"cpu ({torch.get_num_threads()} threads)"
    assert environment(torch.device("cpu"))["device"].startswith("cpu (")
    if torch.cuda.is_available():
        assert environment("cuda:0")["device"] == f"cuda:0 ({torch.cuda.get_device_name(0)})"


@needs_git
def test_commit_of_this_checkout():
    try:
        head = git(REPO, "rev-parse", "HEAD")
        tracked = git(REPO, "ls-files", "ldwseg/__init__.py")
    except subprocess.CalledProcessError:
        pytest.skip("ldwseg does not run from a git checkout here")
    if Path(ldwseg.__file__).resolve().parent != REPO / "ldwseg" or not tracked:
        pytest.skip("the ldwseg imported is not this checkout's")
    env = environment()
    assert env["commit"] == head
    dirty = git(REPO, "status", "--porcelain", "--untracked-files=no") != ""
    assert env["dirty"] == str(dirty).lower()


def test_no_commit_outside_a_git_tree(tmp_path):
    package = package_in(tmp_path / "site-packages")
    env = environment(source=package)
    assert env["commit"] is None and env["dirty"] is None
    assert env["ldwseg"] == ldwseg.__version__


@needs_git
def test_no_commit_for_a_package_the_repository_does_not_track(tmp_path):
    project = tmp_path / "project"  # an installed copy in a virtual environment inside some other checkout
    project.mkdir()
    git(project, "init", "-q")
    (project / "README").write_text("another project\n")
    git(project, "add", "README")
    git(project, "commit", "-q", "-m", "first")
    package = package_in(project / ".venv" / "site-packages")
    assert environment(source=package)["commit"] is None


@needs_git
def test_commit_and_dirty_flag_of_a_checkout(tmp_path):
    heads = {}
    for name in ("clean", "edited"):
        repo = tmp_path / name
        package_in(repo)
        git(repo, "init", "-q")
        git(repo, "add", "ldwseg/__init__.py")
        git(repo, "commit", "-q", "-m", "first")
        heads[name] = git(repo, "rev-parse", "HEAD")
    (tmp_path / "edited" / "ldwseg" / "__init__.py").write_text("# changed\n")
    (tmp_path / "clean" / "untracked.txt").write_text("not part of the source\n")
    clean = environment(source=tmp_path / "clean" / "ldwseg")
    edited = environment(source=tmp_path / "edited" / "ldwseg")
    assert (clean["commit"], clean["dirty"]) == (heads["clean"], "false")
    assert (edited["commit"], edited["dirty"]) == (heads["edited"], "true")


def test_git_runs_once_per_source(tmp_path, monkeypatch):
    package = package_in(tmp_path / "copy")
    first = environment(source=package)

    def no_more_git(*args, **kwargs):
        raise AssertionError("git ran again")

    monkeypatch.setattr(provenance.subprocess, "run", no_more_git)
    assert environment(source=package) == first
