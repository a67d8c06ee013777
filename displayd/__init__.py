"""displayd: the hall board and the counter screens (see docs/displayd.md)."""

import os

# pygame prints a greeting on import; a daemon's stdout goes to the journal
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
