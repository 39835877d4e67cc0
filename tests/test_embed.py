"""Generated blocks of the README are the files they name (``make readme``)."""

from pathlib import Path

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


def test_readme_tables_are_the_committed_reports():
    assert main([str(ROOT / "README.md"), "--check"]) == 0
