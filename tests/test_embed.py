"""Generated blocks of the READMEs (top level and every study's) are the files they name (``make readme``)."""

from pathlib import Path

import pytest

from nmfdnn.maint.embed import main

ROOT = Path(__file__).resolve().parent.parent


def test_embed_fills_and_checks(tmp_path):
    (tmp_path / "r.md").write_text("| a |\n|---|\n| 1 |\n")
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- generated from r.md -->\ntyped by hand\n<!-- end generated -->\nafter\n")
    assert main([str(doc), "--check"]) == 1
    assert main([str(doc)]) == 0
    assert doc.read_text() == "intro\n<!-- generated from r.md -->\n| a |\n|---|\n| 1 |\n<!-- end generated -->\nafter\n"
    assert main([str(doc), "--check"]) == 0
    (tmp_path / "r.md").write_text("| a |\n|---|\n| 2 |\n")
    assert main([str(doc), "--check"]) == 1
    doc.write_text("<!-- generated from missing.md -->\n<!-- end generated -->\n")
    assert main([str(doc)]) == 2


READMES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("outputs/*/README.md"))


@pytest.mark.parametrize("doc", READMES)
def test_readme_tables_are_the_committed_reports(doc):
    assert main([str(ROOT / doc), "--check"]) == 0


def test_every_document_is_checked_and_the_worst_status_wins(tmp_path):
    (tmp_path / "r.md").write_text("x\n")
    good = tmp_path / "good.md"
    good.write_text("<!-- generated from r.md -->\nx\n<!-- end generated -->\n")
    bad = tmp_path / "bad.md"
    bad.write_text("<!-- generated from r.md -->\ny\n<!-- end generated -->\n")
    assert main([str(good), str(bad), "--check"]) == 1
    assert main([str(good), str(bad)]) == 0
    assert bad.read_text() == good.read_text()
