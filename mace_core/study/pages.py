"""The book pages generated from the study's stored runs, never training or evaluating: results at a
glance (``generated/overview.md``: every experiment's headline beside the thesis's) and the runs table
(``generated/runs.md``, included by the reproducibility page). The book build is :mod:`mace_core.book.build`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from mace_core.book.build import GENERATED, page_exists
from mace_core.errors import MaceError
from mace_core.study import registry
from mace_core.utils.atomic import atomic_write_text


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _weights_cell(weights: Any) -> str:
    """The starting weights as results.json records them, short: a timm tag, ``file NAME sha256:0123456789ab…``
    (12 hex digits), ``none``; ``n/a`` for runs recorded before the field existed."""
    if not weights:
        return "n/a"
    text = str(weights)
    head, sep, digest = text.partition(" sha256:")
    return f"{head}{sep}{digest[:12]}…" if sep and len(digest) > 12 else text


def write_runs_table(book_dir: str | Path, run_dirs: Iterable[Path]) -> Path:
    """``generated/runs.md``: one row per run (hashes, code version, versions, hardware, timings),
    included by the reproducibility page."""
    rows, packages, profiles, codes, commits, devices = [], {}, set(), set(), set(), set()
    for run_dir in sorted(set(run_dirs), key=lambda p: p.name):
        if not registry.is_complete(run_dir):
            continue
        rec = registry.read_json(run_dir / registry.RECORD) if (run_dir / registry.RECORD).is_file() else {}
        results = registry.read_json(run_dir / registry.RESULTS)
        env = registry.read_json(run_dir / "env.json") if (run_dir / "env.json").is_file() else {}
        hw = env.get("hardware", {})
        device = env.get("device") or ("cuda" if hw.get("cuda_available") else "cpu")
        gpus = ", ".join(hw.get("gpus", []) or [])
        git = env.get("git", {}) or {}
        commit = (git.get("commit") or "")[:10] + (" (dirty)" if git.get("dirty") else "")
        secs = rec.get("train_seconds")
        profiles.add(str(rec.get("profile", run_dir.parent.name)))
        codes.add(str(rec.get("code_version", "")))
        commits.add(commit or "n/a")
        # few, short columns: the table must fit the page (profile, code version and commit are said above it)
        devices.add(f"{device}{' / ' + gpus if gpus else ''}, {hw.get('torch_threads', '?')} thread(s)")
        # a break opportunity after each "/" (zero-width space): long variant names wrap, not overflow
        rows.append([", ".join(u.replace("/", "/\u200b") for u in rec.get("used_by", [])), str(rec.get("seed", "n/a")),
                     _weights_cell(results.get("pretrained_weights")), f"`{run_dir.name}`",
                     f"{secs:.0f}" if isinstance(secs, (int, float)) else "n/a",
                     str(rec.get("trained_at", "n/a")).replace("T", " ")[:16]])   # to the minute
        for name, version in (env.get("packages") or {}).items():
            packages.setdefault(name, set()).add(str(version))
    head = ["used by (experiment/variant)", "seed", "weights", "run key", "train (s)", "trained at"]
    lines = [f"Profile: {', '.join(sorted(profiles))}; code version: "
             f"{', '.join(f'`{c}`' for c in sorted(codes))}; git commit: {', '.join(sorted(commits))}; "
             f"device: {'; '.join(sorted(devices))}. "
             "A run key hashes the training config (the params hash) and the code version; *weights* names "
             "the ImageNet weights a run started from (timm tag, a local file's sha256, or none: random init); on the "
             "CPU profiles that file is the study's own pretrained backbone, named by the key of its pretraining "
             "run (the rows used by pretrain/pretrain_<backbone>).", "",
             ":::{div} mace-runs", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows] + [":::"]
    if not rows:
        lines = ["No completed runs yet."]
    if packages:
        lines += ["", "Package versions used by these runs:", "",
                  "| package | version(s) |", "|---|---|"]
        lines += [f"| {name} | {', '.join(sorted(v))} |" for name, v in sorted(packages.items())]
    path = Path(book_dir) / GENERATED / "runs.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path




def stored_evaluations(run: Any, sweep: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], dict]]:
    """``(overrides, results)`` for each eval-override set of ``sweep`` whose cached test-time evaluation
    of ``run`` exists (``<run>/evals/*.json``, as written by ``evaluate_variant``); never evaluates."""
    import dataclasses
    import json

    stored = []
    for path in sorted((Path(run.run_dir) / "evals").glob("*.json")):
        record = registry.read_json(path)
        if record.get("run") == run.key:
            stored.append(record)
    base = dataclasses.asdict(run.config.eval)
    found = []
    for overrides in sweep:
        wanted = json.loads(json.dumps({**base, **overrides}))
        hit = next((r for r in stored if json.loads(json.dumps(r.get("eval"))) == wanted), None)
        if hit is not None:
            found.append((overrides, hit["results"]))
    return found


def _experiment_evals(experiment: str, runs: list[Any]) -> list[dict[str, Any]] | None:
    if experiment == "04_multi_query":
        out = []
        for run in runs:
            sweep = [{"multi_query": n, "fusion": f} for n in run.study["multi_query"]["n"]
                     for f in run.study["multi_query"]["fusion"]]
            out += [{"seed": run.seed, "n": o["multi_query"], "fusion": o["fusion"], "results": res}
                    for o, res in stored_evaluations(run, sweep)]
        return out
    if experiment == "06_occlusion":
        out = []
        for run in runs:
            sweep = [{"occlusion": kind} for kind in run.study["occlusion"]["types"]]
            out += [{"seed": run.seed, "model": run.variant, "occlusion": o["occlusion"], "results": res}
                    for o, res in stored_evaluations(run, sweep)]
        return out
    return None


FOREST_PNG = "overview_forest.png"


# Test-time rows (multi-query pools, occluded queries) compare one set of trained models under two
# conditions: their Δ and its noise come from the two-level bootstrap, not from a t-test over seeds.
TEST_TIME_RULE = ("Test-time rows (multi-query, occlusion: the same trained models under two query conditions) are "
                  "paired within each seed's model; their Δ ± is the larger side of the 95 % percentile interval of a "
                  "two-level bootstrap over the training seeds and the test identities, and their detectable Δ is "
                  "(z(1 − α/2) + z(0.8)) times that bootstrap's se. ")


def write_overview(book_dir: str | Path, profile: str, params_dir="params", runs_dir="runs",
                   chapters: Iterable[str] | None = None) -> Path:
    """``generated/overview.md``: every experiment's headline number beside the thesis's, with its
    computed finding and a link to its chapter, from stored results only (never trains or evaluates).
    ``chapters``: the experiments whose chapter the book has (None: all); the others are left out, even
    where they share a stored run with an executed one (``--only 00,05``)."""
    from mace_core.analysis import figures, findings, forest
    from mace_core.analysis.claims import claim_line
    from mace_core.analysis.headline import PICKED_NOTE, headline
    from mace_core.analysis.results import MISSING, data_source, group_runs
    from mace_core.analysis.thesis_rows import BASELINE_FROM
    from mace_core.analysis.thesis_numbers import THESIS_LABEL
    from mace_core.study.api import load_results
    from mace_core.study.variants import OPTIONAL_EXPERIMENTS, list_experiments

    book_dir = Path(book_dir)
    # eight columns fit the content column at 1024 px; whether our Δ has the thesis's sign is in each finding
    head = ["experiment", "comparison", "ours", "thesis", "Δ ours", "Δ thesis", "vs noise", "detectable Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    found, claims, sources, sizes, forest_rows, methods = [], [], set(), set(), [], set()
    for experiment in list_experiments(params_dir):
        if chapters is not None and experiment not in set(chapters):
            continue
        if experiment in OPTIONAL_EXPERIMENTS:
            continue   # the LLCM layer has no thesis figure to compare with: its chapter holds its numbers
        runs = load_results(experiment, profile, params_dir, runs_dir)
        if not runs:
            continue
        if experiment in BASELINE_FROM:
            runs = load_results(BASELINE_FROM[experiment], profile, params_dir, runs_dir) + runs
        title = f"{int(experiment[:2])}: {experiment[3:].replace('_', ' ')}"   # short: the table stays narrow
        link = f"[{title}](../chapters/{experiment}.md)" if page_exists(book_dir, f"chapters/{experiment}") else title
        sources |= {data_source(r) for r in runs}
        sizes |= {len(m) for m in group_runs(runs).values()}
        try:
            h = headline(experiment, runs, _experiment_evals(experiment, runs))
        except MaceError as err:   # e.g. a summary not executed yet: say so instead of failing the book
            lines.append("| " + " | ".join([link, "not available: " + _cell(getattr(err, "what", err))]
                                           + [MISSING] * (len(head) - 2)) + " |")
            continue
        lines.append("| " + " | ".join(_cell(c) for c in [link, h.measure, h.ours, h.thesis, h.diff,
                                                          h.thesis_diff, h.noise, h.mdd]) + " |")
        forest_rows += forest.forest_rows(experiment, runs, _experiment_evals(experiment, runs), chapter=title)
        methods.add(h.method)
        found.append(f"- {link}: {h.finding}")
        if h.claims:
            claims += [f"### {link}", ""] + [f"- {claim_line(c)}" for c in h.claims] + [""]
    source = ", ".join(sorted(sources)) or "no"
    text = [f"# Results at a glance ({source} data, {profile} profile)", "",
            "Every experiment's headline comparison, generated from the stored runs. Ours: IR→RGB Rank-1 in %. "
            f"{findings.n_note(sorted(sizes) or [1])} Thesis: {THESIS_LABEL}, best epoch on test, one run. "
            f"{findings.RULE} "
            f"{TEST_TIME_RULE if 'bootstrap' in methods else ''}"
            "Vs noise: the verdict against the noise of the row's unit. "
            "Where a chapter compares several variants, the one shown is the best, picked after the fact (†); "
            "its verdict is Holm-adjusted in the chapter's one family (listed on the chapter page), the same p as "
            "in the chapter's table and claims. Detectable Δ: the difference (pp) the chapter's test detects with "
            "80 % power at its n, its pooled seed spread and α = 0.05 / k (exact power); a difference that is not "
            "distinguishable reads *probably smaller* (any effect is probably smaller than the detectable Δ) when "
            "the estimate is below it, *cannot tell* otherwise. "
            "Each finding below says whether our difference has the sign of the thesis's.", ""]
    if len(lines) == 2:
        text += ["No completed runs yet."]
    else:
        # the class lets book/_static/mace.css keep numbers on one line (the book check measures it)
        text += [":::{div} mace-overview", *lines, ":::", "", PICKED_NOTE, ""]
        if forest_rows:
            figures.save(forest.forest_plot(forest_rows), book_dir / GENERATED / FOREST_PNG)
            text += [f"![Forest plot: every chapter's comparisons]({FOREST_PNG})", "",
                     "Forest plot: every contrast of each chapter's Holm family, our difference with its 95 % "
                     "interval (filled dot: distinguishable after Holm; hollow: not), the thesis's difference "
                     "(diamond) and the chapter's detectable difference (grey band, 80 % power at α = 0.05 / k).", ""]
        else:
            text += [findings.ONE_SEED_PAGE, ""]
        text += ["## Findings", ""] + found
        if claims:
            text += ["", "## The thesis's claims, tested", "",
                     "Every conclusion the thesis draws in its experiment chapters (listed with its section on the "
                     "{ref}`methods page <thesis-claims>`), tested on our numbers in the thesis's direction, favourable "
                     "or not; within a chapter the claims' p-values are Holm-adjusted together.", ""] + claims
    path = book_dir / GENERATED / "overview.md"
    atomic_write_text(path, "\n".join(text) + "\n")
    return path
