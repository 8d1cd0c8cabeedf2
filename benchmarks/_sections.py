"""Each benchmark script owns one delimited section of BENCHMARKS.md and rewrites only that section."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery number here comes from a script in benchmarks/; each section names its command.\n"


def update_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the block between `<!-- name:start -->` and `<!-- name:end -->` in `path`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
