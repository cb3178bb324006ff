"""RegDB lists, trials and the RegDB validator."""
from __future__ import annotations

import pytest

from _data_helpers import build_tiny_regdb
from mace_core.data.check import check_regdb
from mace_core.data.regdb import regdb_split
from mace_core.errors import MaceError


@pytest.fixture()
def root(tmp_path):
    return build_tiny_regdb(tmp_path / "regdb", ids=4, images=2, trial=3)


def test_split_reads_relpath_label_lines(root):
    vis, th = regdb_split(root, 3, "train")
    assert [(r.pid, r.cam) for r in vis] == [(0, 1), (0, 1), (1, 1), (1, 1)]
    assert all(r.cam == 2 for r in th) and th[0].path == str(root.resolve() / "Thermal/0/0.bmp")
    tv, tt = regdb_split(root, 3, "test")
    assert [r.path.split("/")[-2] for r in tv] == ["2", "2", "3", "3"] and len(tt) == 4


def test_validator_counts(root):
    rep = check_regdb(root, trial=3, decode=4)
    assert rep.counts["train visible images"] == 4 and rep.counts["test thermal identities"] == 2
    assert rep.problems == []
    (root / "Thermal/3/1.bmp").unlink()
    assert any("absent" in p for p in check_regdb(root, trial=3).problems)


@pytest.mark.parametrize("trial", [0, 11])
def test_trial_out_of_range(root, trial):
    with pytest.raises(MaceError, match="1..10"):
        regdb_split(root, trial)


def test_missing_list_folder_and_malformed_line(root, tmp_path):
    with pytest.raises(MaceError, match="train_visible_1.txt"):
        regdb_split(root, 1)
    (root / "idx" / "train_thermal_3.txt").write_text("Thermal/0/0.bmp zero\n")
    with pytest.raises(MaceError, match="line 1"):
        regdb_split(root, 3)
    with pytest.raises(MaceError, match="Visible"):
        regdb_split(tmp_path, 3)
    with pytest.raises(MaceError, match="unknown RegDB split"):
        regdb_split(root, 3, "val")
