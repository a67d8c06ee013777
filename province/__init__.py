"""Province side of xephang: ingest every centre's events into PostgreSQL and report over all of them.

Needs the optional ``province`` extra (``pip install 'xephang[province]'``: psycopg 3); nothing
here runs on a centre's Raspberry Pi.
"""
