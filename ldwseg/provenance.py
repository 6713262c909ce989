"""Where a result came from: the versions, the source commit and the device a run was made with.

:func:`environment` answers in plain strings, ready for a run's ``config.yaml`` or a
result's JSON. The git commit is read once per process (a few ms of ``git``); the rest
comes from package metadata, so nothing heavy is imported.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["environment"]

PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder of the ldwseg package whose source :func:`environment` describes by default."""

GIT_TIMEOUT_S = 5.0
"""How long one ``git`` call may take before the commit counts as unknown."""

# distributions whose versions change results (the key is the import name)
_DISTRIBUTIONS = {
    "torchvision": "torchvision",
    "segmentation_models_pytorch": "segmentation-models-pytorch",
    "albumentations": "albumentations",
    "numpy": "numpy",
}


def environment(device: torch.device | str | None = None, *, source: str | Path | None = None) -> dict[str, str | None]:
    """The versions, source commit and device that a run's numbers depend on.

    Args:
        device: the device the run uses; adds ``"device"``: ``"cpu (N threads)"``, or
            ``"cuda:I (<device name>)"`` for a CUDA device. ``None`` leaves it out.
        source: the folder of the ldwseg package to describe (default: the one running).

    Returns:
        ``"ldwseg"`` (its version), ``"commit"`` (the git commit of the source checkout
        the package runs from; ``None`` for an installed package, a package outside a git
        tree or not tracked by it, or without git), ``"dirty"`` (``"true"`` when tracked
        files differ from that commit, else ``"false"``; ``None`` without a commit),
        ``"python"``, ``"torch"`` (``torch.__version__``, with its CUDA/CPU tag),
        ``"torchvision"``, ``"segmentation_models_pytorch"``, ``"albumentations"`` and
        ``"numpy"`` (``None`` for one that is not installed).

    Example:
        >>> env = environment("cpu")
        >>> env["torch"] == torch.__version__, env["device"].startswith("cpu (")
        (True, True)
    """
    from . import __version__

    commit, dirty = _git_state(Path(source).resolve() if source is not None else PACKAGE_DIR)
    env: dict[str, str | None] = {
        "ldwseg": __version__,
        "commit": commit,
        "dirty": dirty,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    env.update({key: _version(dist) for key, dist in _DISTRIBUTIONS.items()})
    if device is not None:
        env["device"] = _describe(torch.device(device))
    return env


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _describe(device: torch.device) -> str:
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


@functools.cache
def _git_state(package_dir: Path) -> tuple[str | None, str | None]:
    """``(commit, dirty)`` of the git checkout that tracks ``package_dir``, or ``(None, None)``.

    The package must be tracked by the repository: an installed copy inside some other
    checkout (a virtual environment in a project folder) is no source checkout.
    """
    if not (package_dir / "__init__.py").is_file():
        return None, None
    tracked = _git(package_dir, "ls-files", "--error-unmatch", "--", "__init__.py")
    commit = _git(package_dir, "rev-parse", "--verify", "HEAD") if tracked is not None else None
    if commit is None:
        return None, None
    changes = _git(package_dir, "status", "--porcelain", "--untracked-files=no")
    return commit, None if changes is None else str(bool(changes)).lower()


def _git(cwd: Path, *args: str) -> str | None:
    """The output of ``git args`` run in ``cwd`` (stripped), or ``None`` when git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
