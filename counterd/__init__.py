"""counterd: the officer's call box and the citizen's rating keys (see docs/counterd.md)."""
