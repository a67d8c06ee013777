"""``xephang bridge-config``: the Mosquitto bridge that carries a centre's events to the province.

The centre's broker opens one bridge connection to the province broker and sends, out only,
``xephang/v1/{site}/event/#`` (every ticket and counter event, QoS 1), the retained daily
summary ``xephang/v1/{site}/state/summary`` and the nodes' retained status, health and alerts
``xephang/v1/{site}/node/#`` (central monitoring; their health at QoS 0, not queued across a link
cut: ``bridge_lines``). Nothing comes back in: a province can never press
a centre's buttons. The bridge's own link state (``xephang/v1/{site}/bridge/state``, retained ``1``/``0``)
is published at both ends; at the province the bridge's Will turns it to ``0`` when the link dies.

The session is persistent on both sides (``cleansession false``, a stable ``remote_clientid``):
while the link is down the centre's broker keeps queuing the events for the bridge (on disk, with
``persistence true``), and they flow when the link returns; the province broker in turn keeps
them for the ingester's persistent session. The centre runs alone on its LAN the whole time.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from xephang.contract import ContractError, Topics, check_level
from xephang_ops.brokerconf import (
    MAX_QUEUED_BYTES,
    BrokerConfigError,
    TlsFiles,
    client_id_lines,
    listener_lines,
    size_limit_lines,
    tls_files_from_args,
)

# A week offline: ~2 000 events a day at a busy centre → 14 000; keep a wide margin. The
# queue lives in memory and in the persistence file; 200 000 events are ~100 MB at most.
BRIDGE_QUEUE_MESSAGES = 200_000


class BridgeConfigError(ValueError):
    """Inputs that cannot make a bridge configuration."""


@dataclass(frozen=True)
class BridgeTls:
    """Files for TLS to the province broker. ``certfile``/``keyfile`` only for client certificates."""

    cafile: Path
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = False  # only for a test CA without the broker's host name


def bridge_topics(site: str) -> list[str]:
    """The topic patterns a centre sends to the province: events, the daily summary, and its nodes'
    retained availability, health and alerts (central monitoring)."""
    t = Topics(site)
    return [t.all_events(), t.state_summary(), t.all_node()]


def bridge_lines(site: str) -> list[tuple[str, int]]:
    """``bridge_topics`` as the bridge's ``topic … out`` lines, with their QoS. The nodes' health at
    QoS 0: never queued while the link is down (``queue_qos0_messages false``; when it returns the
    bridge sends each node's retained health again, all the province reads of it). At QoS 1 every
    node's health (every 30 s) waited in the bridge's queue beside the events: ten nodes fill
    200,000 messages in a week's cut, and ``max_queued_bytes`` in about a day, after which the
    events were dropped. Statuses and alerts stay QoS 1: rare, and an alert cleared during a cut
    (an empty retained message) must reach the province, which no later resend would carry."""
    t = Topics(site)
    return [(t.all_events(), 1), (t.state_summary(), 1), (t.all_status(), 1), (t.all_alerts(), 1),
            (f"{t.root}/node/+/health", 0)]


def check_address(address: str) -> None:
    """``host:port`` with a port mosquitto can use; :class:`BridgeConfigError` saying why not.

    mosquitto reads ``address mqtt.tinh.gov.vn:88x3`` without a word and the bridge then never
    connects: a typo in the port must stop the command, not the link."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise BridgeConfigError(f"địa chỉ / address {address!r}: dùng / use host:port")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise BridgeConfigError(f"địa chỉ / address {address!r}: cổng phải là số 1-65535 / "
                                f"the port must be a number 1-65535 (host:port)")


