"""Model-level evaluation on a tiny synthetic SYSU-MM01 tree with a pixel-pooling stand-in model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mace_core.data.sysu import gallery_candidates, gallery_indices, query_set
from mace_core.data.transforms import test_transform
from mace_core.engine.evaluate import evaluate_sysu_model, extract_features
from mace_core.errors import MaceError
from mace_core.metrics import evaluate_sysu_features

SIZE = (32, 16)


class PoolModel(torch.nn.Module):
    """Stand-in for the MACE network: average-pooled pixels; counts extract calls."""

    def __init__(self):
        super().__init__()
        self.calls = {"rgb": 0, "ir": 0}

    def extract(self, x, modality):
        self.calls[modality] += x.shape[0]
        return torch.nn.functional.adaptive_avg_pool2d(x, (4, 2)).flatten(1)


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
    from mace_core.data.synthetic import generate
    return generate(tmp_path_factory.mktemp("eval") / "sysu", ids=20, images_per_cam=3, seed=0, size=SIZE)


def test_embeds_once_and_matches_the_feature_path(sysu_root, tmp_path):
    model = PoolModel()
    res = evaluate_sysu_model(model, sysu_root, SIZE, trials=3, cache_dir=tmp_path)
    queries, cands = query_set(sysu_root), gallery_candidates(sysu_root)
    assert model.calls == {"ir": len(queries), "rgb": len(cands)}          # no re-extraction per trial
    assert [t["trial"] for t in res.trials] == [0, 1, 2]
    # trial 1 recomputed by hand from the same features
    from mace_core.data.cache import cached_images
    tf = test_transform(SIZE)
    qf = extract_features(PoolModel(), cached_images(queries, SIZE, tmp_path, desc="sysu-query"), "ir", tf)
    gf = extract_features(PoolModel(), cached_images(cands, SIZE, tmp_path, desc="sysu-gallery-all"), "rgb", tf)
    idx = gallery_indices(sysu_root, "all", 1)
    g_p = np.array([cands[i].pid for i in idx])
    g_c = np.array([cands[i].cam for i in idx])
    ref = evaluate_sysu_features(qf, gf[idx], [r.pid for r in queries], g_p, [r.cam for r in queries], g_c)
    assert res.trials[1]["mAP"] == pytest.approx(ref["mAP"]) and res.trials[1]["gallery_size"] == idx.size
    assert res.to_dict()["protocol"]["trials"] == 3


def test_flip_occlusion_and_multi_query(sysu_root, tmp_path):
    base = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path)
    occ = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path, occlusion="upper_body")
    occ2 = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path, occlusion="upper_body")
    assert occ.trials == occ2.trials and occ.trials != base.trials
    mq = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path, multi_query=2,
                             fusion="weighted")
    assert mq.trials[0]["num_queries"] < base.trials[0]["num_queries"]
    imgs = np.random.default_rng(0).integers(0, 256, (3, *SIZE, 3), dtype=np.uint8)
    plain = extract_features(PoolModel(), imgs, "ir", test_transform(SIZE))
    flipped = extract_features(PoolModel(), imgs[:, :, ::-1], "ir", test_transform(SIZE))
    both = extract_features(PoolModel(), imgs, "ir", test_transform(SIZE), flip=True, batch_size=2)
    np.testing.assert_allclose(both, (plain + flipped) / 2, rtol=1e-5, atol=1e-6)


def test_feature_cache_embeds_once_per_setting(sysu_root, tmp_path):
    model, cache = PoolModel(), {}
    single = evaluate_sysu_model(model, sysu_root, SIZE, trials=1, cache_dir=tmp_path, feature_cache=cache)
    calls = dict(model.calls)
    pooled = evaluate_sysu_model(model, sysu_root, SIZE, trials=1, cache_dir=tmp_path, feature_cache=cache,
                                 multi_query=2, fusion="max")
    assert model.calls == calls  # pools and fusion reuse the embedded images
    fresh = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path, multi_query=2, fusion="max")
    assert pooled.trials == fresh.trials and single.trials != pooled.trials
    occluded = evaluate_sysu_model(model, sysu_root, SIZE, trials=1, cache_dir=tmp_path, feature_cache=cache,
                                   occlusion="upper_body")
    assert model.calls["ir"] > calls["ir"]  # another embedding setting is embedded anew (the IR queries)
    assert model.calls["rgb"] == calls["rgb"]  # occlusion touches the queries only: the gallery is reused
    alone = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path, occlusion="upper_body")
    assert occluded.trials == alone.trials and occluded.trials != single.trials


def test_bad_settings_fail_before_embedding(sysu_root, tmp_path):
    model = PoolModel()
    for kwargs, msg in [({"occlusion": "blob"}, "unknown occlusion type"), ({"fusion": "mode"}, "unknown fusion"),
                        ({"multi_query": 0}, ">= 1"), ({"trials": 0}, "trials"),
                        ({"gallery": "official", "perm_file": tmp_path / "none.mat"}, "does not exist")]:
        with pytest.raises(MaceError, match=msg):
            evaluate_sysu_model(model, sysu_root, SIZE, cache_dir=tmp_path, **kwargs)
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file")
    with pytest.raises(MaceError, match="permutation file"):
        evaluate_sysu_model(model, sysu_root, SIZE, cache_dir=tmp_path, gallery="official", perm_file=bad)
    assert model.calls == {"rgb": 0, "ir": 0}


def test_cli_prints_table_and_writes_json(sysu_root, tmp_path, monkeypatch, capsys):
    import json
    from types import SimpleNamespace

    from mace_core.cli import main
    from mace_core.engine import checkpoint

    cfg = SimpleNamespace(data=SimpleNamespace(height=SIZE[0], width=SIZE[1], trial=1, dataset="sysu",
                                               root=str(sysu_root), source="synthetic", workers=0,
                                               pin_memory=False),
                          train=SimpleNamespace(amp="auto", channels_last=True), eval=SimpleNamespace(amp=None))

    def fake_load(path, device, meta):
        meta.update(model_selection=checkpoint.BEST_ON_TEST, epoch=7)
        return PoolModel(), cfg

    monkeypatch.setattr(checkpoint, "load_for_eval", fake_load)
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"x")
    out = tmp_path / "res" / "eval.json"
    rc = main(["eval", "--checkpoint", str(ckpt), "--dataset", "sysu", "--root", str(sysu_root), "--trials", "2",
               "--multi-query", "2", "--fusion", "max", "--occlusion", "left_half", "--cache-dir", str(tmp_path),
               "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "R1" in printed and "mINP" in printed and "±" in printed
    data = json.loads(out.read_text())
    assert len(data["trials"]) == 2 and data["protocol"]["multi_query"] == 2 and data["protocol"]["occlusion"] == "left_half"
    # the selection rule and data source travel with the numbers, on screen and in the JSON
    assert checkpoint.BEST_ON_TEST in printed and "synthetic" in printed
    assert data["protocol"]["model_selection"] == checkpoint.BEST_ON_TEST and data["protocol"]["checkpoint_epoch"] == 7
    # dataset and root default to the checkpoint's; the JSON lands in RUN_DIR/eval/ without --out
    run_ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    run_ckpt.parent.mkdir(parents=True)
    run_ckpt.write_bytes(b"x")
    rc = main(["eval", "--checkpoint", str(run_ckpt), "--trials", "1", "--cache-dir", str(tmp_path), "--device", "cpu"])
    assert rc == 0
    written = sorted((tmp_path / "run" / "eval").iterdir())
    assert [p.name for p in written] == ["sysu-all-agw-1shot-last.json"] and str(written[0]) in capsys.readouterr().out
    # SYSU-only flags are refused for RegDB instead of being silently ignored
    rc = main(["eval", "--checkpoint", str(ckpt), "--dataset", "regdb", "--root", str(tmp_path), "--multi-query", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and "--multi-query" in err and "SYSU-MM01 only" in err
    # bad input: one line on stderr, exit status 2
    rc = main(["eval", "--checkpoint", str(tmp_path / "missing.pt"), "--dataset", "sysu", "--root", str(sysu_root)])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    rc = main(["eval", "--checkpoint", str(ckpt), "--dataset", "sysu", "--root", str(sysu_root), "--multi-query", "0",
               "--cache-dir", str(tmp_path), "--device", "cpu"])
    assert rc == 2 and ">= 1" in capsys.readouterr().err


class ModalityShiftModel(PoolModel):
    """Pooled pixels, IR features shifted by a constant: same-identity pairs stay nearest in Euclidean
    distance only if the protocol compares the right modalities."""

    def extract(self, x, modality):
        f = super().extract(x, modality)
        return f + 0.01 if modality == "ir" else f


@pytest.mark.parametrize("direction", ["v2t", "t2v"])
def test_regdb_model_path_both_directions(tmp_path, direction):
    from tests._data_helpers import build_tiny_regdb

    from mace_core.engine.evaluate import evaluate_regdb_model

    # Uniform images whose grey level encodes (identity, image): the nearest other-modality image
    # is always one of the same identity, so every metric is 1 in both directions.
    root = build_tiny_regdb(tmp_path / "regdb", ids=8, images=3)
    model = ModalityShiftModel()
    res = evaluate_regdb_model(model, root, SIZE, trial=1, direction=direction, distance="euclidean",
                               cache_dir=tmp_path / "cache")
    assert res.protocol["direction"] == direction and len(res.trials) == 1
    assert res.mean["rank1"] == pytest.approx(1.0) and res.mean["mAP"] == pytest.approx(1.0)
    assert model.calls == {"rgb": 4 * 3, "ir": 4 * 3}   # the 4 test identities, each modality embedded once
    with pytest.raises(MaceError, match="direction"):
        evaluate_regdb_model(model, root, SIZE, trial=1, direction="sideways", cache_dir=tmp_path / "cache")


def test_sysu_reverse_direction(sysu_root, tmp_path):
    import random

    from mace_core.data.sysu import IR_CAMS

    model = PoolModel()
    res = evaluate_sysu_model(model, sysu_root, SIZE, trials=2, cache_dir=tmp_path, direction="rgb2ir")
    ir, rgb = query_set(sysu_root), gallery_candidates(sysu_root)
    assert model.calls == {"rgb": len(rgb), "ir": len(ir)}          # each side embedded once
    assert res.protocol["direction"] == "rgb2ir" and "non_standard" in res.protocol
    assert res.trials[0]["num_queries"] == len(rgb)
    # the IR gallery: the same seeded rule over IR folders, one image per identity and IR camera
    idx = gallery_indices(sysu_root, "all", 1, modality="ir")
    folders = sorted({(r.pid, r.cam) for r in ir})
    assert len(idx) == len(folders) == res.trials[1]["gallery_size"]
    assert [(ir[i].pid, ir[i].cam) for i in idx] == folders and {ir[i].cam for i in idx} == set(IR_CAMS)
    rng, expected = random.Random(1), []
    for pid, cam in folders:   # replay: one choice per folder, folders in (identity, camera) order
        expected.append(rng.choice([i for i, r in enumerate(ir) if (r.pid, r.cam) == (pid, cam)]))
    assert idx.tolist() == expected
    # trial 1 by hand: RGB queries, IR gallery, camera-2 queries ignore camera-3 items
    from mace_core.data.cache import cached_images
    tf = test_transform(SIZE)
    qf = extract_features(PoolModel(), cached_images(rgb, SIZE, tmp_path, desc="sysu-gallery-all"), "rgb", tf)
    gf = extract_features(PoolModel(), cached_images(ir, SIZE, tmp_path, desc="sysu-query"), "ir", tf)
    ref = evaluate_sysu_features(qf, gf[idx], [r.pid for r in rgb], [ir[i].pid for i in idx], [r.cam for r in rgb],
                                 [ir[i].cam for i in idx], same_room=(2, 3))
    assert res.trials[1]["mAP"] == pytest.approx(ref["mAP"]) and res.trials[1]["rank1"] == pytest.approx(ref["cmc"][0])
    # indoor-search: the mode picks the RGB cameras (1, 2) on the query side; the IR gallery is unchanged
    indoor = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path, mode="indoor",
                                 direction="rgb2ir")
    assert indoor.trials[0]["num_queries"] == len(gallery_candidates(sysu_root, "indoor")) < len(rgb)
    assert indoor.trials[0]["gallery_size"] == res.trials[0]["gallery_size"]
    with pytest.raises(MaceError, match="modality"):
        gallery_indices(sysu_root, "all", 0, modality="thermal")
    # the standard direction is the default and is labelled as such
    std = evaluate_sysu_model(PoolModel(), sysu_root, SIZE, trials=1, cache_dir=tmp_path)
    assert std.protocol["direction"] == "ir2rgb" and "non_standard" not in std.protocol
    assert std.trials[0]["num_queries"] == len(ir)


def test_sysu_unknown_direction_and_rerank(sysu_root, tmp_path):
    model = PoolModel()
    with pytest.raises(MaceError, match="does not define the search direction 'v2t'.*ir2rgb, rgb2ir"):
        evaluate_sysu_model(model, sysu_root, SIZE, trials=1, cache_dir=tmp_path, direction="v2t")
    assert model.calls == {"rgb": 0, "ir": 0}
    res = evaluate_sysu_model(model, sysu_root, SIZE, trials=2, cache_dir=tmp_path,
                              rerank={"k1": 20, "k2": 6, "lambda": 0.3})
    d = res.to_dict()
    assert d["reranked"] and d["protocol"]["rerank"]["k2"] == 6 and all(t["reranked"] for t in d["trials"])
    assert "re-ranked" in res.table("x")


def test_cli_direction_and_rerank(sysu_root, tmp_path, monkeypatch, capsys):
    import json
    from types import SimpleNamespace

    from mace_core.cli import main
    from mace_core.engine import checkpoint

    cfg = SimpleNamespace(data=SimpleNamespace(height=SIZE[0], width=SIZE[1], trial=1, dataset="sysu",
                                               root=str(sysu_root), source="synthetic", workers=0, pin_memory=False),
                          train=SimpleNamespace(channels_last=False, amp="off"), eval=SimpleNamespace(amp=None))
    loads = []

    def fake_load(path, device, meta):
        loads.append(path)
        meta.update(model_selection="final epoch", epoch=3)
        return PoolModel(), cfg

    monkeypatch.setattr(checkpoint, "load_for_eval", fake_load)
    run_ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    run_ckpt.parent.mkdir(parents=True)
    run_ckpt.write_bytes(b"x")
    common = ["eval", "--checkpoint", str(run_ckpt), "--trials", "1", "--cache-dir", str(tmp_path), "--device", "cpu"]
    assert main(common + ["--direction", "rgb2ir", "--rerank"]) == 0
    printed = capsys.readouterr().out
    assert "re-ranked (k1=20, k2=6, λ=0.3)" in printed
    out = tmp_path / "run" / "eval" / "sysu-all-agw-1shot-rgb2ir-reranked-last.json"
    data = json.loads(out.read_text())
    assert data["reranked"] is True and data["protocol"]["direction"] == "rgb2ir"
    # a direction the dataset does not define: one clear line naming the valid ones, before loading
    n = len(loads)
    assert main(common + ["--dataset", "sysu", "--direction", "t2v"]) == 2
    err = capsys.readouterr().err
    assert "ir2rgb, rgb2ir" in err and len(err.strip().splitlines()) == 1 and len(loads) == n
    assert main(common + ["--direction", "v2t"]) == 2        # the checkpoint's dataset (sysu) decides
    assert "ir2rgb, rgb2ir" in capsys.readouterr().err
    assert main(common + ["--rerank", "--rerank-lambda", "2"]) == 2
    assert "rerank_lambda" in capsys.readouterr().err


# ---------------------------------------------------------------- batched loader path == per-image path
@pytest.fixture
def one_thread():
    """One kernel schedule for both paths."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _per_image_features(model, images_uint8, modality, size, batch_size, flip=False, occlusion=None, seed=0):
    """The former path: each image transformed on its own (occlusion, then test_transform), stacked,
    embedded, copied back per batch."""
    from mace_core.data.datasets import to_chw
    from mace_core.occlusion import image_rng, occlude

    tf = test_transform(size)
    chunks = []
    with torch.inference_mode():
        for lo in range(0, len(images_uint8), batch_size):
            batch = []
            for i in range(lo, min(lo + batch_size, len(images_uint8))):
                img = to_chw(images_uint8[i])
                if occlusion is not None:
                    img = occlude(img, occlusion, rng=image_rng(seed, i))
                batch.append(tf(img))
            x = torch.stack(batch)
            f = model.extract(x, modality).float()
            if flip:
                f = (f + model.extract(torch.flip(x, dims=[3]), modality).float()) / 2
            chunks.append(f.cpu())
    return torch.cat(chunks).numpy()


