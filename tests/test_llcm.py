"""LLCM: reader, protocol (hand-built cases and the reference's rules), validator, synthetic tree,
and a tiny end-to-end train + both-direction evaluation.

The reference rules restated here (in words, from DEEN's public code, github ZYK100/LLCM):

* gallery of trial t: the generator seeded with t, then, for each test identity in ascending order
  and each camera in ascending order (VIS 1..9, NIR 1, 2, 4..9) whose identity folder exists, one
  uniform choice among that folder's files sorted by name;
* ranking: ascending distance; for each query, drop every gallery item with the query's identity
  *and* the query's camera; Rank-k: the query's identity is among the first k distinct identities
  of the remaining list; AP and INP on the remaining (not de-duplicated) list; queries without a
  remaining true match are skipped; each figure is the mean over the remaining queries, and the
  trials' figures are averaged.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from mace_core.cli import main
from mace_core.data import llcm
from mace_core.data.check import check
from mace_core.data.synthetic_like import LLCM_IDS, LLCM_IMAGES, LLCM_TRAIN_IDS, generate_like, llcm_plan
from mace_core.engine.retrieval import llcm_trials
from mace_core.errors import MaceError
from mace_core.metrics import evaluate_llcm, evaluate_llcm_features, evaluate_sysu


# ----------------------------------------------------------------------------- the rules, in words
def rule_of_the_reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20):
    """One query at a time, exactly the bullet list of the module docstring."""
    max_rank = min(max_rank, distmat.shape[1])
    cmc_sum, aps, inps = np.zeros(max_rank), [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        ranked = g_pids[order][keep]
        hits = ranked == q_pids[i]
        if not hits.any():
            continue
        distinct = []
        for pid in ranked:
            if pid not in distinct:
                distinct.append(pid)
        first = distinct.index(q_pids[i])          # 0-based identity rank
        cmc_sum[first:] += 1 if first < max_rank else 0
        positions = np.flatnonzero(hits) + 1       # 1-based
        aps.append(np.mean(np.arange(1, positions.size + 1) / positions))
        inps.append(positions.size / positions[-1])
    return cmc_sum / len(aps), float(np.mean(aps)), float(np.mean(inps))


def reference_gallery(root, modality, trial):
    """The reference's picks with the global generator, as its data_manager does."""
    random.seed(trial)
    folder = root / llcm.TEST_FOLDERS[modality]
    picks = []
    for pid in sorted(int(x) for x in (root / "idx" / "test_id.txt").read_text().strip().split(",")):
        for cam in llcm.TEST_CAMS[modality]:
            d = folder / f"cam{cam}" / f"{pid:04d}"
            if d.is_dir():
                picks.append(random.choice(sorted(str(d / n) for n in os.listdir(d))))
    return picks


