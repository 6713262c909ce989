"""A stored run's config.yaml is compared as a config: fields a later version added count as their defaults."""

import pytest
import yaml

from ldwseg.config import Config, apply_overrides
from ldwseg.engine.run_folder import check_same_settings
from ldwseg.errors import ConfigError


def _store(folder, raw: dict) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def test_a_file_without_a_newer_field_holds_that_fields_default(tmp_path):
    cfg = apply_overrides(Config(), ["optim.lr=0.01"])
    older = cfg.to_dict()
    del older["train"]["ema_decay"]  # written before the field existed
    _store(tmp_path / "run", older)
    check_same_settings(tmp_path / "run", cfg, whose="this compare's")
    check_same_settings(tmp_path / "empty", cfg, whose="this compare's")  # no run there yet


@pytest.mark.parametrize("change", [{"optim": {"lr": 0.1}}, {"train": {"ema_decay": 0.9}}, {"nope": {"x": 1}}])
def test_other_or_unreadable_settings_are_refused(tmp_path, change):
    cfg = apply_overrides(Config(), ["optim.lr=0.01"])
    stored = cfg.to_dict()
    for section, values in change.items():
        stored.setdefault(section, {}).update(values)
    _store(tmp_path / "run", stored)
    with pytest.raises(
        ConfigError, match=r"run holds a run with other settings than this compare's; give another --out"
    ):
        check_same_settings(tmp_path / "run", cfg, whose="this compare's")


def test_where_the_data_lies_how_it_is_loaded_and_how_often_it_checkpoints_may_differ(tmp_path):
    cfg = apply_overrides(Config(), ["data.root=../shared/data/camvid", "train.checkpoint_minutes=10"])
    moved = apply_overrides(Config(), ["data.root=/mnt/data/CamVid", "train.checkpoint_minutes=0", "data.cache=true"])
    _store(tmp_path / "run", cfg.to_dict())
    check_same_settings(tmp_path / "run", moved, whose="this compare's")
    with pytest.raises(ConfigError, match="other settings"):
        check_same_settings(tmp_path / "run", apply_overrides(moved, ["data.val_split=test"]), whose="this compare's")
