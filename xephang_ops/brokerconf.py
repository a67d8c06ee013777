"""``xephang broker-config``: Mosquitto configuration, password file and ACL for one site.

Every node id is also its MQTT username (DESIGN §3). The ACL gives each node only its own
topics: its availability, health, alerts and config ack/state, its config pushes, replies and
sim presses to read, and the hub requests its role may make. Only the hub writes ``state/*``,
``event/*`` and ``reply/*``; only technicians push config and sim presses. The broker cannot
read payloads, so which *counter* a request acts for is checked by the hub (``may_act``).

Passwords are random, one file per node (``passwords/<node>.pw``, mode 0600) to copy onto that
board as ``broker.password_file``; the broker keeps only PBKDF2-SHA512 hashes in the
``$7$`` format of mosquitto 2 (the same as ``mosquitto_passwd``). Secrets never travel over
MQTT. Re-running keeps existing passwords unless ``--rotate`` is given.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import os
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubd.lane import lane_board
from xephang.contract import (
    ALERT_IDS,
    CLIENT_ID_PREFIX,
    CONSOLE_ACTIONS,
    COUNTER_ACTIONS,
    DISPENSER_ACTIONS,
    MAX_PAYLOAD_BYTES,
    MAX_TOPIC_LEN,
    ROOT_PREFIX,
    WEB_ACTIONS,
    check_level,
    counter_node,
)
from xephang.settings import SettingsError, load_site
from xephang.site import Site

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 1000
DEFAULT_TECHNICIANS = ("tech",)



class BrokerConfigError(ValueError):
    """Inputs that cannot make a broker configuration."""


@dataclass(frozen=True)
class NodeAccount:
    """One MQTT account: a node of the site or a technician."""

    username: str
    role: str  # hub, dispenser, counter, display, announcer, web, tech


MAX_QUEUED_BYTES = 64 * 1024 * 1024  # per client (bench/broker_queue.py); xephang bridge-config sets the same


def role_of(node: str) -> str:
    """The role a node id implies (``counter-3`` → counter, ``tech-lan`` → tech)."""
    check_level(node)
    head = node.split("-", 1)[0]
    if node in ("hub", "hub-inbox", "hub-lane"):
        return node
    if node.endswith("-watch") and role_of(node.removesuffix("-watch")) == "web":
        return "watch"  # the web daemon's connection that reads the boards' statuses and alerts
    if lane_board(node) is not None:
        return "board-lane"  # the hub's lane for that board (hubd/lane.py)
    if head in ("dispenser", "counter", "display", "announcer", "web", "tech"):
        return head
    raise BrokerConfigError(f"node id {node!r}: cannot tell its role (hub, dispenser-*, counter-N, display-*, "
                            "announcer-*, web*, tech*)")


def site_accounts(site: Site, *, dispensers: int = 1, displays: Sequence[str] = ("hall",),
                  announcers: Sequence[str] = ("hall",), technicians: Sequence[str] = DEFAULT_TECHNICIANS,
                  extra: Sequence[str] = (), web: Sequence[str] = ("web",)) -> list[NodeAccount]:
    """Every account a site needs: the hub and its reading connections (``hub-inbox``, ``hub-lane``,
    ``hub-<node>`` for each board and technician; hubd/lane.py), its dispensers, one per counter, boards, the web daemon (``webd``), technicians."""
    names = ["hub", "hub-inbox", "hub-lane", *(f"dispenser-{i}" for i in range(1, dispensers + 1)),
             *(counter_node(c.number) for c in site.counters),
             *(f"display-{d}" for d in displays), *(f"announcer-{a}" for a in announcers),
             *web, *technicians, *extra]
    names += [f"{n}-watch" for n in web]  # webd's second connection (xephang/reader.py)
    names += [f"hub-{n}" for n in names if lane_board(f"hub-{n}") is not None]  # their lanes at the hub (the hub's list)
    out: list[NodeAccount] = []
    for n in dict.fromkeys(names):
        out.append(NodeAccount(n, role_of(n)))
    return out


# ---------------------------------------------------------------------------------------------
# Passwords


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A mosquitto 2 password hash: ``$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>``."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash (ours or mosquitto_passwd's)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(want))
    return secrets.compare_digest(got, want)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def password_file_text(passwords: dict[str, str]) -> str:
    """The broker's password file: one ``user:hash`` line per account."""
    return "".join(f"{user}:{hash_password(pw)}\n" for user, pw in passwords.items())


