"""The embedded synthetic dataset: layout, determinism, modality cues, round trip through readers."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from mace_core.data import sysu
from mace_core.data.check import check_sysu
from mace_core.data.synthetic import MARKER, generate, montage
from mace_core.errors import MaceError

KW = dict(ids=12, images_per_cam=2, seed=3, size=(64, 32))


def digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("syn") / "data", workers=1, **KW)


def test_layout_is_sysu(synth):
    assert sorted(p.name for p in synth.iterdir()) == ["cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "exp", MARKER]
    names = {p.relative_to(synth).as_posix() for p in synth.glob("cam*/*/*")}
    assert "cam3/0001/0001.jpg" in names and "cam6/0012/0002.jpg" in names
    assert all(len(n.split("/")[1]) == 4 and n.endswith((".jpg")) and len(n.split("/")[2]) == 8 for n in names)
    with Image.open(synth / "cam4/0001/0001.jpg") as im:
        assert im.format == "JPEG" and im.size == (32, 64)
    splits = [sysu.read_split(synth, s) for s in sysu.SPLITS]
    assert sorted(sum(splits, [])) == list(range(1, 13))     # disjoint and complete
    assert len(splits[2]) == 3 and len(splits[1]) == 1        # 25 % test, 10 % val


def test_round_trip_through_validator_and_readers(synth):
    rep = check_sysu(synth, decode=20)
    c = rep.counts
    assert rep.problems == []
    assert c["identities with both modalities"] == 12 and c["IR images"] == 12 * 2 * 2
    no_indoor = c["cam1 (RGB) identities"]
    assert no_indoor == 11 and c["cam2 (RGB) identities"] == 11   # one test id lacks cam1/cam2
    assert c["RGB images"] == (12 * 4 - 2) * 2
    assert c["training identities (train+val)"] == 9 and c["training RGB images"] == 9 * 4 * 2
    assert c["queries (IR, test ids)"] == 3 * 2 * 2 == len(sysu.query_set(synth))
    assert c["gallery all-search 1-shot"] == 3 * 4 - 2 and c["gallery indoor-search 1-shot"] == 2 * 2
    assert c["gallery all-search 10-shot"] == 2 * (3 * 4 - 2)   # only 2 images per folder
    ts = sysu.training_set(synth)
    assert ts.pids == sorted(sysu.read_split(synth, "train") + sysu.read_split(synth, "val"))


def test_modalities_look_different(synth):
    ir = np.asarray(Image.open(synth / "cam3/0002/0001.jpg").convert("RGB"), dtype=int)
    rgb = np.asarray(Image.open(synth / "cam1/0002/0001.jpg").convert("RGB"), dtype=int)
    assert np.abs(ir - ir[..., :1]).max() <= 3              # IR is grey (3-channel)
    assert np.abs(rgb - rgb[..., :1]).max() > 40            # RGB carries colour
    a, b = (np.asarray(Image.open(synth / f"cam4/0002/000{k}.jpg"), dtype=int) for k in (1, 2))
    assert np.abs(a - b).mean() > 2                         # images of one id/camera vary


def test_deterministic_bytes_regardless_of_workers(synth, tmp_path):
    again = generate(tmp_path / "again", workers=2, **KW)
    assert digest(again) == digest(synth)
    other = generate(tmp_path / "other", workers=1, **{**KW, "seed": 4})
    assert digest(other) != digest(synth)


def test_knobs_change_the_images(tmp_path):
    kw = {**KW, "ids": 4, "images_per_cam": 1}
    a = generate(tmp_path / "a", workers=1, **kw)
    b = generate(tmp_path / "b", workers=1, coupling=0.0, **kw)
    assert (a / "cam3/0001/0001.jpg").read_bytes() != (b / "cam3/0001/0001.jpg").read_bytes()
    assert (a / "cam1/0001/0001.jpg").read_bytes() == (b / "cam1/0001/0001.jpg").read_bytes()
    assert json.loads((b / MARKER).read_text())["knobs"]["coupling"] == 0.0


def test_rerun_reuses_and_other_params_replace(tmp_path):
    kw = {**KW, "ids": 4, "images_per_cam": 1}
    root = generate(tmp_path / "d", workers=1, **kw)
    stamp = (root / "cam1/0001/0001.jpg").stat().st_mtime_ns
    assert generate(root, workers=1, **kw) == root
    assert (root / "cam1/0001/0001.jpg").stat().st_mtime_ns == stamp       # reused, not rewritten
    generate(root, workers=1, **{**kw, "images_per_cam": 2})
    assert (root / "cam1/0001/0002.jpg").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]                    # no temp folders left


@pytest.mark.parametrize("kwargs,match", [
    (dict(ids=2), "--ids"), (dict(images_per_cam=0), "--images-per-cam"), (dict(size=(8, 8)), "--size"),
    (dict(coupling=1.5), "coupling"), (dict(warp=1), "unknown synthetic knob")])
def test_bad_parameters(tmp_path, kwargs, match):
    with pytest.raises(MaceError, match=match):
        generate(tmp_path / "x", **kwargs)


def test_refuses_foreign_non_empty_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(MaceError, match="not a synthetic dataset"):
        generate(tmp_path / "mine", ids=4, images_per_cam=1)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_montage_writes_a_png(synth, tmp_path):
    out = montage(synth, tmp_path / "fig" / "m.png", n_ids=2)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] / 2
    assert [p.name for p in (tmp_path / "fig").iterdir()] == ["m.png"]
