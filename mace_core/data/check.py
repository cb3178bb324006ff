"""Dataset validator behind ``mace data check``: counts from the folder tree, inconsistencies.

Counting never decodes an image (a copy of the tree with empty files counts the same). Decoding is
a separate step: ``decode="all"`` (the CLI's default) decodes every image of the tree in parallel,
so one corrupt JPEG is named before any training; an integer decodes a seeded sample of that many
(``--quick``: 50); 0 decodes none. The report also compares the counts with the real release's.
"""
from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass, field

from mace_core.data import llcm, regdb, sysu
from mace_core.data.images import DECODE_FIX, decode_all
from mace_core.data.records import Record, is_image_name
from mace_core.errors import MaceError

DATASETS = ("sysu", "regdb", "llcm")

# The real releases' figures (SYSU-MM01: release + official splits; RegDB: 412 ids x 10 + 10, trial
# lists of 206 ids), compared with what the tree holds.
SYSU_RELEASE = {"RGB images": 30071, "IR images": 15792, "identities with both modalities": 491,
                "train identities": 296, "val identities": 99, "test identities": 96,
                "training identities (train+val)": 395, "training RGB images": 22258, "training IR images": 11909,
                "queries (IR, test ids)": 3803, "gallery all-search 1-shot": 301, "gallery all-search 10-shot": 3010,
                "gallery indoor-search 1-shot": 112, "gallery indoor-search 10-shot": 1120}
REGDB_RELEASE = {"visible images": 4120, "thermal images": 4120, "identities": 412, "trials with all four lists": 10,
                 "train visible images": 2060, "train visible identities": 206, "train thermal images": 2060,
                 "train thermal identities": 206, "test visible images": 2060, "test visible identities": 206,
                 "test thermal images": 2060, "test thermal identities": 206}


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


def decode_images(paths: list[str], decode, seed: int = 0, workers: int | None = None) -> tuple[int, list[str]]:
    """Decode ``decode`` ("all", or a seeded sample of that many) of ``paths``: (number decoded, problems)."""
    if decode in (None, 0) or not paths:
        return 0, []
    if decode != "all":
        if not isinstance(decode, int) or decode < 0:
            raise MaceError(f"decode must be 'all' or a number of images >= 0, got {decode!r}",
                            "use --decode N, --quick, or neither (every image)")
        paths = random.Random(seed).sample(sorted(paths), min(decode, len(paths)))
    bad = decode_all(sorted(paths), workers)
    if not bad:
        return len(paths), []
    more = f"; {len(bad) - 1} more image(s) cannot be decoded either, first: {bad[1]}" if len(bad) > 1 else ""
    return len(paths), [f"{bad[0]}{more} — fix: {DECODE_FIX}"]


def compare_with_release(rep: Report, release: dict[str, int], name: str) -> None:
    differ = [f"{k} {rep.counts.get(k, 0):,} (release {v:,})" for k, v in release.items() if rep.counts.get(k) != v]
    if not differ:
        rep.notes.append(f"every figure equals the real {name} release's ({', '.join(f'{k} {v:,}' for k, v in list(release.items())[:3])}, ...)")
    else:
        rep.notes.append(f"differs from the real {name} release in {len(differ)} of {len(release)} figures: "
                         + "; ".join(differ[:4]) + ("; ..." if len(differ) > 4 else ""))


def _decoded_note(rep: Report, n: int, decode) -> None:
    if n and not rep.problems:
        rep.notes.append(f"decoded {'every one of the' if decode == 'all' else 'a sample of'} {n:,} images without error")


def check_sysu(root, decode=0, seed: int = 0, workers: int | None = None) -> Report:
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
    compare_with_release(rep, SYSU_RELEASE, "SYSU-MM01")
    paths = [str(root / f"cam{c}" / f"{p:04d}" / n) for c in sysu.ALL_CAMS for p, names in tree[c].items() for n in names]
    n, bad = decode_images(paths, decode, seed, workers)
    rep.problems += bad
    _decoded_note(rep, n, decode)
    return rep


def _regdb_tree(root) -> tuple[dict[str, int], list[str]]:
    """Counts of ``Visible/`` and ``Thermal/`` on disk (every image, listed or not) and their paths."""
    counts, paths, ids = {}, [], set()
    for kind in ("Visible", "Thermal"):
        n = 0
        for entry in sorted(os.listdir(root / kind)):
            folder = root / kind / entry
            if folder.is_dir():
                names = [f for f in os.listdir(folder) if is_image_name(f)]
                n += len(names)
                paths += [str(folder / f) for f in names]
                if names:
                    ids.add(entry)
        counts[f"{kind.lower()} images"] = n
    counts["identities"] = len(ids)
    counts["trials with all four lists"] = sum(
        all((root / "idx" / f"{s}_{k}_{t}.txt").is_file() for s in ("train", "test") for k in ("visible", "thermal"))
        for t in regdb.TRIALS)
    return counts, paths


