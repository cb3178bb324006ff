"""Every image decoded by `mace data check`; corrupt files named by check and cache; the cache's
space and writability preflight."""
from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from _data_helpers import build_tiny_regdb
from mace_core.cli import main
from mace_core.data import cache as cache_mod
from mace_core.data.cache import cache_bytes, cached_images, preflight
from mace_core.data.check import check_regdb, check_sysu
from mace_core.data.datasets import load_training_data
from mace_core.data.images import DECODE_FIX
from mace_core.data.synthetic import generate
from mace_core.data.sysu import gallery_candidates, query_set, training_set
from mace_core.errors import MaceError

Usage = namedtuple("Usage", "total used free")


@pytest.fixture()
def tree(tmp_path):
    return generate(tmp_path / "sysu", ids=8, images_per_cam=3, seed=0, size=(32, 16), workers=1)


def one_corrupt(root, truncate=False):
    victim = sorted(root.glob("cam5/*/*.jpg"))[-1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2] if truncate else b"\xff\xd8 not really a jpeg")
    return victim


def test_full_size_sysu_cache_size_by_hand():
    # 45,863 images x 288 x 144 x 3 bytes + one .npy header: the figure the book states (~5.7 GB)
    assert cache_bytes(45863, (288, 144)) == 45863 * 124416 + 128 == 5_706_091_136


@pytest.mark.parametrize("truncate", [False, True])
def test_one_corrupt_image_fails_the_default_check(tree, capsys, truncate):
    victim = one_corrupt(tree, truncate)
    code = main(["data", "check", "--dataset", "sysu", "--root", str(tree)])
    out = capsys.readouterr().out
    assert code == 1
    problems = [line for line in out.splitlines() if "PROBLEM" in line]
    assert len(problems) == 1 and str(victim) in problems[0] and DECODE_FIX in problems[0]


def test_clean_tree_decodes_every_image(tree, capsys):
    assert main(["data", "check", "--dataset", "sysu", "--root", str(tree)]) == 0
    n = len(list(tree.glob("cam*/*/*.jpg")))
    assert f"decoded every one of the {n:,} images without error" in capsys.readouterr().out
    assert main(["data", "check", "--dataset", "sysu", "--root", str(tree), "--quick"]) == 0
    assert "decoded a sample of 50 images" in capsys.readouterr().out


def test_every_image_means_those_outside_the_splits_too(tree):
    # an identity in no split is never trained on, yet a corrupt copy of it means a broken tree
    stray = tree / "cam1" / "0099"
    stray.mkdir()
    (stray / "0001.jpg").write_bytes(b"garbage")
    rep = check_sysu(tree, decode="all")
    assert any(str(stray / "0001.jpg") in p for p in rep.problems)


def test_regdb_corrupt_bitmap_is_named(tmp_path):
    root = build_tiny_regdb(tmp_path / "regdb")
    victim = root / "Thermal" / "3" / "1.bmp"
    victim.write_bytes(b"BM broken")
    rep = check_regdb(root, trial=1, decode="all")
    assert len(rep.problems) == 1 and str(victim) in rep.problems[0]


def test_cache_names_the_corrupt_file_like_the_check_and_leaves_no_cache(tree, tmp_path, monkeypatch):
    victim = one_corrupt(tree)
    records = training_set(tree).rgb + gallery_candidates(tree)
    records = sorted(records, key=lambda r: r.path != str(victim))   # the corrupt one first
    calls = []
    real = cache_mod._load
    monkeypatch.setattr(cache_mod, "_load", lambda p, s: calls.append(p) or real(p, s))
    with pytest.raises(MaceError) as err:
        cached_images(records, (32, 16), tmp_path / "c", workers=1)
    assert str(victim) in str(err.value) and DECODE_FIX in str(err.value)
    assert len(calls) < len(records) // 2          # the build stops instead of decoding the rest
    assert list((tmp_path / "c").iterdir()) == []   # neither a final nor a partial file


def test_preflight_refuses_a_full_disk_before_writing(tree, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(MaceError, match=r"need .* GB .* only 0.00 GB are free.*data.cache_dir"):
        load_training_data("sysu", tree, (32, 16), cache_dir=tmp_path / "c")
    assert [p.name for p in (tmp_path / "c").iterdir()] == []


def test_preflight_counts_training_and_test_caches(tree, tmp_path, monkeypatch):
    seen = {}
    real = shutil.disk_usage

    def usage(path):
        seen["path"] = path
        return real(path)

    monkeypatch.setattr(cache_mod.shutil, "disk_usage", usage)
    ts = training_set(tree)
    groups = [(ts.rgb, "a"), (ts.ir, "b"), (query_set(tree), "q"), (gallery_candidates(tree), "g")]
    plan = preflight(groups, (32, 16), tmp_path / "c")
    assert plan["bytes"] == plan["to_build_bytes"] == sum(len(r) * 32 * 16 * 3 + 128 for r, _ in groups)
    assert seen["path"] == tmp_path / "c"
    cached_images(ts.rgb, (32, 16), tmp_path / "c", desc="a")
    again = preflight(groups, (32, 16), tmp_path / "c")
    assert again["to_build_bytes"] == plan["bytes"] - (len(ts.rgb) * 32 * 16 * 3 + 128)


def test_preflight_unwritable_folder(tree, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaceError, match="cannot write the image cache.*--cache-dir"):
        preflight([(training_set(tree).rgb, "a")], (32, 16), blocker / "sub")
