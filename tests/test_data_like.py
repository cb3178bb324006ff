"""Release-shaped synthetic sets (`mace data synth --like`): counts, ratios under --scale, layout, checks."""
from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image

from _data_helpers import shared_file
from mace_core.cli import main
from mace_core.data import regdb, sysu
from mace_core.data.check import check_regdb, check_sysu
from mace_core.data.synthetic import MARKER, generate
from mace_core.data.synthetic_like import (
    REGDB_IDS,
    SYSU_CAMERA_TOTALS,
    _apportion,
    generate_like,
    generate_regdb_like,
    generate_sysu_like,
    read_structure,
    regdb_trials,
    release_structure,
    scaled_counts,
)
from mace_core.errors import MaceError

SMALL = (32, 16)


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def camera_totals(root):
    tree = sysu.scan(root)
    return {c: sum(len(v) for v in tree[c].values()) for c in sysu.ALL_CAMS}


def test_apportion_by_hand():
    # exact shares 1.25, 1.25, 2.5: floors 1, 1, 2, the one left over goes to the largest remainder
    assert _apportion({"a": 1, "b": 1, "c": 2}, 5) == {"a": 1, "b": 1, "c": 3}
    assert _apportion({"a": 1, "b": 1}, 3) == {"a": 2, "b": 1}          # tie: first key
    assert _apportion({"a": 3}, 0) == {"a": 0}


def test_full_size_counts_are_the_structure_files():
    st = read_structure(shared_file("structure.json"))
    per_pid, splits = scaled_counts(st, 1.0)
    for cam, ids in st["cameras"].items():
        assert {p: c[cam] for p, c in per_pid.items() if cam in c} == {p: n for p, n in ids.items() if n}
    assert {c: sum(v.get(c, 0) for v in per_pid.values()) for c in range(1, 7)} == SYSU_CAMERA_TOTALS
    assert [len(splits[s]) for s in ("train", "val", "test")] == [296, 99, 96]


def test_fallback_spreads_the_release_totals_over_491_ids():
    st = release_structure(seed=0)
    assert {c: sum(v.values()) for c, v in st["cameras"].items()} == SYSU_CAMERA_TOTALS
    assert [len(st[s]) for s in ("train", "val", "test")] == [296, 99, 96]
    ids = set().union(*map(set, st["cameras"].values()))
    assert ids == set(range(1, 492))
    no_indoor = [p for p in st["test"] if p not in st["cameras"][1] and p not in st["cameras"][2]]
    assert len(no_indoor) == 40
    for cam, per in st["cameras"].items():      # evenly: counts differ by at most one
        assert max(per.values()) - min(per.values()) <= 1
    assert release_structure(seed=0) == st and release_structure(seed=1) != st


@pytest.mark.parametrize("scale", [0.02, 0.05])
def test_scale_keeps_camera_proportions(scale):
    st = read_structure(shared_file("structure.json"))
    per_pid, splits = scaled_counts(st, scale, seed=0)
    totals = {c: sum(v.get(c, 0) for v in per_pid.values()) for c in range(1, 7)}
    assert totals == {c: round(scale * n) for c, n in SYSU_CAMERA_TOTALS.items()}
    full, small = sum(SYSU_CAMERA_TOTALS.values()), sum(totals.values())
    for c in range(1, 7):   # proportion of each camera equal within the rounding of one camera total
        assert abs(totals[c] / small - SYSU_CAMERA_TOTALS[c] / full) <= 1 / small
    for s in ("train", "val"):
        assert set(splits[s]) <= set(st[s]) and len(splits[s]) == round(scale * len(st[s]))
    assert set(splits["test"]) <= set(st["test"]) and splits["test"]
    assert any(1 not in per_pid[p] and 2 not in per_pid[p] for p in splits["test"])  # indoor-less kept


@pytest.fixture(scope="module")
def sysu_small(tmp_path_factory):
    return generate_sysu_like(tmp_path_factory.mktemp("like") / "sysu", structure=shared_file("structure.json"),
                              scale=0.03, size=SMALL, workers=2)


def test_sysu_like_tree_passes_the_check_with_scaled_counts(sysu_small):
    rep = check_sysu(sysu_small, decode="all")
    assert rep.problems == []
    assert any(n.startswith("decoded every one of the") for n in rep.notes)
    assert camera_totals(sysu_small) == {c: round(0.03 * n) for c, n in SYSU_CAMERA_TOTALS.items()}
    with Image.open(next(sysu_small.glob("cam3/*/0001.jpg"))) as im:
        assert im.size == (SMALL[1], SMALL[0])
    marker = json.loads((sysu_small / MARKER).read_text())
    assert marker["like"] == "sysu-mm01" and marker["counts_from"] == "structure.json"
    assert "cameras" not in marker   # numbers used, the structure file itself is not copied


