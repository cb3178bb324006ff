"""`mace data ...` end to end, and every bad-input path: exit 2, one line, no traceback."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from _data_helpers import build_tiny_sysu, shared_file
from mace_core.cli import main
from mace_core.data import sysu
from mace_core.errors import MaceError


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("mace: error: ") and "Traceback" not in err
    for w in words:
        assert w in err, err


@pytest.fixture()
def tiny(tmp_path):
    return build_tiny_sysu(tmp_path / "sysu")


def test_synth_check_montage(tmp_path, capsys):
    root = tmp_path / "syn"
    code, out, _ = run(capsys, "data", "synth", "--root", str(root), "--ids", "8", "--images-per-cam", "1",
                       "--size", "64x32", "--workers", "1", "--clutter", "0.3")
    assert code == 0 and "ready" in out
    code, out, _ = run(capsys, "data", "check", "--dataset", "sysu", "--root", str(root), "--decode", "5")
    assert code == 0
    assert "training identities (train+val)" in out and "no inconsistency found" in out
    code, out, _ = run(capsys, "data", "montage", "--root", str(root), "--out", str(tmp_path / "m.png"), "--ids", "2")
    assert code == 0 and (tmp_path / "m.png").is_file()


def test_check_reports_inconsistency_with_exit_1(tiny, capsys):
    (tiny / "exp" / "val_id.txt").write_text("4,5\n")  # 5 is also a test id
    code, out, _ = run(capsys, "data", "check", "--dataset", "sysu", "--root", str(tiny), "--decode", "0")
    assert code == 1 and "PROBLEM: 1 identities are in both val and test" in out


def test_unknown_dataset(tiny, capsys):
    assert_one_line_error(*run(capsys, "data", "check", "--dataset", "market", "--root", str(tiny))[::2],
                          "market", "--dataset sysu")


def test_missing_root(tmp_path, capsys):
    assert_one_line_error(*run(capsys, "data", "check", "--dataset", "sysu", "--root", str(tmp_path / "no"))[::2],
                          str(tmp_path / "no"), "--root")


def test_missing_camera_folder(tiny, capsys):
    shutil.rmtree(tiny / "cam6")
    assert_one_line_error(*run(capsys, "data", "check", "--dataset", "sysu", "--root", str(tiny))[::2],
                          "cam6", "missing")


def test_missing_split_files(tiny, capsys):
    (tiny / "exp" / "test_id.txt").unlink()
    assert_one_line_error(*run(capsys, "data", "check", "--dataset", "sysu", "--root", str(tiny))[::2],
                          "test_id.txt", "exp/")


def test_empty_identity_folder(tiny, capsys):
    for f in (tiny / "cam2" / "0003").iterdir():
        f.unlink()
    assert_one_line_error(*run(capsys, "data", "check", "--dataset", "sysu", "--root", str(tiny))[::2],
                          "cam2/0003", "no images")


def test_corrupt_images_are_problems_naming_the_file_and_fix(tiny, capsys):
    for f in sorted(tiny.glob("cam*/*/*.jpg")):
        f.write_bytes(b"\xff\xd8broken")
    code, out, _ = run(capsys, "data", "check", "--dataset", "sysu", "--root", str(tiny), "--decode", "3")
    assert code == 1
    problem = [line for line in out.splitlines() if "PROBLEM" in line]
    assert len(problem) == 1 and "cannot be decoded" in problem[0] and ".jpg" in problem[0]
    assert "2 more image(s)" in problem[0] and "fix: re-extract" in problem[0]


def test_regdb_missing_lists(tmp_path, capsys):
    for sub in ("Visible", "Thermal", "idx"):
        (tmp_path / sub).mkdir()
    assert_one_line_error(*run(capsys, "data", "check", "--dataset", "regdb", "--root", str(tmp_path), "--trial", "2")[::2],
                          "train_visible_2.txt")


def test_bad_synth_arguments(tmp_path, capsys):
    assert_one_line_error(*run(capsys, "data", "synth", "--root", str(tmp_path / "s"), "--ids", "1")[::2], "--ids")
    with pytest.raises(SystemExit) as exc:  # argparse: usage line + one error line, exit 2
        main(["data", "synth", "--root", str(tmp_path), "--size", "big"])
    assert exc.value.code == 2 and "128x64" in capsys.readouterr().err


def test_val_rebuilt_with_a_warning(tiny):
    (tiny / "exp" / "val_id.txt").unlink()
    with pytest.warns(UserWarning, match="rebuilt the val split"):
        assert sysu.read_split(tiny, "val") == [4]


def test_split_file_formats(tiny):
    (tiny / "exp" / "train_id.txt").write_text("3, 1,\n2\n")
    assert sysu.read_split(tiny, "train") == [1, 2, 3]
    (tiny / "exp" / "train_id.txt").write_text("1,two")
    with pytest.raises(MaceError, match="comma-separated"):
        sysu.read_split(tiny, "train")
    (tiny / "exp" / "train_id.txt").unlink()
    (tiny / "exp" / "train_id.mat").write_bytes(b"garbage")
    with pytest.raises(MaceError, match="train_id.mat"):
        sysu.read_split(tiny, "train")
    with pytest.raises(MaceError, match="unknown split"):
        sysu.read_split(tiny, "dev")


def test_gallery_argument_errors(tiny, tmp_path):
    with pytest.raises(MaceError, match="mode"):
        sysu.query_set(tiny, "outdoor")
    with pytest.raises(MaceError, match="method"):
        sysu.gallery_indices(tiny, method="random")
    with pytest.raises(MaceError, match="shots"):
        sysu.gallery_indices(tiny, shots=0)
    with pytest.raises(MaceError, match="perm"):
        sysu.gallery_indices(tiny, method="official")
    with pytest.raises(MaceError, match="does not exist"):
        sysu.gallery_indices(tiny, method="official", perm_file=tmp_path / "none.mat")
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file")
    with pytest.raises(MaceError, match="cannot be read"):
        sysu.gallery_indices(tiny, method="official", perm_file=bad)


def test_official_perm_file_that_does_not_match_the_tree(tiny):
    # the real file's entries have the real image counts, not this tree's 3 per folder
    with pytest.raises(MaceError, match="expected \\(10, 3\\)"):
        sysu.gallery_indices(tiny, method="official", perm_file=shared_file("rand_perm_cam.mat"))


def test_wrongly_shaped_perm_file(tiny, tmp_path):
    import scipy.io

    path = tmp_path / "wrong.mat"
    scipy.io.savemat(path, {"rand_perm_cam": np.zeros((3, 1))})
    with pytest.raises(MaceError, match="6-camera"):
        sysu.gallery_indices(tiny, method="official", perm_file=path)


def test_agw_multi_shot_takes_all_when_folder_is_small(tiny):
    idx = sysu.gallery_indices(tiny, "all", trial=2, shots=10)
    assert len(idx) == len(sysu.gallery_candidates(tiny, "all")) == 2 * 4 * 3


def test_given_candidates_draw_the_same_galleries_as_a_rescan(tiny):
    """An evaluation passes the candidates it scanned once; every trial, both directions, both shot
    counts must pick exactly what a fresh scan per trial picks."""
    for modality, candidates in (("rgb", sysu.gallery_candidates(tiny, "all")), ("ir", sysu.query_set(tiny, "all"))):
        for shots in (1, 10):
            for trial in range(4):
                fresh = sysu.gallery_indices(tiny, "all", trial, shots, modality=modality)
                given = sysu.gallery_indices(tiny, "all", trial, shots, modality=modality, candidates=candidates)
                assert np.array_equal(fresh, given) and len(fresh) > 0
