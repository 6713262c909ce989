"""StepWatch under torchrun: the ranks agree on stopping and saving without reading the loss sums.

Two gloo ranks (``torch.multiprocessing``) add known losses and call a StepWatch after each
step, as training does. The reference is the sums of those losses added here in plain Python:
every checkpoint holds every rank's sums of its own step, and the device sums are read only
where a checkpoint is written (on CUDA, a read is a host synchronisation). The ranks run
once as a gloo group and once as if their group were nccl, where the agreement goes through
a gloo group of its own.
"""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from run_checks import free_port

from ldwseg.engine.checkpoints import ResumePoint
from ldwseg.engine.distributed import DistInfo, cleanup_distributed, control_group
from ldwseg.engine.epoch import LOSS_NAMES, EpochProgress, LossTotals, NonFiniteLossError
from ldwseg.engine.interrupt import StopRequests
from ldwseg.engine.stopping import StepWatch, agreed_signal
from ldwseg.errors import Interrupted

WORLD = 2
SAVE_EVERY = 3
STOP_AT = 5  # rank 1 alone receives SIGTERM before this step's watch
BEST = {"score": 0.25, "epoch": 0}


def losses(rank: int, step: int) -> list[float]:
    """Step ``step``'s (train, task, wavelet) loss on ``rank``: dyadic, so every sum is exact."""
    return [1.0 + rank + step / 4, 0.5 + rank / 2 + step / 8, step / 16]


def reference_sums(rank: int, steps: int) -> dict[str, float]:
    rows = [losses(rank, step) for step in range(steps)]
    return {name: sum(row[i] for row in rows) for i, name in enumerate(LOSS_NAMES)}


class FakeSaver:
    def __init__(self, out: str) -> None:
        self.out, self.saved = Path(out), []

    def due(self, step: int) -> bool:
        return step % SAVE_EVERY == 0

    def save(self, point: ResumePoint, metrics: dict) -> None:
        self.saved.append(point)


def rank_worker(rank: int, port: int, out: str, beside_nccl: bool) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    if beside_nccl:  # the agreement then takes a gloo group of its own, as beside a real nccl group
        dist.get_backend = lambda group=None: "nccl"
    reads: list[tuple[int, int]] = []  # (epoch, step) of every read
    real_read = LossTotals.read

    def counted_read(self: LossTotals) -> dict[str, float]:
        reads.append((watch.last.epoch, watch.last.step))
        return real_read(self)

    LossTotals.read = counted_read
    record = {"own_control_group": control_group() is not None}
    try:
        info, cpu = DistInfo(rank, WORLD), torch.device("cpu")
        saver, stop = FakeSaver(out), StopRequests()
        watch = StepWatch(saver, stop, info, cpu, start=EpochProgress(0), best=BEST)
        totals = LossTotals.start(None, epoch=0, device=cpu)
        for step in range(STOP_AT):
            totals, _ = totals.add(step, torch.tensor(losses(rank, step), dtype=torch.float64))
            if rank == 1 and step + 1 == STOP_AT:
                stop.signal = "SIGTERM"
            try:
                watch(EpochProgress(0, step + 1, totals))
            except Interrupted as err:
                record["stopped"] = (step + 1, err.exit_code)
        record["agreed_signal"] = agreed_signal(stop, info)
        # the path of a DataLoader stopped by the signal: save the last step without a watch call
        stop.signal = None
        watch = StepWatch(saver, stop, info, cpu, start=EpochProgress(1), best=BEST)
        totals = LossTotals.start(None, epoch=1, device=cpu)
        for step in range(2):
            totals, _ = totals.add(step, torch.tensor(losses(rank, step), dtype=torch.float64))
            watch(EpochProgress(1, step + 1, totals))
        watch.save_and_stop("SIGINT")
        # rank 1's loss is NaN at its first step: at the next save every rank refuses to write
        watch = StepWatch(saver, stop, info, cpu, start=EpochProgress(2), best=BEST)
        totals = LossTotals.start(None, epoch=2, device=cpu)
        for step in range(SAVE_EVERY):
            bad = rank == 1 and step == 0
            losses_now = [float("nan")] * 3 if bad else losses(rank, step)
            totals, _ = totals.add(step, torch.tensor(losses_now, dtype=torch.float64))
            try:
                watch(EpochProgress(2, step + 1, totals))
            except NonFiniteLossError as err:
                record["non_finite"] = (step + 1, str(err), err.step)
        record["saved"] = [(p.epoch, p.step, p.sums, p.rank_sums) for p in saver.saved]
        record["reads"] = reads
        torch.save(record, f"{out}/rank{rank}.pt")
    finally:
        cleanup_distributed()


