"""docs/displayd.md lists the board options exactly as the config model defines them."""

from __future__ import annotations

from pathlib import Path

from displayd.config import options_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "displayd.md"


def test_the_options_reference_in_the_docs_matches_the_model():
    text = DOC.read_text(encoding="utf-8")
    between = text.split("<!-- options:begin -->\n", 1)[1].split("\n<!-- options:end -->", 1)[0]
    assert between == options_table(), "regenerate the table: python -c 'from displayd.config import options_table; print(options_table())'"
