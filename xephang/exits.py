"""Exit codes: one table for every tool and daemon (``docs/tools.md`` is generated from it).

A technician's script can branch on these; ``tests/tools/test_exit_codes.py`` makes each tool
and daemon produce the codes the table promises.
"""

from __future__ import annotations

OK = 0
REFUSED = 1  # the node, the hub or a file said no: the reason is printed
USAGE = 2  # the command line (or a file it names) cannot be used; config push: stale
NO_ANSWER = 3  # nobody answered in time
NOT_ALLOWED = 4  # the broker's ACL: not a technician account
NO_BROKER = 5  # the broker could not be reached, or refused the login
DAEMON_BROKER_REFUSED = 76  # EX_PROTOCOL: a daemon's login or subscription refused (password, ACL)
DAEMON_CONFIG = 78  # EX_CONFIG: bad local settings, or what the start needs is missing
INTERRUPTED = 130

# (code, who, meaning, what to do)
TABLE: list[tuple[int, str, str, str]] = [
    (OK, "all", "done (a daemon: stopped on request)", "—"),
    (REFUSED, "tools", "refused or failed, the reason printed: a node rejected a pushed config or a key "
                       "(`press fly`), the hub refused a report (bad period), a file is not valid TOML/JSON, "
                       "a ledger cannot be read", "read the reason"),
    (USAGE, "tools", "the command line cannot be used (unknown option, missing argument, a password file that "
                     "cannot be read); `config push`: stale — the node changed since the rev the push names (the "
                     "`config get` output it is, or `--base-rev`; a plain options file names the rev read at push "
                     "time)", "fix the command; stale: `config get` again, redo the edit on it, push that"),
    (NO_ANSWER, "tools", "no answer in time: the node never connected, is offline or not in sim mode; the hub did "
                         "not answer", "`xephang devices`: is it online?"),
    (NOT_ALLOWED, "tools", "the broker refused the publish (ACL), or the account is not a technician's",
     "log in as `tech` or `tech-…`"),
    (NO_BROKER, "tools", "the broker could not be reached, or refused the login", "`--host`, `--port` (1884 for "
                                                                                    "technicians), `--password-file`"),
    (DAEMON_BROKER_REFUSED, "daemons", "the broker refused the node for good (password, ACL, client id)",
     "copy the right `<node>.pw`; node id = username"),
    (DAEMON_CONFIG, "daemons", "bad local settings, or what the start needs is missing (password file, writable "
                               "state folder …): every problem listed; `--check` says the same",
     "fix the TOML, `--check`, restart"),
    (INTERRUPTED, "tools, demo", "interrupted (Ctrl-C)", "—"),
]


def markdown_table() -> str:
    rows = ["| exit | from | meaning | what to do |", "|---|---|---|---|"]
    rows += [f"| {c} | {who} | {meaning} | {todo} |" for c, who, meaning, todo in TABLE]
    return "\n".join(rows)
