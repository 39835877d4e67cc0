"""``python -m nmfdnn.maint.embed README.md outputs/*/README.md`` (``make readme``): copy generated result
files into Markdown documents, so that their tables are generated, never typed.

Every block

    <!-- generated from PATH -->
    ...
    <!-- end generated -->

is replaced by the text of ``PATH`` (relative to the document's folder). ``--check`` changes nothing
and exits 1 if a block differs from its file (a test runs it on the README).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- generated from (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def embed(text: str, root: Path) -> str:
    """``text`` with every generated block refreshed from its file under ``root``."""
    def fill(m: re.Match) -> str:
        src = root / m.group("path")
        if not src.is_file():
            raise FileNotFoundError(f"generated block names {m.group('path')}, which does not exist")
        body = src.read_text().rstrip("\n") + "\n"
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(fill, text)


def refresh(doc: Path, check: bool) -> int:
    """Refresh (or with ``check``, compare) one document's generated blocks: 0 current, 1 stale, 2 error."""
    try:
        old = doc.read_text()
        new = embed(old, doc.parent)
    except OSError as e:  # FileNotFoundError included
        print(f"embed: {e}", file=sys.stderr)
        return 2
    if check:
        stale = [a.group("path") for a, b in zip(BLOCK.finditer(old), BLOCK.finditer(new)) if a.group(0) != b.group(0)]
        if stale:
            print(f"embed: {doc} is stale in {', '.join(stale)}; run make readme", file=sys.stderr)
            return 1
        return 0
    if new != old:
        doc.write_text(new)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nmfdnn.maint.embed", description=__doc__.splitlines()[0])
    ap.add_argument("documents", nargs="+", help="Markdown files with <!-- generated from PATH --> blocks")
    ap.add_argument("--check", action="store_true", help="exit 1 if a block differs from its file")
    a = ap.parse_args(argv)
    return max(refresh(Path(d), a.check) for d in a.documents)


if __name__ == "__main__":
    sys.exit(main())