def bridge_conf_text(*, site: str, address: str, username: str | None = None, password: str | None = None,
                     tls: BridgeTls | None = None, connection: str | None = None,
                     queue_messages: int = BRIDGE_QUEUE_MESSAGES, restart_s: tuple[int, int] = (5, 60),
                     global_options: bool = True) -> str:
    """The ``conf.d`` fragment for the centre's Mosquitto (2.0+).

    ``address`` is ``host:port`` of the province broker. ``global_options`` adds the broker-wide
    lines a long outage needs (persistence, a queue big enough for a week); leave them out when
    another fragment already sets them, and make sure that fragment's queue is as large.
    """
    try:
        check_level(site)
    except ContractError as exc:
        raise BridgeConfigError(str(exc)) from None
    check_address(address)
    if (username is None) != (password is None):
        raise BridgeConfigError("give both the province username and password, or neither")
    if tls and (tls.certfile is None) != (tls.keyfile is None):
        raise BridgeConfigError("a client certificate needs both --tls-cert and --tls-key")
    name = connection or f"xephang-province-{site}"
    lines = [
        f"# xephang bridge for site {site} → province broker {address}: generated by `xephang bridge-config`.",
        "# Out only: events, the daily summary and the nodes' status/health/alerts. Nothing comes in.",
    ]
    if global_options:
        lines += [
            "# queued events survive a restart of this broker (Debian's main file may already set it)",
            "persistence true",
            "# a week of events waits here while the link is down (this must be read after xephang.conf,",
            "# whose smaller limit would otherwise drop the oldest queued events)",
            f"max_queued_messages {int(queue_messages)}",
            f"max_queued_bytes {MAX_QUEUED_BYTES}",  # ~4 weeks of events; a flood's queues stay bounded
            "",
        ]
    lines += [
        f"connection {name}",
        f"address {address}",
        "bridge_protocol_version mqttv311",
        # persistent session on both ends: the province keeps what it has not acknowledged and
        # this broker keeps what it has not sent; a stable id finds the same session again
        "cleansession false",
        "local_cleansession false",
        f"remote_clientid xephang-bridge-{site}",
        f"local_clientid xephang-bridge-{site}-local",
        "queue_qos0_messages false",
        "try_private false",  # the province broker may be EMQX, not Mosquitto
        "start_type automatic",
        f"restart_timeout {int(restart_s[0])} {int(restart_s[1])}",
        "keepalive_interval 30",
        # the link's state, retained 1/0, on this broker and on the province's (where the bridge's Will
        # says 0 when the link dies): the province tells "centre unreachable" from "all quiet"
        "notifications true",
        "notifications_local_only false",
        f"notification_topic {Topics(site).bridge_state()}",
        "bridge_outgoing_retain true",  # the daily summary stays retained at the province
    ]
    if username is not None:
        lines += [f"remote_username {username}", f"remote_password {password}"]
    if tls is not None:
        lines.append(f"bridge_cafile {tls.cafile}")
        if tls.certfile and tls.keyfile:
            lines += [f"bridge_certfile {tls.certfile}", f"bridge_keyfile {tls.keyfile}"]
        lines += ["bridge_tls_version tlsv1.2", f"bridge_insecure {'true' if tls.insecure else 'false'}"]
    for pattern, qos in bridge_lines(site):
        lines.append(f"topic {pattern} out {qos}")
    return "\n".join(lines) + "\n"


PROVINCE_EVENT_TOPICS = ("xephang/v1/%u/event/ticket/+", "xephang/v1/%u/event/counter/+",
                         "xephang/v1/%u/event/summary/hourly")


def province_acl_text(*, ingest_users: tuple[str, ...] = ("ingest",)) -> str:
    """The province broker's ``acl_file``: each centre's bridge account (named after its site) writes only
    its own centre's topics, its link state included (so no centre can say another is up or down);
    the ingester's accounts read them all. Anything not granted here is refused.

    Mosquitto's ``%u`` is the account's username; an ingester account must not be named like a site.
    """
    for u in ingest_users:
        check_level(u)
    # the bridge's own topics with mosquitto's username pattern as the site
    own = [p.replace("xephang-site-u", "%u") for p in [*(t for t, _ in bridge_lines("xephang-site-u")),
                                                        Topics("xephang-site-u").bridge_state()]]
    # the bridge carries event/# out; the province takes only the events there are, and of the nodes
    # only their status, health and alerts (a centre's account left 5,000 retained 60 KB messages at
    # made-up event/… levels, sent again at every ingester start)
    own = [q for p in own for q in (PROVINCE_EVENT_TOPICS if p.endswith("/event/#") else (p,))]
    lines = ["# xephang province broker ACL: generated by `xephang province-acl`; regenerate, do not edit."]
    for u in ingest_users:
        lines += ["", f"user {u}"] + [f"topic read {p.replace('%u', '+')}" for p in own]
    lines += ["", "# every centre's bridge account is named after its site: it writes only its own centre's topics"]
    lines += [f"pattern write {p}" for p in own]
    return "\n".join(lines) + "\n"


