"""Where the noise of a test-time occlusion drop comes from, measured on an executed study (issue 20).

    python benchmarks/occlusion_drop_variance.py [--profile smoke] [--runs-dir runs] [--draws 4]

Experiment 6 tests each trained model's Rank-1 drop under an occluded IR query (clean minus occluded,
all-search, the run's own evaluation settings). Its interval resamples the test identities, because
the drop is a claim about people. This script asks which part of that noise more seeds, gallery trials,
queries or occlusion draws could remove, and how many test identities a given detectable difference
would need.

For every model of experiment 6 (each variant, each training seed) it embeds the IR queries clean and
under each occlusion type with ``--draws`` occlusion seeds (the evaluation uses draw 0), and records
for every query and gallery trial whether its nearest gallery image (the SYSU-MM01 all-search rule: no
camera-2 gallery image for a camera-3 query) is the right person. The trial means are checked against
``mace_core.metrics.evaluate_sysu_features``. Then, per variant and type, with
``d[seed, draw, trial, query]`` = clean hit - occluded hit:

* the per-query mean drop (over seeds, trials, draws) and each identity's mean over its queries;
* the sd of the identity means, and the part of it that is sampling of queries and draws within an
  identity (their within-identity variance / queries per identity); the rest is the identities
  themselves, which only more test identities average out;
* the se of the mean drop over identities, and the identities a detectable difference of ``--target``
  pp would need at 80 % power, at α = 0.05 and at the chapter's Holm α (normal approximation);
* the per-seed drop (on these test people) and its sd: the noise if the test set were held fixed.

Writes ``benchmarks/results/occlusion_drop_variance.json`` and prints a table (methods page, "How
many seeds").
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))   # run as `python benchmarks/<script>.py` from a checkout

KINDS = ("random_rect", "horizontal_band", "upper_body", "lower_body")


def identity_means(values: np.ndarray, pids: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-identity means of per-query ``values``, the mean within-identity variance of the queries
    (ddof 1) and the mean number of queries per identity."""
    ids = np.unique(pids)
    groups = [values[pids == i] for i in ids]
    if any(len(g) < 2 for g in groups):
        raise ValueError("every identity needs at least two queries to split its variance")
    return (np.array([g.mean() for g in groups]), float(np.mean([g.var(ddof=1) for g in groups])),
            float(np.mean([len(g) for g in groups])))