# ---------------------------------------------------------------------------------------------
# ACL


def acl_text(site_slug: str, accounts: Iterable[NodeAccount], *, prefix: str = ROOT_PREFIX) -> str:
    """The mosquitto ``acl_file`` for one site. Anything not granted here is refused."""
    r = f"{prefix}/{check_level(site_slug)}"
    lines = [
        f"# xephang ACL for site {site_slug}: generated by `xephang broker-config`; regenerate, do not edit.",
        "# Anonymous clients get nothing (no topic line comes before the first `user`).",
        "",
        "# Every node: its own availability, health and config ack/state (its alerts: under its user); its config pushes,",
        "# replies and sim presses; whether the others (above all the hub) are online; a resync.",
        f"pattern readwrite {r}/node/%u/status",
        f"pattern write {r}/node/%u/health",
        f"pattern read {r}/node/+/status",
        f"pattern read {r}/config/%u/set",
        f"pattern write {r}/config/%u/ack",
        f"pattern write {r}/config/%u/state",
        f"pattern read {r}/reply/%u",
        f"pattern read {r}/sim/%u/press",
        f"pattern write {r}/sim/%u/ack",
        f"pattern write {r}/req/hub/resync/%u",
        "",
    ]
    accounts = list(accounts)
    announcers = [a.username for a in accounts if a.role == "announcer"]
    for acc in accounts:
        lines.append(f"user {acc.username}")
        # its alerts: only the ids its role raises (contract.ALERT_IDS), never alert/+ (any number retained)
        lines += [f"topic write {r}/node/{acc.username}/alert/{a}" for a in ALERT_IDS.get(acc.role, ())]
        if acc.role == "hub":
            lines += [f"topic read {r}/req/hub/#", f"topic write {r}/reply/+", f"topic write {r}/event/#",
                      f"topic write {r}/state/#", f"topic read {r}/node/#",
                      f"topic read {r}/config/hub/set/+"]  # the web daemon's roster push (named sender)
        elif acc.role == "hub-inbox":
            # the hub's connection that reads every request and writes nothing: a board's flood fills
            # its queue, not the one the hub's replies, events and states are acknowledged on (hubd/lane.py)
            lines += [f"topic read {r}/req/hub/#"]
        elif acc.role == "hub-lane":
            # … and the one that reads the dispensers' and the web daemon's requests a second time, so
            # that a counter's flood in the inbox's queue cannot hold them (hubd/lane.py); it writes nothing
            lines += [f"topic read {r}/req/hub/{a}/+" for a in DISPENSER_ACTIONS]
            lines += [f"topic read {r}/req/hub/+/{w.username}" for w in accounts if w.role == "web"]
        elif acc.role == "board-lane":
            # … and one per board that asks the hub, reading that board's requests a second time: one
            # board's flood holds no other board's requests (hubd/lane.py); it writes nothing
            lines += [f"topic read {r}/req/hub/+/{acc.username.removeprefix('hub-')}"]
        elif acc.role == "watch":
            # the web daemon's connection for what the boards say of themselves (statuses, alerts), so
            # that a board's flood of them holds nothing else webd hears; it writes nothing
            lines += [f"topic read {r}/node/#"]  # as the web daemon's own account (its health it does not read)
            # … and what the speakers say of their config (their own passwords write it: a flood of it
            # held webd's events 10-30 s on its main connection)
            for a in announcers:
                lines += [f"topic read {r}/config/{a}/state", f"topic read {r}/config/{a}/ack"]
        elif acc.role == "dispenser":
            # requests name their sender in the topic: a board can only ask as itself, and the hub
            # checks the payload's source against it (a counter cannot act for another counter)
            lines += [f"topic write {r}/req/hub/{a}/{acc.username}" for a in DISPENSER_ACTIONS]
            lines += [f"topic read {r}/state/#"]
        elif acc.role == "counter":
            lines += [f"topic write {r}/req/hub/{a}/{acc.username}" for a in COUNTER_ACTIONS]
            lines += [f"topic read {r}/state/#", f"topic read {r}/event/#"]
        elif acc.role in ("display", "announcer"):
            lines += [f"topic read {r}/state/#", f"topic read {r}/event/#"]
            if acc.role == "announcer":  # a voice pack the head installs from the web (named sender)
                lines += [f"topic read {r}/config/{acc.username}/set/web"]
        elif acc.role == "web":
            # webd reads what the hall board and the devices say, asks the hub for reports as itself,
            # and sends the officers' console actions (the hub checks each names an officer the
            # site seats at that counter); it writes nothing else (tests/webd/test_web_acl.py)
            lines += [f"topic write {r}/req/hub/{a}/{acc.username}" for a in (*WEB_ACTIONS, *CONSOLE_ACTIONS)]
            lines += [f"topic read {r}/state/#", f"topic read {r}/event/#", f"topic read {r}/node/#"]
            # … and the head's roster change as a config push to the hub on its own topic (the hub
            # takes only counters' officer and services from it), reading the hub's live site
            lines += [f"topic write {r}/config/hub/set/{acc.username}", f"topic read {r}/config/hub/state",
                      f"topic read {r}/config/hub/ack"]
            # … and the head's recorded voice pack as a push to each announcer on its own topic (the
            # announcer takes only voice_pack_url and voice_pack_sha256 from it), reading their answers
            for a in announcers:
                lines += [f"topic write {r}/config/{a}/set/{acc.username}", f"topic read {r}/config/{a}/state",
                          f"topic read {r}/config/{a}/ack"]
        elif acc.role == "tech":
            # technicians act for any counter (the hub's may_act agrees), push config, press sim keys
            lines += [f"topic write {r}/req/hub/#", f"topic write {r}/config/+/set", f"topic read {r}/config/#",
                      f"topic write {r}/sim/+/press", f"topic read {r}/sim/+/ack", f"topic read {r}/node/#",
                      f"topic read {r}/event/#",
                      f"topic read {r}/state/#"]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# mosquitto.conf


