"""Dataset validator behind ``mace data check``: counts from the folder tree, inconsistencies.

Counting never decodes an image (a copy of the tree with empty files counts the same); decoding
is a separate, sampled check (``decode`` images, seeded) because reading 46k JPEGs takes minutes.
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field

from mace_core.data import regdb, sysu
from mace_core.data.records import Record
from mace_core.errors import MaceError

DATASETS = ("sysu", "regdb")


@dataclass
class Report:
    """What the validator found: ordered ``counts`` (name → number) and ``problems`` (text)."""

    dataset: str
    root: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.dataset} dataset at {self.root}"]
        width = max((len(k) for k in self.counts), default=0)
        out += [f"  {k:<{width}}  {v:>7,}" for k, v in self.counts.items()]
        out += [f"  note: {n}" for n in self.notes]
        out += [f"  PROBLEM: {p}" for p in self.problems] or ["  no inconsistency found"]
        return out


def decode_sample(records: list[Record], n: int, seed: int = 0) -> int:
    """Decode ``n`` seeded-random images; a missing or corrupt one raises MaceError naming it."""
    from PIL import Image

    if n <= 0 or not records:
        return 0
    picks = random.Random(seed).sample(records, min(n, len(records)))
    for r in picks:
        try:
            with Image.open(r.path) as im:
                im.convert("RGB").load()
        except Exception as exc:
            raise MaceError(f"image {r.path!r} cannot be decoded ({type(exc).__name__}: {exc})",
                            "re-extract this file from the dataset archive") from None
    return len(picks)


def check_sysu(root, decode: int = 0, seed: int = 0) -> Report:
    root = sysu.check_root(root)
    tree = sysu.scan(root)
    rep = Report("SYSU-MM01", str(root))
    for cam in sysu.ALL_CAMS:
        kind = "RGB" if cam in sysu.RGB_CAMS else "IR"
        rep.counts[f"cam{cam} ({kind}) images"] = sum(len(v) for v in tree[cam].values())
        rep.counts[f"cam{cam} ({kind}) identities"] = len(tree[cam])
    rgb_ids = set().union(*(tree[c] for c in sysu.RGB_CAMS))
    ir_ids = set().union(*(tree[c] for c in sysu.IR_CAMS))
    rep.counts["RGB images"] = sum(rep.counts[f"cam{c} (RGB) images"] for c in sysu.RGB_CAMS)
    rep.counts["IR images"] = sum(rep.counts[f"cam{c} (IR) images"] for c in sysu.IR_CAMS)
    rep.counts["identities with both modalities"] = len(rgb_ids & ir_ids)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = {name: sysu.read_split(root, name) for name in sysu.SPLITS}
        train = sysu.training_set(root, include_val=True)
    rep.notes += [str(w.message) for w in caught]
    for name, ids in splits.items():
        rep.counts[f"{name} identities"] = len(ids)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = set(splits[a]) & set(splits[b])
        if both:
            rep.problems.append(f"{len(both)} identities are in both {a} and {b} (first: {sorted(both)[:5]})")
    for name, ids in splits.items():
        lacking = sorted(set(ids) - (rgb_ids & ir_ids))
        if lacking:
            rep.problems.append(f"{len(lacking)} {name} identities lack RGB or IR images (first: {lacking[:5]})")
    rep.counts["training identities (train+val)"] = len(train.pids)
    rep.counts["training RGB images"] = len(train.rgb)
    rep.counts["training IR images"] = len(train.ir)
    queries = sysu.query_set(root)
    rep.counts["queries (IR, test ids)"] = len(queries)
    for mode in sysu.MODES:
        for shots in (1, 10):
            rep.counts[f"gallery {mode}-search {shots}-shot"] = len(
                sysu.gallery_indices(root, mode, trial=0, shots=shots, method="agw"))
    no_indoor = sorted(set(splits["test"]) - set(tree[1]) - set(tree[2]))
    if no_indoor:
        rep.notes.append(f"{len(no_indoor)} test identities have no cam1/cam2 image: their queries have "
                         "no match in indoor search and are skipped there")
    if decode:
        n = decode_sample(train.rgb + train.ir + queries, decode, seed)
        rep.notes.append(f"decoded {n} sampled images without error")
    return rep


def check_regdb(root, trial: int = 1, decode: int = 0, seed: int = 0) -> Report:
    root = regdb.check_root(root)
    rep = Report(f"RegDB (trial {trial})", str(root))
    everything: list[Record] = []
    for split in ("train", "test"):
        vis, th = regdb.regdb_split(root, trial, split)
        everything += vis + th
        for kind, recs in (("visible", vis), ("thermal", th)):
            rep.counts[f"{split} {kind} images"] = len(recs)
            rep.counts[f"{split} {kind} identities"] = len({r.pid for r in recs})
            missing = [r.path for r in recs if not _exists(r.path)]
            if missing:
                rep.problems.append(f"{len(missing)} {split} {kind} files listed but absent (first: {missing[0]})")
        if {r.pid for r in vis} != {r.pid for r in th}:
            rep.problems.append(f"{split} visible and thermal lists name different identities")
    if decode:
        n = decode_sample(everything, decode, seed)
        rep.notes.append(f"decoded {n} sampled images without error")
    return rep


def _exists(path: str) -> bool:
    import os

    return os.path.isfile(path)


def check(dataset: str, root, trial: int = 1, decode: int = 0, seed: int = 0) -> Report:
    if dataset not in DATASETS:
        raise MaceError(f"unknown dataset {dataset!r}", "use --dataset sysu or --dataset regdb")
    if dataset == "sysu":
        return check_sysu(root, decode=decode, seed=seed)
    return check_regdb(root, trial=trial, decode=decode, seed=seed)
