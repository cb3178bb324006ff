"""Issue 22, point 6: the first-GPU-session script on CPU, on its tiny matrix (the H100 runs the full one)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bench_helpers import load_benchmark

REPO = Path(__file__).resolve().parents[1]


def _script():
    return load_benchmark("gpu_session")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_matrix_on_cpu_writes_one_json_and_one_markdown(tmp_path):
    gs = _script()
    assert gs.main(["--tiny", "--device", "cpu", "--out", str(tmp_path), "--data-root", str(tmp_path / "sysu")]) == 0
    report = json.loads((tmp_path / "gpu_session.json").read_text())
    rows = {(r["section"], r["setting"]): r for r in report["rows"]}
    assert all(r["status"] == "ok" for r in report["rows"]), [r for r in report["rows"] if r["status"] != "ok"]
    assert {s for s, _ in rows} == {"determinism", "compile", "channels_last", "precision", "loader", "together",
                                    "evaluation", "dry run"}
    det = rows[("determinism", "deterministic (paper default)")]
    fast = rows[("determinism", "fast (deterministic false)")]
    assert det["deterministic"] is True and fast["deterministic"] is False
    assert det["cost_vs_fast"] == pytest.approx(det["step_ms"] / fast["step_ms"] - 1, abs=1e-3)
    assert [rows[("loader", f"{w} workers")]["workers"] for w in (0, 1)] == [0, 1]
    assert rows[("channels_last", "on")]["channels_last"] and not rows[("channels_last", "off")]["channels_last"]
    ev = rows[("evaluation", "full protocol, all-search")]
    assert ev["images"] > 0 and ev["images_per_s"] == pytest.approx(ev["images"] / ev["eval_s"], rel=0.02)
    dry = rows[("dry run", "paper profile on the full-size synthetic tree")]
    assert dry["measured_step_ms"] == rows[("together", "loader (0 workers) + model, paper default")]["step_ms"]
    assert dry["projected_over_measured"] == pytest.approx(dry["projected_step_ms"] / dry["measured_step_ms"], abs=1e-3)
    md = (tmp_path / "gpu_session.md").read_text()
    assert md.count("\n| ") == 1 + len(report["rows"])        # header + one line per row
    assert "step time vs fast" in md and "projected step" in md


def test_a_spent_budget_skips_rows_but_still_reports(tmp_path):
    gs = _script()
    assert gs.main(["--tiny", "--device", "cpu", "--out", str(tmp_path), "--data-root", str(tmp_path / "sysu"),
                    "--budget-s", "0"]) == 0
    report = json.loads((tmp_path / "gpu_session.json").read_text())
    assert report["rows"] and all(r["status"] == "skipped" for r in report["rows"])
    assert "skipped: budget of 0 s spent" in (tmp_path / "gpu_session.md").read_text()


def test_book_shows_the_report_when_present_else_says_unmeasured(tmp_path):
    from mace_core.book.build import UNMEASURED, write_gpu_session

    book = tmp_path / "book"
    book.mkdir()
    page = write_gpu_session(book)
    assert page.read_text() == UNMEASURED and "unmeasured on GPU" in UNMEASURED
    assert "train.deterministic: true" in UNMEASURED and "train.compile: false" in UNMEASURED
    report = tmp_path / "benchmarks" / "results" / "gpu_session.md"
    report.parent.mkdir(parents=True)
    report.write_text("| question | setting |\n|---|---|\n| determinism | fast |\n")
    assert write_gpu_session(book).read_text() == report.read_text()
    assert "```{include} generated/gpu_session.md" in (REPO / "book" / "architecture.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_architecture_page_renders_the_session_report(tmp_path):
    import shutil

    from mace_core.book.build import build_book

    gs = _script()
    book = tmp_path / "book"
    book.mkdir()
    for name in ("_config.yml", "architecture.md"):
        shutil.copy(REPO / "book" / name, book)
    shutil.copytree(REPO / "book" / "_static", book / "_static")
    (book / "intro.md").write_text("# Intro\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: architecture\n")
    report = {"tiny": True, "device": "cpu", "torch": "2.x", "started": "2026-12-06T00:00:00", "wall_s": 30.0,
              "config": {"backbone": "resnet50", "input": "288x144", "batch_images": 64, "steps": 20, "warmup": 3},
              "rows": [{"section": "determinism", "setting": "fast (deterministic false)", "status": "ok",
                        "images_per_s": 2900.5, "step_ms": 22.1, "peak_memory_mb": 9000}]}
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "gpu_session.md").write_text(gs.markdown(report))
    build_book(book)
    html = (book / "_build" / "html" / "architecture.html").read_text()
    assert "First GPU session" in html and "2900.5" in html and "Unmeasured on GPU" not in html
