"""Fake run records for the table and finding tests (the fields load_results' RunResult carries)."""
from types import SimpleNamespace

from mace_core.config import RunConfig


def fake_run(variant="baseline", seed=0, r1=40.0, mAP=30.0, source="synthetic", selection="final epoch",
             trial_std=1.0, **cfg_changes):
    """One run whose results.json says Rank-1 ``r1`` % and mAP ``mAP`` % (means over its gallery trials)."""
    cfg = RunConfig()
    cfg.data.source = source
    cfg.train.seed = seed
    for dotted, value in cfg_changes.items():
        section, key = dotted.split("__")
        setattr(getattr(cfg, section), key, value)
    mean = {"rank1": r1 / 100, "rank5": min(1.0, (r1 + 20) / 100), "rank10": min(1.0, (r1 + 30) / 100),
            "rank20": min(1.0, (r1 + 40) / 100), "mAP": mAP / 100, "mINP": mAP / 200}
    std = {k: trial_std / 100 for k in mean}
    results = {"metrics": {"mean": mean, "std": std}, "train_time_s": 90.0 + seed, "parameters": 2_900_000,
               "selected_epoch": 12, "model_selection": selection, "data_source": source}
    return SimpleNamespace(variant=variant, seed=seed, config=cfg, results=results)


def seeded(variant, r1s, maps=None, **kw):
    """One fake run per seed 0, 1, ... with the given Rank-1 values."""
    maps = maps or [v - 10 for v in r1s]
    return [fake_run(variant, seed=s, r1=r, mAP=m, **kw) for s, (r, m) in enumerate(zip(r1s, maps))]


def with_identities(results, r1_by_id, queries=10):
    """``results`` plus one gallery trial with its per-identity Rank-1 hits (as the evaluator stores them)."""
    hits = [int(round(r / 100 * queries)) for r in r1_by_id]
    trial = {"rank1": sum(hits) / (queries * len(hits)), "mAP": 0.2,
             "per_identity": {"pid": list(range(len(hits))), "queries": [queries] * len(hits), "rank1_hits": hits}}
    block = results.get("metrics", results)
    block["trials"] = [trial]
    return results