@dataclass(frozen=True)
class TlsFiles:
    cafile: Path
    certfile: Path
    keyfile: Path
    port: int = 8883


def tls_files_from_args(args: argparse.Namespace, port: int) -> TlsFiles | None:
    """``--tls-ca/--tls-cert/--tls-key`` as a TLS listener, or None when none is given.

    Half a TLS setup (one or two of the three) is refused with :class:`BrokerConfigError`: a
    listener without its certificate would not start, and one without a CA would not check anyone."""
    given = (args.tls_ca, args.tls_cert, args.tls_key)
    if not any(given):
        return None
    if not all(given):
        raise BrokerConfigError("TLS cần đủ --tls-ca, --tls-cert và --tls-key / TLS needs --tls-ca, --tls-cert and --tls-key")
    return TlsFiles(args.tls_ca, args.tls_cert, args.tls_key, port)


DEFAULT_TECH_PORT = 1884
# connections the technicians' listener takes at once: a few terminals and tools. Every account's
# password works there (the ACL is the same), and one board's password opened 1,005 connections
# until the broker ran out of open files and refused the boards too; now it can fill this
# listener only (the boards' listener takes one connection per account: the id is the username)
TECH_MAX_CONNECTIONS = 32


def check_ports(port: int, tech_port: int | None, tls_port: int | None) -> None:
    """The listeners' ports, each 1-65535 and all different; :class:`BrokerConfigError` saying why not.

    Two ``listener`` lines on one port ("--tech-port 1883" typed for 1884) and mosquitto stops at
    start with "Address already in use": the centre's only broker, every board with it."""
    given = {flag: p for flag, p in (("--port", port), ("--tech-port", tech_port), ("--tls-port", tls_port))
             if p is not None}
    for flag, p in given.items():
        if not 1 <= p <= 65535:
            raise BrokerConfigError(f"{flag} {p}: cổng phải là 1-65535 / a port is 1-65535")
    seen: dict[int, str] = {}
    for flag, p in given.items():
        if p in seen:
            raise BrokerConfigError(f"{seen[p]} và / and {flag} cùng cổng / share port {p}: mosquitto would not start "
                                    "(mỗi listener một cổng / one port per listener)")
        seen[p] = flag


def client_id_lines() -> list[str]:
    """Global lines that bind client ids to accounts (see ``listener_lines``)."""
    return [
        "# Client ids are bound to accounts (docs/install-pi.md, \"Client ids\"): every id must start with",
        f"# {CLIENT_ID_PREFIX!r}, and the boards' listeners replace it by the username, so a board's",
        "# password can never log in under another node's id and push it off the broker. (clientid_prefixes",
        "# is marked deprecated in mosquitto 2.0 and still works in every 2.0.x; the warning is expected.)",
        f"clientid_prefixes {CLIENT_ID_PREFIX}",
    ]


# the largest packet a client may send: a payload at the contract's limit, the longest topic, headers
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + MAX_TOPIC_LEN + 256