def check_regdb(root, trial: int = 1, decode=0, seed: int = 0, workers: int | None = None) -> Report:
    root = regdb.check_root(root)
    rep = Report(f"RegDB (trial {trial})", str(root))
    rep.counts, on_disk = _regdb_tree(root)
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
    compare_with_release(rep, REGDB_RELEASE, "RegDB")
    listed = {r.path for r in everything if _exists(r.path)}
    n, bad = decode_images(sorted(listed | set(on_disk)), decode, seed, workers)
    rep.problems += bad
    _decoded_note(rep, n, decode)
    return rep


# LLCM: the figures stated by its authors (ZYK100/LLCM README: 46,767 images of 1,064 identities;
# DEEN test.py: 713 training classes, hence 351 test identities). Per-modality and per-split image
# counts are not in what was read, so they are printed but not compared.
LLCM_RELEASE = {"images (training lists + test folders)": 46767, "identities (training + test)": 1064,
                "training identities (labels)": 713, "test identities (test_id.txt)": 351}


def _llcm_problem(exc: MaceError) -> str:
    return f"{exc.what} — fix: {exc.fix}" if exc.fix else exc.what


def check_llcm(root, decode=0, seed: int = 0, workers: int | None = None) -> Report:
    """LLCM counts and inconsistencies; a missing or broken index file is reported, not raised,
    so that one run names every problem it can."""
    root = llcm.check_root(root)
    rep = Report("LLCM", str(root))
    lists: dict[str, list[Record]] = {}
    for mod in llcm.MODALITIES:
        try:
            lists[mod] = llcm.read_list(root, mod)
        except MaceError as exc:
            rep.problems.append(_llcm_problem(exc))
    try:
        test_ids = llcm.test_ids(root)
    except MaceError as exc:
        rep.problems.append(_llcm_problem(exc))
        test_ids = []
    tests: dict[str, list[Record]] = {}
    if test_ids:
        for mod in llcm.MODALITIES:
            try:
                tests[mod] = llcm.test_images(root, mod)
            except MaceError as exc:
                rep.problems.append(_llcm_problem(exc))

    for mod, recs in lists.items():
        name = mod.upper()
        rep.counts[f"training {name} images"] = len(recs)
        rep.counts[f"training {name} identities (labels)"] = len({r.pid for r in recs})
        missing = [r.path for r in recs if not _exists(r.path)]
        if missing:
            rep.problems.append(f"{len(missing)} training {name} images are listed in {llcm.TRAIN_LISTS[mod]} but absent "
                                f"(first: {missing[0]}) — fix: {llcm.RELEASE_FIX}")
    # The identity folder of each training image (``.../camK/NNNN/file``): labels and folders must
    # correspond one to one, and no folder may also be a test identity.
    by_label: dict[int, set] = {}
    unnamed = 0
    for recs in lists.values():
        for r in recs:
            i = llcm.path_identity(os.path.relpath(r.path, root))
            unnamed += i is None
            if i is not None:
                by_label.setdefault(r.pid, set()).add(i)
    if unnamed:
        rep.notes.append(f"{unnamed} training paths have no camK/NNNN folders: whether their identities are also "
                         "test identities cannot be checked")
    train_path_ids = set().union(*by_label.values()) if by_label else set()
    split = sorted(lab for lab, ids in by_label.items() if len(ids) > 1)
    if split:
        rep.problems.append(f"{len(split)} training labels name images of several identity folders "
                            f"(first: label {split[0]}: {', '.join(f'{i:04d}' for i in sorted(by_label[split[0]]))}) "
                            f"— fix: {llcm.RELEASE_FIX}")
    owners: dict[int, set] = {}
    for lab, ids in by_label.items():
        for i in ids:
            owners.setdefault(i, set()).add(lab)
    shared = sorted(i for i, labs in owners.items() if len(labs) > 1)
    if shared:
        rep.problems.append(f"{len(shared)} identity folders carry several training labels (first: {shared[0]:04d}) "
                            f"— fix: {llcm.RELEASE_FIX}")
    if len(lists) == 2:
        vis_l, nir_l = ({r.pid for r in lists[m]} for m in llcm.MODALITIES)
        rep.counts["training identities (labels)"] = len(vis_l & nir_l)
        if vis_l ^ nir_l:
            rep.notes.append(f"{len(vis_l ^ nir_l)} training labels have images in one modality only "
                             "(no cross-modal pair: left out of training)")
        labels = sorted(vis_l | nir_l)
        if labels != list(range(len(labels))):
            rep.notes.append("training labels are not 0..N-1 (the reference uses them as class indices as they "
                             "are; this reader relabels them in sorted order)")
    rep.counts["test identities (test_id.txt)"] = len(test_ids)
    for mod, recs in tests.items():
        name = mod.upper()
        rep.counts[f"test {name} images"] = len(recs)
        rep.counts[f"test {name} identities"] = len({r.pid for r in recs})
        rep.counts[f"test {name} cameras with images"] = len({r.cam for r in recs})
        lacking = sorted(set(test_ids) - {r.pid for r in recs})
        if lacking:
            rep.problems.append(f"{len(lacking)} test identities have no {name} test image (first: {lacking[0]:04d}) — "
                                f"fix: restore {llcm.TEST_FOLDERS[mod]}/camK/NNNN from the release, or check idx/test_id.txt")
    if len(tests) == 2:
        for direction in llcm.DIRECTIONS:
            q, g = llcm.QUERY_MODALITY[direction], llcm.GALLERY_MODALITY[direction]
            arrow = "IR->VIS" if direction == "ir2vis" else "VIS->IR"
            rep.counts[f"{arrow} queries (every {q.upper()} test image)"] = len(tests[q])
            rep.counts[f"{arrow} gallery, trial 0 (one {g.upper()} image per id and camera)"] = len(
                llcm.gallery_indices(tests[g], 0))
    if test_ids and train_path_ids:
        overlap = sorted(train_path_ids & set(test_ids))
        if overlap:
            rep.problems.append(f"{len(overlap)} identities are both in the training lists and in idx/test_id.txt "
                                f"(first: {overlap[0]:04d}) — fix: {llcm.RELEASE_FIX}")
    if test_ids:
        extra = _llcm_unlisted(root, set(test_ids))
        if extra:
            rep.notes.append(f"{len(extra)} identity folders under test_vis/ or test_nir/ are not in idx/test_id.txt "
                             f"(first: {extra[0]}): the protocol ignores them")
        nir3 = root / llcm.TEST_FOLDERS["nir"] / "cam3"
        if nir3.is_dir() and any(nir3.iterdir()):
            rep.notes.append("test_nir/cam3 holds images: the reference protocol lists no NIR test camera 3 and "
                             "ignores them (so does this reader)")
    n_train = sum(len(v) for v in lists.values())
    n_test = sum(len(v) for v in tests.values())
    rep.counts["images (training lists + test folders)"] = n_train + n_test
    train_ids = train_path_ids or ({r.pid for v in lists.values() for r in v} if lists else set())
    rep.counts["identities (training + test)"] = len(train_ids) + len(set(test_ids) - train_path_ids)
    compare_with_release(rep, LLCM_RELEASE, "LLCM")
    paths = [r.path for v in lists.values() for r in v if _exists(r.path)] + [r.path for v in tests.values() for r in v]
    n, bad = decode_images(sorted(set(paths)), decode, seed, workers)
    rep.problems += bad
    _decoded_note(rep, n, decode)
    return rep


def _llcm_unlisted(root, listed: set[int]) -> list[str]:
    out = []
    for mod in llcm.MODALITIES:
        base = root / llcm.TEST_FOLDERS[mod]
        if not base.is_dir():
            continue
        for cam_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for entry in sorted(os.listdir(cam_dir)):
                if entry.isdigit() and int(entry) not in listed and (cam_dir / entry).is_dir():
                    out.append(f"{llcm.TEST_FOLDERS[mod]}/{cam_dir.name}/{entry}")
    return out


def _exists(path: str) -> bool:
    import os

    return os.path.isfile(path)


def check(dataset: str, root, trial: int = 1, decode=0, seed: int = 0, workers: int | None = None) -> Report:
    if dataset not in DATASETS:
        raise MaceError(f"unknown dataset {dataset!r}", "use --dataset sysu, regdb or llcm")
    if dataset == "llcm":
        return check_llcm(root, decode=decode, seed=seed, workers=workers)
    if dataset == "sysu":
        return check_sysu(root, decode=decode, seed=seed, workers=workers)
    return check_regdb(root, trial=trial, decode=decode, seed=seed, workers=workers)