@pytest.fixture(scope="module", params=[False, True], ids=["gloo", "beside nccl"])
def records(request, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("step_agreement")
    mp.spawn(rank_worker, args=(free_port(), str(out), request.param), nprocs=WORLD)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) | {"beside_nccl": request.param}
            for rank in range(WORLD)]  # fmt: skip


def test_a_signal_on_one_rank_stops_both_after_the_same_step(records):
    for record in records:
        assert record["stopped"] == (STOP_AT, 143)
        assert record["agreed_signal"] == "SIGTERM"
        # gloo's default group takes the host's tensors itself; beside nccl a gloo group is made
        assert record["own_control_group"] == record["beside_nccl"]


def test_a_loss_not_finite_on_one_rank_stops_every_rank_at_the_next_save_without_writing(records):
    rank0, rank1 = (record["non_finite"] for record in records)
    assert rank0[0] == rank1[0] == SAVE_EVERY
    assert "on rank 1 of 2 by epoch 3, step 3" in rank0[1]
    assert "at epoch 3, step 1" in rank1[1] and rank1[2] == 0  # the rank that saw it names its step
    for record in records:
        assert all(epoch < 2 for epoch, *_ in record["saved"])


def test_every_checkpoint_holds_every_ranks_sums_of_its_own_step(records):
    expected = [(0, SAVE_EVERY), (0, STOP_AT), (1, 2)]
    for rank, record in enumerate(records):
        assert [(epoch, step) for epoch, step, _, _ in record["saved"]] == expected
        for epoch, step, sums, rank_sums in record["saved"]:
            assert sums == reference_sums(rank, step)
            assert rank_sums == [reference_sums(r, step) for r in range(WORLD)], (epoch, step)


def test_the_loss_sums_are_read_only_where_a_checkpoint_is_written(records):
    for record in records:
        # rank 1 reads its NaN and stops there; rank 0 reads its own sums, then finds rank 1's
        assert sorted(set(record["reads"])) == [(0, SAVE_EVERY), (0, STOP_AT), (1, 2), (2, SAVE_EVERY)]


def test_one_process_saves_no_rank_sums_of_the_group_it_resumed_from(tmp_path):
    saver = FakeSaver(str(tmp_path))
    group_sums = [reference_sums(0, 2), reference_sums(1, 2)]  # from a checkpoint of two ranks
    watch = StepWatch(saver, StopRequests(), DistInfo(), torch.device("cpu"), start=EpochProgress(0, 2,
                      reference_sums(0, 2)), best=BEST, rank_sums=group_sums)  # fmt: skip
    watch(EpochProgress(0, SAVE_EVERY, reference_sums(0, SAVE_EVERY)))
    assert [(p.step, p.sums, p.rank_sums) for p in saver.saved] == [(SAVE_EVERY, reference_sums(0, SAVE_EVERY), None)]


def test_beside_nccl_one_gloo_group_carries_the_agreements_until_the_group_ends(monkeypatch):
    made = []
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(dist, "new_group", lambda **kwargs: made.append(kwargs) or object())
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    first = control_group()
    assert control_group() is first and made == [{"backend": "gloo"}]  # new_group is a collective: made once
    cleanup_distributed()
    assert control_group() is not first and len(made) == 2
    cleanup_distributed()