def size_limit_lines() -> list[str]:
    """Global lines that make the contract's payload limit the broker's (docs/protocol.md)."""
    return [
        f"# A packet over the contract's {MAX_PAYLOAD_BYTES // 1024} KiB payload (with its topic and headers) ends its",
        "# sender's connection before the broker reads it: nothing is stored or forwarded. Without it one",
        "# board's password could park 256 MB on its own retained status, which webd, technicians and the",
        "# province read at every start. (mosquitto 2.0's message_size_limit also disconnects, and is",
        "# deprecated in favour of this.)",
        f"max_packet_size {MAX_PACKET_BYTES}",
    ]


def listener_lines(port: int, listen: str = "", *, tech: bool = False) -> list[str]:
    """A listener: a boards' one (client id := username) or the technicians' one (free client ids,
    all starting with the prefix, so never equal to a node id: several terminals per account)."""
    head = [f"listener {port} {listen}".rstrip()]
    if tech:
        return ["# technicians' terminals: several tools at once under one account, a few at a time",
                *head, f"max_connections {TECH_MAX_CONNECTIONS}"]
    return [*head, "use_username_as_clientid true"]


def mosquitto_conf_text(*, password_file: Path, acl_file: Path, listen: str = "0.0.0.0", port: int = 1883,
                        tls: TlsFiles | None = None, plain_on_localhost: bool = True,
                        tech_port: int | None = DEFAULT_TECH_PORT) -> str:
    """A ``conf.d`` fragment for Debian's mosquitto (its main file already sets persistence).

    With TLS the LAN listener is TLS-only; plain MQTT stays on 127.0.0.1 for the boards'
    own daemons when ``plain_on_localhost``. ``tech_port`` is the technicians' listener (TLS
    too when TLS is on; None: none, technicians use one terminal per account).
    """
    lines = [
        "# xephang broker: generated by `xephang broker-config`.",
        "# Debian's /etc/mosquitto/mosquitto.conf includes conf.d/ and sets persistence and logging.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        "# a SIGKILL or power cut loses at most this many seconds of retained state and queued QoS 1",
        "autosave_interval 10",
        "# global in mosquitto (the last file read wins): room for a week of events queued for a",
        "# province bridge that is down (xephang bridge-config sets the same)",
        "max_queued_messages 200000",
        "# … and at most this many bytes queued per client: one board's password piping 60 KB requests",
        "# made the queues of the hub's readers 2.3 GB in 20 s (5–8 GB with the hub stopped; a Pi's",
        "# mosquitto killed, every board with it). A week of a busy centre's events is ~15 MB",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        "max_inflight_messages 100",
        "persistent_client_expiration 2d",
        *client_id_lines(),
        *size_limit_lines(),
        "",
    ]
    if tls is None:
        lines += listener_lines(port, listen)
        if tech_port:
            lines += listener_lines(tech_port, listen, tech=True)
    else:
        tls_lines = [f"cafile {tls.cafile}", f"certfile {tls.certfile}", f"keyfile {tls.keyfile}", "tls_version tlsv1.2"]
        if plain_on_localhost:
            lines += listener_lines(port, "127.0.0.1")
        lines += [*listener_lines(tls.port, listen), *tls_lines]
        if tech_port:
            lines += [*listener_lines(tech_port, listen, tech=True), *tls_lines]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Writing the files


@dataclass
class BrokerFiles:
    """Where ``write_broker_files`` put things."""

    conf: Path
    password_file: Path
    acl_file: Path
    passwords_dir: Path
    accounts: list[NodeAccount]
    passwords: dict[str, str]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def write_broker_files(out_dir: Path, site: Site, accounts: list[NodeAccount], *, rotate: bool = False,
                       install_dir: Path | None = None, listen: str = "0.0.0.0", port: int = 1883,
                       tls: TlsFiles | None = None, tech_port: int | None = DEFAULT_TECH_PORT) -> BrokerFiles:
    """Write ``mosquitto.conf``, ``passwd``, ``acl`` and ``passwords/<node>.pw`` into ``out_dir``.

    ``install_dir`` is where the broker will read ``passwd`` and ``acl`` from (the paths written
    into the conf); by default ``out_dir`` itself.
    """
    out_dir = Path(out_dir)
    pw_dir = out_dir / "passwords"
    pw_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pw_dir, 0o700)  # one board's password must not be readable by another account
    passwords: dict[str, str] = {}
    for acc in accounts:
        f = pw_dir / f"{acc.username}.pw"
        if f.exists() and not rotate:
            passwords[acc.username] = f.read_text().strip()
        else:
            passwords[acc.username] = new_password()
            _write_private(f, passwords[acc.username] + "\n")
    where = Path(install_dir) if install_dir else out_dir.resolve()
    pw_file, acl_file = out_dir / "passwd", out_dir / "acl"
    _write_private(pw_file, password_file_text(passwords))
    _write_private(acl_file, acl_text(site.site.slug, accounts))
    conf = out_dir / "mosquitto.conf"
    conf.write_text(mosquitto_conf_text(password_file=where / "passwd", acl_file=where / "acl", listen=listen,
                                        port=port, tls=tls, tech_port=tech_port))
    return BrokerFiles(conf, pw_file, acl_file, pw_dir, accounts, passwords)