# ----------------------------------------------------------------------------- hand-built metric cases
def test_same_identity_same_camera_items_are_dropped_and_identities_deduplicated():
    # Gallery by increasing distance: [pid1 cam2, pid3 cam1, pid3 cam4, pid1 cam5, pid2 cam2]
    g_pids = np.array([1, 3, 3, 1, 2])
    g_cams = np.array([2, 1, 4, 5, 2])
    d = np.tile([0.1, 0.2, 0.3, 0.4, 0.5], (3, 1))
    q_pids, q_cams = np.array([1, 2, 3]), np.array([2, 2, 9])
    out = evaluate_llcm(d, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    # q0 (pid1, cam2): pid1-cam2 dropped -> ids [3, 3, 1, 2] -> distinct [3, 1, 2]: rank 2; hit at
    #    list position 3: AP = INP = 1/3. pid2-cam2 stays: another identity on the same camera.
    # q1 (pid2, cam2): its only match (pid2 cam2) dropped -> skipped.
    # q2 (pid3, cam9): nothing dropped -> ids [1, 3, 3, 1, 2] -> distinct [1, 3, 2]: rank 2;
    #    hits at 2, 3: AP = (1/2 + 2/3) / 2, INP = 2/3.
    np.testing.assert_allclose(out["cmc"], [0, 1, 1])
    assert out["mAP"] == pytest.approx((1 / 3 + (1 / 2 + 2 / 3) / 2) / 2)
    assert out["mINP"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert (out["num_valid_queries"], out["num_queries"]) == (2, 3)
    # control: under the SYSU rule (only cam3 queries lose cam2 items) q0 keeps pid1-cam2 at rank 1
    sysu = evaluate_sysu(d, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    assert sysu["cmc"][0] > 0 and sysu["num_valid_queries"] == 3


def test_no_valid_query_is_an_error():
    with pytest.raises(MaceError, match="no query has a true match"):
        evaluate_llcm(np.array([[0.1]]), [1], [1], [4], [4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_the_rule_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n_q, n_g = 40, 60
    q_pids, g_pids = rng.integers(0, 8, n_q), rng.integers(0, 8, n_g)
    q_cams, g_cams = rng.integers(1, 10, n_q), rng.integers(1, 10, n_g)
    qf, gf = rng.normal(size=(n_q, 6)), rng.normal(size=(n_g, 6))
    d = -(qf / np.linalg.norm(qf, axis=1, keepdims=True)) @ (gf / np.linalg.norm(gf, axis=1, keepdims=True)).T
    cmc, m_ap, m_inp = rule_of_the_reference(d, q_pids, g_pids, q_cams, g_cams)
    for out in (evaluate_llcm(d, q_pids, g_pids, q_cams, g_cams),
                evaluate_llcm(d, q_pids, g_pids, q_cams, g_cams, chunk_rows=7),
                evaluate_llcm_features(qf, gf, q_pids, g_pids, q_cams, g_cams)):
        np.testing.assert_allclose(out["cmc"], cmc, atol=1e-12)
        assert out["mAP"] == pytest.approx(m_ap) and out["mINP"] == pytest.approx(m_inp)


# ----------------------------------------------------------------------------- a hand-built release tree
def _touch(path, label=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def build_tiny_llcm(root, test=(7, 9), train=((3, 0), (5, 1))):
    """Training ids 3, 5 (labels 0, 1) and test ids 7, 9; every file empty (counting only)."""
    for mod in ("vis", "nir"):
        lines = []
        for pid, label in train:
            for cam in (1, 2):
                for k in (1, 2):
                    rel = f"train_{mod}/cam{cam}/{pid:04d}/{pid:04d}_c{cam}_{k}.jpg"
                    _touch(root / rel)
                    lines.append(f"{rel} {label}")
        (root / "idx").mkdir(parents=True, exist_ok=True)
        (root / "idx" / f"train_{mod}.txt").write_text("\n".join(lines) + "\n")
    (root / "idx" / "test_id.txt").write_text(",".join(str(p) for p in test) + "\n")
    layout = {"vis": {7: {1: 3, 3: 2}, 9: {2: 1, 3: 4}}, "nir": {7: {2: 2, 3: 5}, 9: {1: 3}}}
    for mod, ids in layout.items():
        for pid, cams in ids.items():
            for cam, n in cams.items():
                for k in range(n):
                    _touch(root / f"test_{mod}" / f"cam{cam}" / f"{pid:04d}" / f"{k:03d}.jpg")
    return root


@pytest.fixture()
def tiny(tmp_path):
    return build_tiny_llcm(tmp_path / "LLCM")


def test_reader_follows_the_release_layout(tiny):
    ts = llcm.training_set(tiny)
    assert ts.pids == [0, 1] and len(ts.vis) == len(ts.nir) == 8
    assert {r.cam for r in ts.vis} == {1, 2} and ts.vis[0].path.endswith("train_vis/cam1/0003/0003_c1_1.jpg")
    assert llcm.test_ids(tiny) == [7, 9]
    vis = llcm.test_images(tiny, "vis")
    assert [(r.pid, r.cam) for r in vis] == [(7, 1)] * 3 + [(7, 3)] * 2 + [(9, 2)] + [(9, 3)] * 4
    nir = llcm.test_images(tiny, "nir")   # NIR camera 3 is not a test camera of the reference
    assert [(r.pid, r.cam) for r in nir] == [(7, 2)] * 2 + [(9, 1)] * 3


@pytest.mark.parametrize("trial", range(10))
@pytest.mark.parametrize("modality", ["vis", "nir"])
def test_gallery_picks_equal_the_reference_rule(tiny, modality, trial):
    state = random.getstate()
    try:
        expected = reference_gallery(tiny, modality, trial)
    finally:
        random.setstate(state)
    assert [r.path for r in llcm.gallery_set(tiny, modality, trial)] == expected
    assert len(expected) == {"vis": 4, "nir": 2}[modality]   # one per (identity, camera) folder


def test_gallery_picks_leave_the_global_generator_alone(tiny):
    random.seed(123)
    before = random.random()
    random.seed(123)
    llcm.gallery_set(tiny, "vis", 3)
    assert random.random() == before


def test_reader_errors_name_the_file_and_the_fix(tiny, tmp_path):
    with pytest.raises(MaceError, match="is not a directory"):
        llcm.check_root(tmp_path / "nowhere")
    with pytest.raises(MaceError, match="trial must be"):
        llcm.gallery_indices(llcm.test_images(tiny, "vis"), -1)
    (tiny / "idx" / "train_nir.txt").unlink()
    with pytest.raises(MaceError, match="train_nir.txt.*is missing.*fix"):
        llcm.training_set(tiny)
    (tiny / "idx" / "test_id.txt").write_text("7,x\n")
    with pytest.raises(MaceError, match="not a comma-separated list"):
        llcm.test_ids(tiny)
    (tiny / "idx" / "train_vis.txt").write_text("only-a-path\n")
    with pytest.raises(MaceError, match="line 1 is not 'relpath label'"):
        llcm.read_list(tiny, "vis")
    with pytest.raises(MaceError, match="unknown LLCM direction"):
        llcm.check_direction("v2t")


def test_empty_identity_folder_is_an_error(tiny):
    (tiny / "test_vis" / "cam5" / "0009").mkdir(parents=True)
    with pytest.raises(MaceError, match="has no images"):
        llcm.test_images(tiny, "vis")


# ----------------------------------------------------------------------------- the validator
def test_validator_counts_a_clean_tree(tiny):
    rep = check("llcm", tiny)
    c = rep.counts
    assert rep.problems == []
    assert c["training VIS images"] == 8 and c["training identities (labels)"] == 2
    assert c["test VIS images"] == 10 and c["test NIR images"] == 5 and c["test identities (test_id.txt)"] == 2
    assert c["IR->VIS gallery, trial 0 (one VIS image per id and camera)"] == 4
    assert c["VIS->IR gallery, trial 0 (one NIR image per id and camera)"] == 2
    assert c["images (training lists + test folders)"] == 31 and c["identities (training + test)"] == 4
    assert any("differs from the real LLCM release in 4 of 4 figures" in n for n in rep.notes)


def test_validator_names_each_inconsistency_with_its_fix(tiny, capsys):
    (tiny / "train_vis" / "cam2" / "0005" / "0005_c2_1.jpg").unlink()        # listed but absent
    (tiny / "idx" / "test_id.txt").write_text("5,7,9\n")                     # 5 is a training identity
    (tiny / "idx" / "train_nir.txt").unlink()                                # missing index file
    rep = check("llcm", tiny)
    text = "\n".join(rep.problems)
    assert "train_nir.txt" in text and "is missing" in text
    assert "1 training VIS images are listed in idx/train_vis.txt but absent" in text
    assert "both in the training lists and in idx/test_id.txt (first: 0005)" in text
    assert "test identities have no VIS test image (first: 0005)" in text
    assert all("fix:" in p for p in rep.problems)
    code = main(["data", "check", "--dataset", "llcm", "--root", str(tiny), "--decode", "0"])
    out = capsys.readouterr().out
    assert code == 1 and "PROBLEM" in out


def test_validator_names_labels_and_identity_folders_that_disagree(tiny):
    lists = tiny / "idx" / "train_nir.txt"
    # NIR: identity 5's cam2 images labelled 0 (identity 3's label) -> label 0 spans folders 0003 and 0005,
    # and folder 0005 carries labels 0 and 1
    lines = [ln.replace(" 1", " 0") if "cam2/0005" in ln else ln for ln in lists.read_text().splitlines()]
    lists.write_text("\n".join(lines) + "\n")
    text = "\n".join(check("llcm", tiny).problems)
    assert "1 training labels name images of several identity folders (first: label 0: 0003, 0005)" in text
    assert "1 identity folders carry several training labels (first: 0005)" in text


def test_validator_notes_paths_without_identity_folders(tiny):
    (tiny / "flat").mkdir()
    (tiny / "flat" / "x.jpg").write_bytes(b"")
    with open(tiny / "idx" / "train_vis.txt", "a") as fh:
        fh.write("flat/x.jpg 1\n")
    rep = check("llcm", tiny)
    assert rep.problems == [] and rep.counts["training VIS images"] == 9
    assert any(n.startswith("1 training paths have no camK/NNNN folders") for n in rep.notes)


def test_validator_notes_ignored_folders(tiny):
    _touch(tiny / "test_vis" / "cam1" / "0042" / "a.jpg")     # not a test id
    rep = check("llcm", tiny)
    assert rep.problems == []
    assert any("not in idx/test_id.txt (first: test_vis/cam1/0042)" in n for n in rep.notes)
    assert any("test_nir/cam3 holds images" in n for n in rep.notes)


# ----------------------------------------------------------------------------- the synthetic tree
def test_full_size_plan_has_the_release_figures():
    plan = llcm_plan(seed=0, scale=1.0)
    assert (len(plan["train"]), len(plan["test"])) == (LLCM_TRAIN_IDS, LLCM_IDS - LLCM_TRAIN_IDS)
    assert sum(plan["folders"].values()) == LLCM_IMAGES
    assert not set(plan["train"]) & set(plan["test"])
    test_nir = {(p, c) for (s, m, c, p) in plan["folders"] if s == "test" and m == "nir"}
    assert all(c != 3 for _, c in test_nir) and {p for p, _ in test_nir} == set(plan["test"])
    assert llcm_plan(seed=0, scale=1.0) == plan and llcm_plan(seed=1, scale=1.0) != plan


def test_scaled_plan_keeps_two_ids_per_split_and_its_share_of_images():
    plan = llcm_plan(seed=0, scale=0.002)
    assert len(plan["train"]) == 2 and len(plan["test"]) == 2
    assert min(plan["folders"].values()) >= 1


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_like("llcm", tmp_path_factory.mktemp("llcm") / "LLCM", scale=0.01, seed=0, size=(32, 16),
                         workers=1)


def test_synthetic_tree_passes_the_validator(synth):
    rep = check("llcm", synth, decode="all")
    assert rep.problems == []
    assert rep.counts["images (training lists + test folders)"] == round(0.01 * LLCM_IMAGES)
    assert json.loads((synth / "synthetic.json").read_text())["like"] == "llcm"


def test_cli_synth_like_llcm_refuses_structure(tmp_path, capsys):
    code = main(["data", "synth", "--like", "llcm", "--root", str(tmp_path / "x"), "--structure", "s.json"])
    assert code == 2 and "--structure describes SYSU-MM01, not LLCM" in capsys.readouterr().err


# ----------------------------------------------------------------------------- both directions
def test_directions_pick_the_right_sides():
    rng = np.random.default_rng(0)
    vis_f, nir_f = rng.normal(size=(12, 4)), rng.normal(size=(9, 4))
    vis_p, nir_p = np.repeat([1, 2, 3], 4), np.repeat([1, 2, 3], 3)
    vis_c, nir_c = np.tile([1, 1, 2, 3], 3), np.tile([2, 4, 5], 3)
    gv, gn = {0: np.array([0, 2, 3, 4, 6, 7, 8, 10, 11])}, {0: np.array([0, 1, 2, 3, 5, 6, 8])}
    args = (vis_f, vis_p, vis_c, nir_f, nir_p, nir_c, gv, gn)
    i2v = llcm_trials(*args, direction="ir2vis").trials[0]
    ref = evaluate_llcm_features(nir_f, vis_f[gv[0]], nir_p, vis_p[gv[0]], nir_c, vis_c[gv[0]])
    assert i2v["rank1"] == pytest.approx(ref["cmc"][0]) and i2v["mAP"] == pytest.approx(ref["mAP"])
    assert (i2v["query_size"], i2v["gallery_size"]) == (9, 9)
    v2i = llcm_trials(*args, direction="vis2ir").trials[0]
    ref = evaluate_llcm_features(vis_f, nir_f[gn[0]], vis_p, nir_p[gn[0]], vis_c, nir_c[gn[0]])
    assert v2i["mAP"] == pytest.approx(ref["mAP"]) and (v2i["query_size"], v2i["gallery_size"]) == (12, 7)
    deen = llcm_trials(*args, direction="vis2ir", vis2ir="deen").trials[0]
    ref = evaluate_llcm_features(nir_f[gn[0]], vis_f, nir_p[gn[0]], vis_p, nir_c[gn[0]], vis_c)
    assert deen["mAP"] == pytest.approx(ref["mAP"]) and (deen["query_size"], deen["gallery_size"]) == (7, 12)
    with pytest.raises(MaceError, match="VIS->IR setting"):
        llcm_trials(*args, direction="vis2ir", vis2ir="reverse")


def test_train_a_few_steps_and_evaluate_both_directions(synth, tmp_path):
    from _train_helpers import tiny_config

    from mace_core.engine.train import train

    cfg = tiny_config(synth, data={"dataset": "llcm"}, train={"epochs": 1, "steps_per_epoch": 2},
                      eval={"trials": 3})
    results = train(cfg, tmp_path / "run", progress=False)
    m = results["metrics"]
    assert results["dataset"] == "llcm" and results["num_classes"] == 7
    assert m["protocol"]["direction"] == "ir2vis" and len(m["trials"]) == 3
    i2v, v2i = m["directions"]["ir2vis"], m["directions"]["vis2ir"]
    assert i2v["mean"] == m["mean"] and v2i["protocol"]["vis2ir"] == "symmetric"
    n_vis = sum(1 for _ in (synth / "test_vis").rglob("*.jpg"))
    n_nir = sum(1 for p in (synth / "test_nir").rglob("*.jpg"))
    assert {t["query_size"] for t in i2v["trials"]} == {n_nir} and {t["query_size"] for t in v2i["trials"]} == {n_vis}
    for d in (i2v, v2i):
        assert all(0 <= d["mean"][k] <= 1 for k in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP"))
        assert d["mean"]["rank1"] <= d["mean"]["rank5"] <= d["mean"]["rank10"] <= d["mean"]["rank20"]
    # `mace eval` on the checkpoint: the same IR->VIS figures; --vis2ir deen swaps the VIS->IR probe side
    out = tmp_path / "eval.json"
    code = main(["eval", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--trials", "3",
                 "--vis2ir", "deen", "--device", "cpu", "--out", str(out)])
    ev = json.loads(out.read_text())
    assert code == 0 and ev["mean"] == m["mean"]
    deen = ev["directions"]["vis2ir"]
    assert deen["protocol"]["vis2ir"] == "deen" and deen["protocol"]["checkpoint"].endswith("last.pt")
    assert {t["gallery_size"] for t in deen["trials"]} == {n_vis}


def test_study_dry_run_with_an_llcm_root(tmp_path, capsys):
    from mace_core.data.synthetic_like import generate_sysu_like

    sysu = generate_sysu_like(tmp_path / "sysu", scale=0.02, size=(32, 16), workers=1)
    # 9 training identities: the paper config's batch takes 8
    llcm_root = generate_like("llcm", tmp_path / "llcm", scale=0.012, size=(32, 16), workers=1)
    out = tmp_path / "report.json"
    code = main(["study", "dry-run", "--data-root", str(sysu), "--llcm-root", str(llcm_root), "--steps", "1",
                 "--quick-check", "--json", str(out), "--work-dir", str(tmp_path / "run"),
                 "--set", "data.height=32", "--set", "data.width=16", "--set", "data.workers=0"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["stages"][-1]["stage"] == "LLCM: data check, train 1 steps + both directions"
    assert "LLCM: data check" in printed and "VIS->IR" in printed
    llcm_rep = report["llcm"]
    assert llcm_rep["steps"] == 1 and llcm_rep["training_identities"] == 9 and llcm_rep["trials"] == 10
    assert 0 <= llcm_rep["ir2vis"]["rank1"] <= 1 and 0 <= llcm_rep["vis2ir"]["rank1"] <= 1
    assert (tmp_path / "run-llcm" / "results.json").is_file()


# ----------------------------------------------------------------------------- the optional study layer
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_llcm_layer_is_optional(monkeypatch):
    from mace_core.study.variants import LLCM_ROOT_ENV, list_experiments

    monkeypatch.delenv(LLCM_ROOT_ENV, raising=False)
    assert "07_llcm" not in list_experiments(REPO / "params")
    assert "07_llcm" in list_experiments(REPO / "params", optional=True)
    monkeypatch.setenv(LLCM_ROOT_ENV, "/somewhere/LLCM")
    assert list_experiments(REPO / "params")[-1] == "07_llcm"


def test_llcm_root_goes_to_the_llcm_layer_only(monkeypatch, tmp_path):
    from mace_core.study.variants import DATA_ROOT_ENV, LLCM_ROOT_ENV, resolve

    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "sysu"))
    monkeypatch.setenv(LLCM_ROOT_ENV, str(tmp_path / "llcm"))
    for profile in ("ci", "smoke", "paper"):
        v = resolve("07_llcm", "baseline", profile, REPO / "params")
        assert (v.config.data.dataset, v.config.data.root) == ("llcm", str(tmp_path / "llcm"))
        assert resolve("00_baseline", "baseline", profile, REPO / "params").config.data.root == str(tmp_path / "sysu")


@pytest.mark.slow
def test_ci_profile_runs_the_llcm_layer_end_to_end(synth, tmp_path, monkeypatch):
    """The runner with --llcm-root on the ci profile: the 07_llcm notebook executed by papermill,
    both directions on its page, and the chapter in the generated table of contents."""
    import nbformat

    from mace_core.book import build
    from mace_core.study import runner
    from mace_core.study.variants import LLCM_ROOT_ENV

    monkeypatch.chdir(REPO)
    monkeypatch.delenv(LLCM_ROOT_ENV, raising=False)
    books = tmp_path / "book"
    (books / "chapters").mkdir(parents=True)
    for page in ("intro.md", "chapters/07_llcm.md"):
        (books / page).write_text((REPO / "book" / page).read_text())
    report = runner.run_study("ci", REPO / "params", tmp_path / "runs", books, REPO / "notebooks", only="07",
                              llcm_root=str(synth), build=False, prepare_data=False, progress=False,
                              data_root=str(tmp_path / "sysu"))   # its pretraining set goes beside it, not in the repo
    assert report.ok, report.failed
    assert [r["label"] for r in report.executed] == ["07_llcm/baseline"]
    assert len(report.trained) == 1            # the ci profile's second seed, trained by the runner
    assert LLCM_ROOT_ENV not in os.environ     # restored after the study
    page = nbformat.read(books / "generated" / "07_llcm" / "baseline.ipynb", as_version=4)
    html = "".join(str(o.get("data", {}).get("text/html", "")) + o.get("text", "")
                   for c in page.cells for o in c.get("outputs", []))
    assert "IR→VIS" in html and "VIS→IR" in html and "training identities: 7" in html
    toc = build.write_toc(books, {"07_llcm": ["baseline"]}).read_text()
    assert "chapters/07_llcm" in toc and "generated/07_llcm/baseline" in toc


@pytest.fixture(scope="module")
def full_size_tree(tmp_path_factory):
    """The full-size synthetic layout with empty files (counting needs no pixels), on tmpfs when possible."""
    from _data_helpers import fast_tmpdir

    from mace_core.data.synthetic_like import _llcm_folder, _write_llcm_lists

    gen = fast_tmpdir(tmp_path_factory, "llcm-full")
    root = next(gen)
    plan = llcm_plan(seed=0, scale=1.0)
    for (split, mod, cam, pid), n in plan["folders"].items():
        folder = root / _llcm_folder(split, mod, cam, pid)
        folder.mkdir(parents=True)
        for k in range(1, n + 1):
            os.close(os.open(folder / f"{k:04d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    _write_llcm_lists(root, plan)
    yield root
    next(gen, None)


def test_full_size_layout_matches_every_release_figure(full_size_tree):
    rep = check("llcm", full_size_tree, decode=0)
    assert rep.problems == []
    assert any(n.startswith("every figure equals the real LLCM release's") for n in rep.notes), rep.notes
    c = rep.counts
    assert c["IR->VIS queries (every NIR test image)"] == c["test NIR images"] > 0
    assert c["IR->VIS gallery, trial 0 (one VIS image per id and camera)"] == 351 * 4


def test_study_list_shows_the_llcm_layer_only_with_its_root(tmp_path, monkeypatch, capsys):
    from mace_core.study.variants import LLCM_ROOT_ENV

    monkeypatch.chdir(REPO)
    monkeypatch.setenv(LLCM_ROOT_ENV, "")          # restored (removed) after the test
    common = ["study", "list", "--profile", "ci", "--runs-dir", str(tmp_path / "runs"), "--only", "00,07"]
    assert main(common) == 2
    assert "optional layer 07_llcm, which needs its data" in capsys.readouterr().err
    assert main(common[:-1] + ["00"]) == 0
    assert "07_llcm" not in capsys.readouterr().out
    assert main(common + ["--llcm-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "07_llcm/baseline" in out and "00_baseline/baseline" in out

    # --llcm-root reaches the Slurm arrays (issue 23): the manifest carries it to every task, the book job too
    from mace_core.study import slurm

    out = tmp_path / "slurm"
    code = main(["study", "run", "--profile", "ci", "--only", "07", "--runs-dir", str(tmp_path / "runs"),
                 "--book-dir", str(tmp_path / "book"), "--slurm", "--slurm-dir", str(out), "--slurm-gpus", "0",
                 "--slurm-cpus", "1", "--llcm-root", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    manifest = slurm.read_manifest(out / "manifest.json")
    assert manifest["llcm_root"] == str(tmp_path.resolve())
    assert [p for w in manifest["waves"] for p in w["pairs"]][:1] == ["07_llcm/baseline"]
    assert f"--llcm-root {tmp_path.resolve()}" in (out / "book.sbatch").read_text()
    seen = {}

    def fake_execute_one(label, *args):
        seen.update(label=label, llcm=os.environ.get(LLCM_ROOT_ENV))
        return {"label": label, "ok": True, "notebook": "x", "skipped": True}

    monkeypatch.setattr(slurm, "execute_one", fake_execute_one)
    assert main(["study", "exec", "--manifest", str(out / "manifest.json"), "--wave", "0", "--index", "0"]) == 0
    assert seen == {"label": "07_llcm/baseline", "llcm": str(tmp_path.resolve())}


def test_smoke_llcm_tree_is_generated_and_the_label_comes_from_the_data(tmp_path, monkeypatch):
    """Issue 22, point 7: the ci/smoke LLCM layer generates its synthetic tree on first use; the
    data-source label is the data's own (the synthesiser's marker), whatever the profile says."""
    from mace_core.study.variants import LLCM_ROOT_ENV, ensure_synthetic_like, resolve

    monkeypatch.setenv(LLCM_ROOT_ENV, str(tmp_path / "llcm-ci"))
    v = resolve("07_llcm", "baseline", "ci", REPO / "params")
    assert v.config.data.source == "synthetic" and not (tmp_path / "llcm-ci").exists()
    root = ensure_synthetic_like(v)
    assert root == tmp_path / "llcm-ci" and (root / "synthetic.json").is_file()
    assert json.loads((root / "synthetic.json").read_text())["like"] == "llcm"
    assert len(llcm.training_set(root).pids) == 9
    assert ensure_synthetic_like(v) is None                      # there: reused, never rewritten
    # the paper profile on that tree says synthetic (its profile says real)
    assert resolve("07_llcm", "baseline", "paper", REPO / "params").config.data.source == "synthetic"
    # a folder without the marker is real data, on any profile, and is never generated over
    tiny = build_tiny_llcm(tmp_path / "LLCM")
    monkeypatch.setenv(LLCM_ROOT_ENV, str(tiny))
    for profile in ("ci", "smoke", "paper"):
        v = resolve("07_llcm", "baseline", profile, REPO / "params")
        assert v.config.data.source == "real", profile
        assert ensure_synthetic_like(v) is None
    assert not (tiny / "synthetic.json").exists()


def test_llcm_evaluation_loads_and_embeds_as_sysu_does(synth, monkeypatch):
    """Issue 22, point 8: the trainer's LLCM evaluation passes its loader workers, pinned memory,
    autocast and memory format to the embedding, as SYSU-MM01's and RegDB's do."""
    import torch
    from _train_helpers import tiny_config

    from mace_core.engine import evaluate as ev
    from mace_core.engine.train import evaluate

    seen = []

    def fake_embed(model, images, modality, transform, batch_size, device, flip, occlusion=None, *args, **loading):
        seen.append((modality, loading))
        return torch.randn(len(images), 8, generator=torch.Generator().manual_seed(len(seen)))

    monkeypatch.setattr(ev, "embed_images", fake_embed)
    cfg = tiny_config(synth, data={"dataset": "llcm", "workers": 2, "pin_memory": True},
                      train={"channels_last": True, "amp": "bf16"}, eval={"trials": 2})
    metrics = evaluate(torch.nn.Identity(), cfg, torch.device("cpu"))
    assert {m for m, _ in seen} == {"rgb", "ir"} and len(seen) == 2
    for _, loading in seen:
        assert loading == {"workers": 2, "pin_memory": True, "amp": torch.bfloat16,
                           "memory_format": torch.channels_last}
    assert set(metrics["directions"]) == {"ir2vis", "vis2ir"}