@pytest.mark.parametrize("workers, channels_last", [(0, False), (2, True)])
def test_loader_evaluation_equals_per_image_evaluation(sysu_root, tmp_path, workers, channels_last, one_thread):
    from _models_helpers import tiny_model

    from mace_core.data.cache import cached_images
    from mace_core.engine.retrieval import sysu_trials

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = tiny_model(num_classes=20).to(memory_format=fmt).eval()  # a real MACE network, as trained
    queries, cands = query_set(sysu_root), gallery_candidates(sysu_root)
    q_img = cached_images(queries, SIZE, tmp_path, desc="sysu-query")
    g_img = cached_images(cands, SIZE, tmp_path, desc="sysu-gallery-all")
    loading = {"workers": workers, "memory_format": fmt}
    for flip, occlusion in ((False, None), (True, "upper_body")):
        new = extract_features(model, q_img, "ir", test_transform(SIZE), 7, "cpu", flip, occlusion, **loading)
        old = _per_image_features(model, q_img, "ir", SIZE, 7, flip, occlusion)
        assert new.dtype == np.float32 and np.array_equal(new, old)  # bit for bit on CPU
    res = evaluate_sysu_model(model, sysu_root, SIZE, trials=2, cache_dir=tmp_path, batch_size=7, **loading)
    qf = _per_image_features(model, q_img, "ir", SIZE, 7)
    gf = _per_image_features(model, g_img, "rgb", SIZE, 7)
    galleries = {t: gallery_indices(sysu_root, "all", t) for t in range(2)}
    ref = sysu_trials(qf, [r.pid for r in queries], [r.cam for r in queries], gf, [r.pid for r in cands],
                      [r.cam for r in cands], galleries)
    assert res.trials == ref.trials  # every metric of every trial identical


def test_embedding_stays_on_the_device_and_memmaps_travel_by_name(sysu_root, tmp_path):
    import pickle

    from mace_core.data.cache import cached_images
    from mace_core.engine.evaluate import EvalImages, embed_images

    imgs = cached_images(query_set(sysu_root), SIZE, tmp_path, desc="sysu-query")
    feats = embed_images(PoolModel(), imgs, "ir", test_transform(SIZE), batch_size=5)
    assert isinstance(feats, torch.Tensor) and feats.shape == (len(imgs), 3 * 4 * 2) and feats.dtype == torch.float32
    ds = EvalImages(imgs, test_transform(SIZE).prepare)
    wire = pickle.dumps(ds)
    assert len(wire) < imgs.nbytes // 10  # the pixels are not in the pickle ...
    back = pickle.loads(wire)
    assert isinstance(back.images, np.memmap) and torch.equal(back[3], ds[3])  # ... the file is reopened
    assert back[3].dtype == torch.uint8  # prepare keeps uint8: normalisation happens on the device
    part = EvalImages(np.ascontiguousarray(imgs[:4]), test_transform(SIZE).prepare)  # a plain array travels whole
    assert torch.equal(pickle.loads(pickle.dumps(part))[2], part[2])