PROVINCE_QUEUED_MESSAGES = 2_000_000  # a week of ~100 centres' events (~2,000 a centre a day) for the ingester
PROVINCE_QUEUED_BYTES = 2 * 1024 ** 3  # … and the memory they may take (~1 KB an event): 2 GiB


def province_queue_lines() -> list[str]:
    """Global lines that keep the ingester's queue while it is away (a restart, a database outage):
    without them Mosquitto keeps 1,000 messages per client and drops the rest after the bridges
    were told they arrived — lost for good (6,808 events of a centre catching up after a cut: 4,349
    stored). Read after Debian's mosquitto.conf (conf.d), the last value wins."""
    return [
        "# the ingester's persistent session keeps a week of every centre's events while it is away",
        f"max_queued_messages {PROVINCE_QUEUED_MESSAGES}",
        f"max_queued_bytes {PROVINCE_QUEUED_BYTES}",
        "persistence true",
        "autosave_interval 300",  # each autosave writes the whole store from one thread: a large backlog stalls it
    ]


def province_broker_conf_text(*, password_file: Path, acl_file: Path, port: int = 8883, listen: str = "",
                              tls: TlsFiles | None = None) -> str:
    """The province broker's ``conf.d`` fragment: passwords and the ACL of ``province_acl_text``, and
    **client ids bound to accounts** — on this listener a connection's client id is its username
    (``use_username_as_clientid``), so one centre's password can never log in under another
    centre's bridge id (``xephang-bridge-{site}``) and push that centre's link off the province (its
    persistent session lives under its own account's name). One ingester per ingest account: two
    under one account would take each other's place."""
    lines = ["# xephang province broker: generated by `xephang province-broker-config`; regenerate, do not edit.",
             *client_id_lines(), *size_limit_lines(), *province_queue_lines(), *listener_lines(port, listen)]
    if tls is not None:
        lines += [f"cafile {tls.cafile}", f"certfile {tls.certfile}", f"keyfile {tls.keyfile}", "tls_version tlsv1.2"]
    lines += ["allow_anonymous false", f"password_file {password_file}", f"acl_file {acl_file}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CLI


def os_reason(exc: OSError) -> str:
    """An OSError in one line: the file it is about and why (no errno, no traceback)."""
    if exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def write_output(path: Path, text: str) -> bool:
    """Write a generated file (making its folder); on failure say why in one line and return False.

    ``--out afile/x`` (a file where the folder should be), a read-only folder …: a reason, not a traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        print(f"không ghi được / cannot write {path}: {os_reason(exc)}", file=sys.stderr)
        return False
    return True


def missing_files(**files: Path | None) -> list[str]:
    """``--flag path`` of every given file that is not there, as the technician typed it."""
    return [f"--{flag.replace('_', '-')} {path}" for flag, path in files.items()
            if path is not None and not path.is_file()]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bridge-config`` to the ``xephang`` command line."""
    p = sub.add_parser("bridge-config", help="Mosquitto bridge from this centre to the province / cầu nối lên tỉnh",
                       description="Write the Mosquitto bridge fragment that sends this centre's events and daily "
                                   "summary to the province broker (out only, persistent, TLS).")
    p.add_argument("--site", default=os.environ.get("XEPHANG_SITE"), required=not os.environ.get("XEPHANG_SITE"),
                   help="site slug (the {site} of the topics)")
    p.add_argument("--address", required=True, help="province broker host:port, e.g. mqtt.tinh.gov.vn:8883")
    p.add_argument("--username", help="this centre's account on the province broker")
    p.add_argument("--password-file", type=Path, help="file holding that account's password")
    p.add_argument("--tls-ca", type=Path, help="CA certificate of the province broker (turns TLS on; must exist)")
    p.add_argument("--tls-cert", type=Path, help="client certificate, when the province asks for one")
    p.add_argument("--tls-key", type=Path)
    p.add_argument("--tls-insecure", action="store_true", help="do not check the broker's host name (test CAs only)")
    p.add_argument("--queue", type=int, default=BRIDGE_QUEUE_MESSAGES, help="events kept while the link is down")
    p.add_argument("--no-global", action="store_true", help="leave out persistence and the queue size")
    p.add_argument("--out", "-o", type=Path, default=Path("xephang-bridge.conf"),
                   help="output file (default ./xephang-bridge.conf; install into /etc/mosquitto/conf.d/)")
    p.set_defaults(func=run_bridge_config)
    a = sub.add_parser("province-acl", help="the province broker's ACL: each centre writes only its own topics / "
                                            "phân quyền broker tỉnh")
    a.add_argument("--ingest-user", action="append", default=None,
                   help="the ingester's account, reads every centre (repeatable; default ingest)")
    a.add_argument("--out", "-o", type=Path, default=Path("acl"), help="output file (the broker's acl_file)")
    a.set_defaults(func=run_province_acl)
    b = sub.add_parser("province-broker-config", help="the province broker's listener: passwords, ACL, client ids "
                                                      "bound to accounts / cấu hình broker tỉnh")
    b.add_argument("--password-file", type=Path, required=True,
                   help="the broker's password_file (must exist: mosquitto_passwd; written as an absolute path)")
    b.add_argument("--acl-file", type=Path, required=True,
                   help="the broker's acl_file (must exist: xephang province-acl; written as an absolute path)")
    b.add_argument("--port", type=int, default=8883)
    b.add_argument("--listen", default="", help="address to listen on (default: every address)")
    b.add_argument("--tls-ca", type=Path)
    b.add_argument("--tls-cert", type=Path)
    b.add_argument("--tls-key", type=Path)
    b.add_argument("--out", "-o", type=Path, default=Path("xephang-province.conf"),
                   help="output file (install into /etc/mosquitto/conf.d/)")
    b.set_defaults(func=run_province_broker_config)


def run_province_broker_config(args: argparse.Namespace) -> int:
    try:
        tls = tls_files_from_args(args, args.port)
    except BrokerConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    # mosquitto refuses to start over a password or ACL file it cannot open, and systemd starts it
    # from /: a relative path ("passwd", province-acl's default ./acl) or a file not yet made took
    # the province broker down, and every centre's bridge with it (docs/province.md: make them first)
    missing = missing_files(password_file=args.password_file, acl_file=args.acl_file)
    if missing:
        print(f"không có tệp / no such file: {', '.join(missing)} (tạo trước / make it first: mosquitto_passwd, "
              "xephang province-acl; docs/province.md)", file=sys.stderr)
        return 2
    text = province_broker_conf_text(password_file=args.password_file.resolve(), acl_file=args.acl_file.resolve(),
                                     port=args.port, listen=args.listen, tls=tls)
    if not write_output(args.out, text):
        return 2
    print(f"Đã ghi / written: {args.out} (conf.d fragment of the province broker; client ids bound to accounts)")
    return 0


def run_province_acl(args: argparse.Namespace) -> int:
    try:
        text = province_acl_text(ingest_users=tuple(args.ingest_user or ["ingest"]))
    except ContractError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not write_output(args.out, text):
        return 2
    print(f"Đã ghi / written: {args.out} (acl_file of the province broker; centres' accounts named after their site)")
    return 0


def run_bridge_config(args: argparse.Namespace) -> int:
    password = None
    if args.password_file:
        try:
            password = args.password_file.read_text().strip()
        except OSError as exc:
            print(f"không đọc được mật khẩu / cannot read the password: {exc}", file=sys.stderr)
            return 2
    if args.username and password is None:
        print("cần --password-file cùng --username / --username needs --password-file", file=sys.stderr)
        return 2
    if (args.tls_cert or args.tls_key) and not args.tls_ca:
        print("chứng chỉ máy khách cần --tls-ca / a client certificate needs --tls-ca", file=sys.stderr)
        return 2
    # mosquitto starts over a bridge_cafile it cannot read, and the bridge then never connects: the
    # centre's events wait for the province for ever with nothing said. Absolute paths: systemd
    # starts mosquitto from /
    missing = missing_files(tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)
    if missing:
        print(f"không có tệp / no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    tls = (BridgeTls(args.tls_ca.resolve(), args.tls_cert and args.tls_cert.resolve(),
                     args.tls_key and args.tls_key.resolve(), args.tls_insecure) if args.tls_ca else None)
    try:
        text = bridge_conf_text(site=args.site, address=args.address, username=args.username, password=password,
                                tls=tls, queue_messages=args.queue, global_options=not args.no_global)
    except BridgeConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not write_output(args.out, text):
        return 2
    if password is not None:
        args.out.chmod(0o640)  # holds the province password
    print(f"Đã ghi / written: {args.out}")
    print("Cài đặt / install: sudo cp it to /etc/mosquitto/conf.d/zz-xephang-bridge.conf && "
          "sudo systemctl restart mosquitto (docs/province.md)")
    return 0
