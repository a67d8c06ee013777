"""The generated reference pages match the models (a drift fails here)."""

from xephang_ops.docs import GENERATED


def test_generated_docs_are_up_to_date():
    for path, render in GENERATED.items():
        assert path.read_text() == render(), f"{path.name} is out of date: run `xephang docs`"
