"""The centre's reports: periods, the figures built from the hub's ledger (``build``), their
renderings — terminal, HTML, CSV, XLSX (``render``) — and charts (``charts``), and the
``xephang report`` command (``cli``). Used by the hub (the ``report`` request), the province
and the web daemon; it imports only the library (``xephang``)."""
