"""The results-at-a-glance page: one row per experiment from stored results, findings, TOC position."""
import dataclasses
import json

from _tables_helpers import seeded, with_identities

from mace_core.analysis import headline, thesis_numbers as tn
from mace_core.book import build
from mace_core.study import api, pages, variants


def _book(tmp_path):
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    (root / "intro.md").write_text("# Intro\n")
    (root / "methods.md").write_text("# Methods\n")
    (root / "chapters" / "02_attention.md").write_text("# Experiment 2: attention\n\ntext\n")
    return root


def _store_eval(run, overrides, results):
    """An evaluation cached as evaluate_variant writes it: <run>/evals/<hash>.json."""
    settings = {**dataclasses.asdict(run.config.eval), **overrides}
    path = run.run_dir / "evals" / f"{len(list(run.run_dir.glob('evals/*.json')))}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": run.key, "eval": settings, "results": results}))


def test_overview_has_a_row_per_experiment_with_findings_and_follows_the_intro(tmp_path, monkeypatch):
    root = _book(tmp_path)
    base = seeded("baseline", [30, 33, 39])
    attention = seeded("cam", [40, 44, 48], model__attention="cam")
    multi = seeded("baseline", [30, 33, 39])
    for run in multi:
        run.run_dir, run.key = tmp_path / "runs" / f"s{run.seed}", f"key{run.seed}"
        run.study = {"multi_query": {"n": [1, 5], "fusion": ["avg"]}}
        for n in (1, 5):
            _store_eval(run, {"multi_query": n, "fusion": "avg"}, {"R1": (30 + 2 * n + run.seed) / 100, "mAP": 0.2})
    occlusion = seeded("baseline", [30, 33, 39])
    for run in occlusion:   # no stored occluded evaluation: the row says so, the page still builds
        run.run_dir, run.key, run.study = tmp_path / "runs" / f"o{run.seed}", f"o{run.seed}", {"occlusion": {"types": ["random_rect"]}}
    # experiment 2's baseline is experiment 0's run; experiment 3 has no runs yet
    stored = {"00_baseline": base, "02_attention": attention, "03_fusion": [], "04_multi_query": multi,
              "06_occlusion": occlusion}
    monkeypatch.setattr(variants, "list_experiments", lambda params_dir: list(stored))
    monkeypatch.setattr(api, "load_results", lambda experiment, *a, **k: list(stored[experiment]))

    text = pages.write_overview(root, "smoke", "params", "runs").read_text()
    assert text.startswith("# Results at a glance (synthetic data, smoke profile)")
    assert ":::{div} mace-overview" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 4                                        # 03 has no runs: no row
    attention_row = next(r for r in rows if "attention" in r)
    assert "[2: attention](../chapters/02_attention.md)" in attention_row
    assert "cam vs baseline" in attention_row and "44.0 ± 4.0" in attention_row and "42.3" in attention_row
    assert "+10.0 ± 2.5" in attention_row and "exceeds" in attention_row
    # detectable Δ: paired differences 10, 11, 9 (sd 1), n = 3 -> 3.26404 · 1 = 3.3 pp at 80 % power
    assert text.count("| vs noise | detectable Δ |\n") == 1
    assert pages.TEST_TIME_RULE not in text                      # no per-identity results: t-intervals only
    assert "| exceeds (higher) | 3.3 |" in attention_row
    assert "the direction is the opposite of the thesis's" in text   # said in the attention finding
    multi_row = next(r for r in rows if r.startswith("| 4: multi query"))   # no chapter page: plain title
    assert "n = 5, avg vs n = 1" in multi_row and headline.PICKED not in multi_row   # k = 1 pool
    assert f"{tn.TABLE7[(5, 'avg')]['R1']:.1f}" in multi_row
    assert "no occluded evaluation" in next(r for r in rows if r.startswith("| 6: occlusion"))
    # the forest plot: every chapter's family in one figure, written beside the page
    assert "![Forest plot: every chapter's comparisons](overview_forest.png)" in text
    assert (root / "generated" / "overview_forest.png").stat().st_size > 1000
    assert text.index("overview_forest.png") < text.index("## Findings")
    assert "## Findings" in text and "- [2: attention](../chapters/02_attention.md): Against the baseline" in text
    assert "n = 3 training seeds" in text
    # the thesis's claims, per chapter, with their verdicts (cam is +10 where the thesis has it lower)
    claims = text.split("## The thesis's claims, tested")[1]
    attention = claims.split("### [2: attention](../chapters/02_attention.md)")[1].split("###")[0]
    assert "§3.5.4: CAM performs below the baseline" in attention and "**contradicted**" in attention
    assert "SAM − no attention: thesis -2.1 pp, ours *not run*" in attention
    assert "### 4: multi query" in claims and "avg n = 5 − single query" in claims

    (root / "generated" / "00_baseline").mkdir(parents=True, exist_ok=True)
    (root / "generated" / "00_baseline" / "summary.ipynb").write_text("{}")
    toc = build.write_toc(root, {"00_baseline": ["summary"]}).read_text()
    assert toc.index("root: intro") < toc.index("generated/overview") < toc.index("methods") \
        < toc.index("generated/00_baseline/summary")


def test_the_occlusion_row_keeps_one_meaning_of_plus_minus_per_column(tmp_path, monkeypatch):
    """ours = occluded Rank-1 ± std over seeds, Δ = occluded − clean ± its bootstrap interval, and the
    caption says what a test-time row's interval is."""
    import numpy as np

    root = _book(tmp_path)
    rng = np.random.default_rng(3)
    clean = rng.integers(4, 9, size=(4, 30)) * 10.0                   # per-identity Rank-1, 40–80 %
    runs = seeded("baseline", list(clean.mean(1)))
    for run, ids in zip(runs, clean):
        with_identities(run.results, ids)
        run.run_dir, run.key, run.study = tmp_path / "runs" / f"o{run.seed}", f"o{run.seed}", {"occlusion": {"types": ["upper_body"]}}
        occluded = np.clip(ids - 30, 0, 100)
        _store_eval(run, {"occlusion": "upper_body"},
                    with_identities({"mean": {"rank1": occluded.mean() / 100, "mAP": 0.1}}, occluded))
    monkeypatch.setattr(variants, "list_experiments", lambda params_dir: ["06_occlusion"])
    monkeypatch.setattr(api, "load_results", lambda experiment, *a, **k: list(runs))

    text = pages.write_overview(root, "smoke", "params", "runs").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 6: occlusion"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    occluded_mean = np.clip(clean - 30, 0, 100).mean(1)
    assert cells[1] == "baseline, upper_body vs clean queries"                  # one type: nothing picked
    assert cells[2] == f"{occluded_mean.mean():.1f} ± {occluded_mean.std(ddof=1):.1f}"   # a std over seeds
    assert cells[3] == f"{tn.TABLE9[('baseline', 'upper_body')]['occ_R1']:.1f}"
    assert cells[4].startswith(f"{-(clean.mean(1) - occluded_mean).mean():+.1f} ± ") and cells[4][0] == "-"
    assert cells[5] == f"{-tn.TABLE9[('baseline', 'upper_body')]['R1_drop']:+.1f}" and cells[6] == "exceeds (lower)"
    assert pages.TEST_TIME_RULE in text and "two-level bootstrap over the training seeds and the test identities" in text