def test_sysu_like_bytes_do_not_depend_on_workers(sysu_small, tmp_path):
    again = generate_sysu_like(tmp_path / "again", structure=shared_file("structure.json"), scale=0.03,
                               size=SMALL, workers=1)
    assert digest(again) == digest(sysu_small)


def test_sysu_like_without_structure(tmp_path):
    root = generate_sysu_like(tmp_path / "s", scale=0.02, size=SMALL, workers=1)
    rep = check_sysu(root, decode="all")
    assert rep.problems == []
    assert camera_totals(root) == {c: round(0.02 * n) for c, n in SYSU_CAMERA_TOTALS.items()}
    assert json.loads((root / MARKER).read_text())["counts_from"] == "release camera totals"


def test_regdb_like_layout_lists_and_check(tmp_path):
    root = generate_regdb_like(tmp_path / "r", scale=0.05, size=SMALL, workers=2)
    n = round(0.05 * REGDB_IDS)
    assert sorted(int(p.name) for p in (root / "Visible").iterdir()) == list(range(1, n + 1))
    assert all(len(list((root / k / str(p)).glob("*.bmp"))) == 10 for k in ("Visible", "Thermal") for p in (1, n))
    for trial in regdb.TRIALS:
        vis_tr, th_tr = regdb.regdb_split(root, trial, "train")
        vis_te, th_te = regdb.regdb_split(root, trial, "test")
        assert [r.pid for r in vis_tr] == [r.pid for r in th_tr] and len(vis_tr) == 10 * (n // 2)
        assert sorted({r.pid for r in vis_te}) == list(range(n - n // 2))      # labels 0..k-1 per list
        train_dirs = {r.path.rsplit("/", 2)[1] for r in vis_tr}
        assert not train_dirs & {r.path.rsplit("/", 2)[1] for r in vis_te}      # disjoint identities
    rep = check_regdb(root, trial=4, decode="all")
    assert rep.problems == [] and rep.counts["visible images"] == rep.counts["thermal images"] == 10 * n
    assert rep.counts["trials with all four lists"] == 10


def test_regdb_full_size_trials_are_half_and_half():
    for train, test in regdb_trials(list(range(1, REGDB_IDS + 1))):
        assert len(train) == len(test) == 206 and not set(train) & set(test)


def test_ir_images_per_cam_changes_only_the_ir_cameras(tmp_path):
    kw = dict(ids=6, images_per_cam=2, seed=1, size=SMALL, workers=1)
    plain = generate(tmp_path / "plain", **kw)
    more = generate(tmp_path / "more", ir_images_per_cam=4, **kw)
    same = generate(tmp_path / "same", ir_images_per_cam=2, **kw)
    a, b = digest(plain), digest(more)
    assert digest(same) == a                                      # same marker and files as before
    assert {k: v for k, v in b.items() if k in a and k != MARKER} == {k: v for k, v in a.items() if k != MARKER}
    assert len(list(more.glob("cam3/0001/*.jpg"))) == 4 and len(list(more.glob("cam4/0001/*.jpg"))) == 2
    assert json.loads((more / MARKER).read_text())["ir_images_per_cam"] == 4
    with pytest.raises(MaceError, match="--ir-images-per-cam"):
        generate(tmp_path / "bad", ir_images_per_cam=0, **kw)


@pytest.mark.parametrize("call,match", [
    (lambda p: generate_sysu_like(p, scale=0), "--scale"),
    (lambda p: generate_sysu_like(p, scale=1.5), "--scale"),
    (lambda p: generate_like("market", p), "--like"),
    (lambda p: generate_like("regdb", p, structure="x.json"), "--structure"),
    (lambda p: generate_sysu_like(p, structure=p / "none.json"), "does not exist"),
])
def test_bad_like_parameters(tmp_path, call, match):
    with pytest.raises(MaceError, match=match):
        call(tmp_path)


def test_malformed_structure_file(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"cameras": {"cam1": {}}}))
    with pytest.raises(MaceError, match="not a SYSU-MM01 structure.json"):
        read_structure(bad)


def test_cli_synth_like_and_misuse(tmp_path, capsys):
    code = main(["data", "synth", "--like", "regdb", "--scale", "0.02", "--size", "32x16", "--root",
                 str(tmp_path / "r"), "--workers", "1"])
    assert code == 0 and "regdb-like dataset ready" in capsys.readouterr().out
    code = main(["data", "synth", "--scale", "0.5", "--root", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "--like" in err and err.count("\n") == 1
