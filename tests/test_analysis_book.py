"""Book sources: methods page carries the generated ambiguity table; MathJax vendoring paths."""
from pathlib import Path

import pytest

from mace_core.analysis.thesis_numbers import AMBIGUITIES, ambiguity_markdown
from mace_core.book import assets as book_assets
from mace_core.errors import MaceError

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_methods_page_holds_the_current_ambiguity_table():
    text = (BOOK / "methods.md").read_text()
    assert ambiguity_markdown() in text, "regenerate the table with thesis_numbers.ambiguity_markdown()"
    assert len(AMBIGUITIES) >= 10


def test_chapter_page_per_experiment_and_notebooks_pair_up():
    from mace_core.study.variants import list_experiments

    root = Path(__file__).resolve().parents[1]
    notebooks, params = root / "notebooks", root / "params"
    thesis = list_experiments(params)                    # the thesis's seven: a page and a summary each
    optional = set(list_experiments(params, optional=True)) - set(thesis)   # e.g. the LLCM layer: its page only
    for chapter in sorted((BOOK / "chapters").glob("*.md")):
        assert chapter.stem in thesis or chapter.stem in optional, chapter.stem
        assert (notebooks / f"{chapter.stem}.py").is_file()
        assert (notebooks / f"{chapter.stem}_summary.py").is_file() or chapter.stem in optional
        assert chapter.read_text().startswith("# ")
    assert len(thesis) == 7 and len(list((BOOK / "chapters").glob("*.md"))) == 7 + len(optional)


def test_stderr_is_removed_book_wide_not_per_cell():
    """One setting (myst-nb's output_stderr) hides the kernels' stderr on every page; no cell repeats it."""
    import yaml

    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert config["sphinx"]["config"]["nb_output_stderr"] == "remove"
    tagged = [p.name for p in sorted((BOOK.parent / "notebooks").glob("*.py")) if "remove-stderr" in p.read_text()]
    assert not tagged, f"drop the per-cell remove-stderr tags: {tagged}"


def test_vendor_mathjax_copies_from_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cached = book_assets.cache_dir()
    (cached / "output").mkdir(parents=True)
    (cached / book_assets.ENTRY).write_text("// mathjax")
    (cached / "output" / "font.js").write_text("// font")
    dest = book_assets.vendor_mathjax(tmp_path / "book")
    # into the built HTML, never the source _static (Jupyter Book would load every .js there on every page)
    assert dest == tmp_path / "book" / "_build" / "html" / "_static" / "mathjax"
    assert (dest / book_assets.ENTRY).read_text() == "// mathjax" and (dest / "output" / "font.js").is_file()
    assert book_assets.vendor_mathjax(tmp_path / "book") == dest   # already there: nothing to do


def test_vendor_mathjax_without_npm_warns_or_raises(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(book_assets.shutil, "which", lambda name: None)
    assert book_assets.vendor_mathjax(tmp_path / "book") is None
    assert "npm is not available" in capsys.readouterr().out
    with pytest.raises(MaceError, match="npm is not available"):
        book_assets.vendor_mathjax(tmp_path / "book", strict=True)
