"""xephang's operator tooling: the ``xephang`` CLI, the technicians' tools, docs generation,
broker and bridge config, the mosquitto runner, the demo and its simulation.

It may import the library (``xephang``) and the daemons; nothing in the library imports it
(``tests/test_import_graph.py``)."""