def identities_needed(sd_identity: float, target: float, alpha: float, power: float = 0.8) -> int:
    """Test identities for which ``(z(1 - α/2) + z(power)) · sd / √n <= target`` (normal approximation)."""
    from scipy.stats import norm

    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    return math.ceil(((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd_identity / target) ** 2)


def decompose(drops: np.ndarray, pids: np.ndarray, target: float, alphas: dict[str, float]) -> dict:
    """Variance parts of the mean drop. ``drops``: ``(seeds, draws, trials, queries)`` clean minus
    occluded hits (0/1 differences); ``pids``: the queries' identities. Values in percentage points."""
    drops = np.asarray(drops, float)
    if drops.ndim != 4 or drops.shape[-1] != len(pids):
        raise ValueError("drops must be (seeds, draws, trials, queries) with one pid per query")
    per_query = drops.mean(axis=(0, 1, 2))
    means, within, per_id = identity_means(per_query, np.asarray(pids))
    first_draw, within1, _ = identity_means(drops[:, :1].mean(axis=(0, 1, 2)), np.asarray(pids))
    var_ids = means.var(ddof=1)
    identities = math.sqrt(max(var_ids - within / per_id, 0.0))
    per_seed = drops[:, 0].mean(axis=(1, 2))
    out = {"mean_drop": 100 * means.mean(), "identities": len(means), "queries_per_identity": per_id,
           "draws": drops.shape[1], "seeds": drops.shape[0], "trials": drops.shape[2],
           "sd_identity_means": 100 * math.sqrt(var_ids),
           "sd_identity_means_one_draw": 100 * float(first_draw.std(ddof=1)),
           "sd_queries_within_identity": 100 * math.sqrt(within),
           "sd_queries_within_identity_one_draw": 100 * math.sqrt(within1),
           "sampling_part": 100 * math.sqrt(within / per_id),
           "sd_identities_themselves": 100 * identities,
           "se_mean_drop": 100 * math.sqrt(var_ids / len(means)),
           "per_seed_drop": [100 * float(v) for v in per_seed],
           "sd_per_seed_drop": 100 * float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
           "target_pp": target}
    for name, alpha in alphas.items():
        out[f"identities_for_target_{name}"] = identities_needed(identities, target / 100, alpha)
    return out


def query_hits(run, draws: int, kinds=KINDS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``{"clean": (trials, Q), kind: (draws, trials, Q)}`` 0/1 Rank-1 hits of ``run``'s model, and the pids."""
    import torch

    from mace_core.data.cache import cached_images
    from mace_core.data.sysu import gallery_candidates, gallery_indices, query_set
    from mace_core.data.transforms import test_transform
    from mace_core.engine.device import eval_amp_dtype, resolve_device
    from mace_core.engine.evaluate import embed_images
    from mace_core.metrics import SYSU_SAME_ROOM, evaluate_sysu_features

    cfg, ev = run.config, run.config.eval
    if ev.mode != "all" or (ev.direction or "ir2rgb") != "ir2rgb" or ev.multi_query or ev.rerank:
        raise SystemExit(f"{run.run_dir}: this measurement covers all-search IR->RGB single queries only")
    root, size = cfg.data.root, (cfg.data.height, cfg.data.width)
    queries, candidates = query_set(root, "all"), gallery_candidates(root, "all")
    galleries = [np.asarray(gallery_indices(root, "all", t, ev.shots, ev.gallery, ev.perm_file, modality="rgb",
                                            candidates=candidates), np.int64) for t in range(ev.trials)]
    q_img = cached_images(queries, size, cfg.data.cache_dir, desc="sysu-query")
    g_img = cached_images(candidates, size, cfg.data.cache_dir, desc="sysu-gallery-all")
    q_pids = np.array([r.pid for r in queries]); q_cams = np.array([r.cam for r in queries])
    g_pids = np.array([r.pid for r in candidates]); g_cams = np.array([r.cam for r in candidates])
    device = resolve_device(cfg.train.device)
    model, _ = run.load_model(device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    loading = {"amp": eval_amp_dtype(cfg, device), "memory_format": memory_format}
    transform = test_transform(size)

    def embed(images, modality, occlusion=None, seed=0):
        f = embed_images(model, images, modality, transform, ev.batch_size, device, ev.flip, occlusion,
                         ev.occlusion_fill, seed, **loading).float()
        return torch.nn.functional.normalize(f, dim=1).cpu().numpy()

    gallery = embed(g_img, "rgb")
    room_q, room_g = SYSU_SAME_ROOM

    def hits(qf):
        out = np.zeros((len(galleries), len(qf)), np.int8)
        for t, idx in enumerate(galleries):
            sim = qf @ gallery[idx].T
            sim[(q_cams[:, None] == room_q) & (g_cams[idx][None, :] == room_g)] = -np.inf
            out[t] = g_pids[idx][sim.argmax(1)] == q_pids
        return out

    def check(qf, h):   # the protocol's own Rank-1 of the same features, trial by trial
        for t, idx in enumerate(galleries):
            r = evaluate_sysu_features(qf, gallery[idx], q_pids, g_pids[idx], q_cams, g_cams[idx])
            if abs(r["cmc"][0] - h[t].mean()) > 1.5 / len(qf):   # one tie broken the other way at most
                raise SystemExit(f"per-query hits disagree with the protocol: trial {t}, {h[t].mean()} vs {r['cmc'][0]}")

    clean = embed(q_img, "ir")
    out = {"clean": hits(clean)}
    check(clean, out["clean"])
    for kind in kinds:
        feats = [embed(q_img, "ir", kind, s) for s in range(draws)]
        out[kind] = np.stack([hits(f) for f in feats])
        check(feats[0], out[kind][0])
    return out, q_pids


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--params-dir", default="params")
    parser.add_argument("--draws", type=int, default=4, help="occlusion seeds per query (the study uses seed 0)")
    parser.add_argument("--target", type=float, default=3.0, help="detectable difference to size for (pp)")
    parser.add_argument("--variants", nargs="*", default=None, help="experiment 6 variants (default: all)")
    parser.add_argument("--out", default=str(HERE / "results" / "occlusion_drop_variance.json"))
    args = parser.parse_args(argv)

    import torch

    from mace_core.analysis.occlusion_tables import occlusion_comparisons
    from mace_core.study.api import load_results, occlusion_evals
    from mace_core.utils.atomic import atomic_write_json

    torch.set_num_threads(1)
    runs = load_results("06_occlusion", args.profile, args.params_dir, args.runs_dir)
    if args.variants:
        runs = [r for r in runs if r.variant in args.variants]
    if not runs:
        raise SystemExit(f"no completed experiment-6 runs of profile {args.profile!r} under {args.runs_dir}: "
                         "run `make study` (or `mace study run`) first")
    comparisons = occlusion_comparisons(runs, occlusion_evals(runs))   # the stored evaluations: nothing retrained
    if isinstance(comparisons, str):
        raise SystemExit(comparisons)
    family = next(iter(comparisons[0].values())).family                  # the chapter's Holm family
    alphas = {"alpha_0.05": 0.05, f"holm_first_step_alpha_0.05/{family}": 0.05 / family}
    report = {"profile": args.profile, "draws": args.draws, "chapter_family_size": family, "variants": {}}
    hits: dict[str, dict[int, dict]] = {}
    for run in sorted(runs, key=lambda r: (r.variant, r.seed)):
        t0 = time.perf_counter()
        h, pids = query_hits(run, args.draws)
        hits.setdefault(run.variant, {})[run.seed] = h
        print(f"{run.variant} seed {run.seed}: clean Rank-1 {100 * h['clean'].mean():.1f} % "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    for variant, by_seed in hits.items():
        seeds = sorted(by_seed)
        clean = np.stack([by_seed[s]["clean"] for s in seeds]).astype(float)[:, None]
        report["variants"][variant] = {kind: decompose(clean - np.stack([by_seed[s][kind] for s in seeds]), pids,
                                                       args.target, alphas) for kind in KINDS}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), report)
    print(f"\n{'variant':34s} {'type':16s} drop  sd(ids) sampling  ids-themselves  se   per-seed sd  ids for "
          f"{args.target:g} pp (α=0.05 / Holm)")
    for variant, kinds in report["variants"].items():
        for kind, r in kinds.items():
            need = [r[f"identities_for_target_{a}"] for a in alphas]
            print(f"{variant:34s} {kind:16s} {r['mean_drop']:5.1f} {r['sd_identity_means']:6.1f} "
                  f"{r['sampling_part']:7.1f} {r['sd_identities_themselves']:12.1f} {r['se_mean_drop']:7.2f} "
                  f"{r['sd_per_seed_drop']:8.2f}      {need[0]} / {need[1]}")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
