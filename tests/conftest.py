import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one process per core (pytest -n): one thread each, here and in the processes the tests start,
    # since a second thread only waits for a core the other worker holds
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """The team's folder of real labelled data, or a clean skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it lives beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A private LDWSEG_DATA folder with the synthetic set already generated."""
    from ldwseg.datasets import generate_synthetic

    root = tmp_path_factory.mktemp("ldwseg_data")
    generate_synthetic(root / "synthetic")
    return root


@pytest.fixture
def private_data(data_dir, monkeypatch) -> Path:
    """Point LDWSEG_DATA at :func:`data_dir` so tests never write into the checkout."""
    monkeypatch.setenv("LDWSEG_DATA", str(data_dir))
    return data_dir