# ---------------------------------------------------------------------------------------------
# CLI


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``broker-config`` to the ``xephang`` command line."""
    p = sub.add_parser("broker-config", help="Mosquitto config, passwords and ACL for a site / cấu hình broker",
                       description="Write mosquitto.conf (a conf.d fragment), passwd, acl and one password file "
                                   "per node for the site.")
    p.add_argument("--site-file", default=os.environ.get("XEPHANG_SITE_FILE"), required=not os.environ.get("XEPHANG_SITE_FILE"),
                   help="the site TOML (services, counters)")
    p.add_argument("--out", "-o", type=Path, default=Path("broker"), help="output folder (default ./broker)")
    p.add_argument("--install-dir", type=Path, default=None,
                   help="where the broker reads passwd/acl, e.g. /etc/mosquitto/xephang (default: --out)")
    p.add_argument("--dispensers", type=int, default=1, help="number of dispensers (dispenser-1 …)")
    p.add_argument("--display", action="append", default=None, help="display id (display-<id>); default hall")
    p.add_argument("--announcer", action="append", default=None, help="announcer id (announcer-<id>); default hall")
    p.add_argument("--tech", action="append", default=None, help="technician account (tech, tech-<name>); default tech")
    p.add_argument("--node", action="append", default=[], help="any extra node id")
    p.add_argument("--listen", default="0.0.0.0", help="listener address (default all)")
    p.add_argument("--port", type=int, default=1883, help="the boards' listener (client id = username)")
    p.add_argument("--tech-port", type=int, default=DEFAULT_TECH_PORT,
                   help=f"the technicians' listener, several terminals per account (default {DEFAULT_TECH_PORT}; 0: none)")
    p.add_argument("--tls-ca", type=Path, help="CA certificate: turns on a TLS listener")
    p.add_argument("--tls-cert", type=Path)
    p.add_argument("--tls-key", type=Path)
    p.add_argument("--tls-port", type=int, default=8883)
    p.add_argument("--rotate", action="store_true", help="new passwords for every account")
    p.set_defaults(func=run_broker_config)


def run_broker_config(args: argparse.Namespace) -> int:
    try:
        site = load_site(args.site_file)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        tls = tls_files_from_args(args, args.tls_port)
        check_ports(args.port, args.tech_port or None, args.tls_port if tls else None)
    except BrokerConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        techs = args.tech or list(DEFAULT_TECHNICIANS)
        for t in techs:
            if role_of(t) != "tech":
                raise BrokerConfigError(f"technician account {t!r} must be 'tech' or start with 'tech-'")
        accounts = site_accounts(site, dispensers=args.dispensers, displays=args.display or ["hall"],
                                 announcers=args.announcer or ["hall"], technicians=techs, extra=args.node)
    except (BrokerConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        files = write_broker_files(args.out, site, accounts, rotate=args.rotate, install_dir=args.install_dir,
                                   listen=args.listen, port=args.port, tls=tls, tech_port=args.tech_port or None)
    except OSError as exc:  # -o afile/broker, a read-only folder …: a reason, not a traceback
        where = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        print(f"không ghi được / cannot write {args.out}: {where}", file=sys.stderr)
        return 2
    print(f"Đã ghi / written: {files.conf}, {files.password_file}, {files.acl_file}")
    print(f"Mật khẩu từng nút / one password per node: {files.passwords_dir}/<node>.pw "
          f"({len(accounts)} tài khoản / accounts: {', '.join(a.username for a in accounts)})")
    print("Cài đặt / install: docs/install-pi.md §4")
    return 0
