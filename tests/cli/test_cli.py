"""The command line, run in-process with typer's CliRunner."""

import importlib.util
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from ldwseg import __version__
from ldwseg.analysis.bench import format_table, run_pool_benchmark, skipped_peers
from ldwseg.cli import app
from ldwseg.config import Config
from ldwseg.tasks import TASKS

pytestmark = pytest.mark.slow  # end-to-end: runs the CLI or whole trainings

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ldwseg {__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "bench" in result.output


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "ldwseg", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ldwseg ")


def test_bench_rows_on_a_tiny_shape():
    """Checks the benchmark's bookkeeping only; timings are never asserted."""
    rows = run_pool_benchmark(shapes=((1, 4, 8, 8),), repeats=1)
    names = {r.name for r in rows}
    assert {"MaxPool2d(2)", "x.clone()", "LDWPool2d K=2", "LDWUnpool2d K=4", "ConvTranspose2d(2C,C,2,2)"} <= names
    pool = next(r for r in rows if r.name == "LDWPool2d K=2")
    maxpool = next(r for r in rows if r.name == "MaxPool2d(2)")
    assert pool.ratio_fwdbwd == pool.fwdbwd_ms / maxpool.fwdbwd_ms
    assert "LDWPool2d K=2" in format_table(rows)


def test_bench_command_runs():
    result = runner.invoke(app, ["bench", "--quick", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert "MaxPool2d(2)" in result.output and "ratio" in result.output


def test_bench_names_the_peers_it_skips():
    rows = run_pool_benchmark(shapes=((1, 4, 8, 8),), repeats=1)
    timed = any(r.name.startswith("pytorch_wavelets") for r in rows)
    assert timed == (importlib.util.find_spec("pytorch_wavelets") is not None)
    assert ("pytorch_wavelets haar" in skipped_peers()) != timed
    if not timed:
        assert "not installed" in skipped_peers()["pytorch_wavelets haar"]
        result = runner.invoke(app, ["bench", "--quick", "--repeats", "1"])
        assert "skipped pytorch_wavelets haar: pytorch_wavelets is not installed" in result.output


# --- every option shows its default ---------------------------------------------------------


def help_text(*command: str) -> str:
    """``ldwseg COMMAND --help`` on one line: wide, then with its white space collapsed."""
    result = runner.invoke(app, [*command, "--help"], terminal_width=2000)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


COMMANDS = ["train", "sweep", "ablate", "compare", "evaluate", "predict", "reconstruct", "filters", "bench", "export"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_shows_its_default(name):
    """An option without a fixed default (None: the config's, the task's or the input's decides) says what it is."""
    command = typer.main.get_command(app).commands[name]
    text = help_text(name)
    assert not re.search(r"\{(model|data|optim|train|task)\.", text), text  # every {section.field} was filled in
    for param in command.params:
        if param.param_type_name != "option" or param.name == "help" or param.required:
            continue
        if param.default is None:  # click shows the others' defaults itself
            assert "[default: " in param.help, f"{name} {param.opts[0]}: {param.help!r}"


def test_train_help_shows_the_config_and_task_defaults():
    cfg, recon = Config(), TASKS["recon"].defaults
    text = help_text("train")
    for option, value, key in [
        ("Number of epochs", cfg.train.epochs, "train.epochs"),
        ("Batch size per process", cfg.train.batch_size, "train.batch_size"),
        ("(or any of them: its images)", cfg.data.dataset, "data.dataset"),
        ("bypass: unpool-detail)", cfg.model.up, "model.up"),
    ]:
        shown = value if recon[key] == value else f"{value}; {recon[key]} for --task recon"  # equal: shown once
        assert f"{option} [default: {shown}]" in text
    assert f"Learning rate [default: {cfg.optim.lr:g}]" in text
    assert f"(lambda) [default: {cfg.train.wavelet_weight:g}]" in text
    assert f"paper, orthogonal, lattice [default: {cfg.model.constraint}; orthogonal for --task recon]" in text
    assert f"what each is [default: {cfg.model.down}; {recon['model.down']} for --task recon]" in text
    assert f"Random seed [default: {cfg.train.seed}]" in text
    assert f"data.crop_size {cfg.data.crop_size}; {recon['data.crop_size']} for --task recon" in text
    assert "[default: runs/<dataset>" in text and "runs/synthetic-maxpool-deconv" in text  # not eaten as markup


def test_other_commands_show_their_defaults():
    from ldwseg.cli.sweep_cmd import SHORT_RUN_EPOCHS
    from ldwseg.inference.tiling import DEFAULT_TILE
    from ldwseg.recon.reconstruct import DEFAULT_LEVELS, DEFAULT_WAVELET

    datasets = f"[default: {Config().data.dataset}; {TASKS['recon'].defaults['data.dataset']} for --task recon]"
    for name in ("sweep", "ablate"):
        text = help_text(name)
        assert f"Epochs per run [default: {SHORT_RUN_EPOCHS}]" in text and f"Data set {datasets}" in text
    scores = f"[default: {TASKS['seg'].score}; {TASKS['recon'].score} for --task recon]"
    assert scores in help_text("compare")
    text = help_text("reconstruct")
    assert f"[default: {DEFAULT_LEVELS}]" in text and f"[default: {DEFAULT_WAVELET}]" in text
    assert "<name>_recon.png" in text and "<name>_ae.png with --checkpoint" in text
    assert f"[default: {DEFAULT_TILE};" in help_text("predict")
    assert "[default: 15;" in help_text("bench")
    assert "[default: <ckpt>_filters.png" in help_text("filters")
    assert "3 runs" in help_text("ablate")  # table3 says why it is not 2 x 2


def test_help_lists_come_from_the_registries():
    """A new block, data set, arch, constraint, loss or task appears in --help without an edit of the help text."""
    from ldwseg.cli.help import choices
    from ldwseg.datasets import DATASETS
    from ldwseg.models import DOWNSAMPLERS, UPSAMPLERS
    from ldwseg.models.build import ARCHS
    from ldwseg.pooling import CONSTRAINTS
    from ldwseg.task_kinds import TASK_KINDS

    for registry, names in [
        ("down", DOWNSAMPLERS), ("up", UPSAMPLERS), ("dataset", DATASETS), ("arch", ARCHS),
        ("constraint", CONSTRAINTS), ("task", TASK_KINDS), ("loss", [x for k in TASK_KINDS.values() for x in k.losses]),
    ]:  # fmt: skip
        listed = choices(registry)
        for name in names:
            assert re.search(rf"(?<![\w+-]){re.escape(name)}(?![\w+-])", listed), (registry, name)
    assert choices("down").startswith("maxpool: maxpool; ldw: ldw; controls: ")  # grouped by the defining module
    with pytest.raises(KeyError, match="no registry named 'blocks'"):
        choices("blocks")


def test_train_help_names_every_block():
    from ldwseg.models import DOWNSAMPLERS, UPSAMPLERS

    text = help_text("train")
    for name in [*DOWNSAMPLERS, *UPSAMPLERS]:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name
