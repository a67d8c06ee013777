"""The technician's toolbox: ``xephang devices``, ``config get|push``, ``press``, ``tail``
(and ``broker-config``, from :mod:`xephang_ops.brokerconf`).

A tool is not a node: it publishes no availability and keeps no broker session, so it uses a
small client of its own (``ToolClient``) with a fresh client id per run — two terminals of the
same technician never kick each other off. Every publish waits for the broker's PUBACK and
reports its MQTT 5 reason code, so an ACL refusal is an error the technician sees, never a
silent drop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import queue
import secrets
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from paho.mqtt import client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ValidationError

from xephang import exits
from xephang.bus import client_id_for, paho_client
from xephang.clock import VN_TZ
from xephang.contract import (
    MAX_ALERTS_PER_NODE,
    Alert,
    ConfigAck,
    ConfigSet,
    ConfigState,
    HourlySummary,
    NodeHealth,
    NodeStatus,
    SimPress,
    SimPressAck,
    Topics,
    new_request_id,
)
from xephang.settings import BrokerSettings
from xephang.terminal import port_number, shown, shown_json, tech_port_default

log = logging.getLogger(__name__)

REFUSED = 128  # MQTT 5 reason codes from 0x80 up are failures (135 = not authorized)


M = TypeVar("M", bound=BaseModel)


class ToolError(RuntimeError):
    """A tool could not do what it was asked (broker refused, no answer …)."""


class ToolUsageError(ToolError):
    """What the technician gave cannot be used (a file that is missing or unreadable): exit 2."""


class BrokerTarget(BrokerSettings):
    """Where and as whom a tool connects: the daemons' broker settings plus the site, as the
    technician's account by default (an empty username: anonymous)."""

    site: str = "tuong-linh"
    username: str | None = "tech"


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    codes: list[int] = field(default_factory=list)


class ToolClient:
    """A short-lived MQTT 5 client for tools and tests: blocking connect/subscribe/publish.

    ``publish`` returns the broker's reason code (QoS 1): 0 or 16 (no subscribers) is success,
    135 means the ACL refused it. Received messages wait in ``inbox``.
    """

    def __init__(self, target: BrokerTarget, *, client_id: str | None = None) -> None:
        self.target = target
        self.topics = Topics(target.site)
        # a terminal of its own: the prefix keeps it apart from every node id (see brokerconf)
        self.client_id = client_id_for(client_id or f"{target.username or 'anon'}-{secrets.token_hex(3)}")
        self.inbox: queue.Queue[Received] = queue.Queue()
        self._lock = threading.Lock()
        self._waiters: dict[int, _Waiter] = {}
        self._given_up: set[int] = set()  # message ids waited for in vain: their late acks are dropped
        self._connected = threading.Event()
        self._connack: int | None = None
        # what subscribe() asked for: the session is clean, so a reconnect (the broker restarted under
        # `tail` or `devices --watch`) subscribes again in paho's thread, or the tool would sit silent
        self._filters: list[str] = []
        self._connects = 0
        self._link_said = (True, 1)  # (connected, connects) at the last link_notice()
        c = paho_client(target, self.client_id)  # no username = anonymous (brokers of a site refuse it)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_publish = self._on_ack
        c.on_subscribe = self._on_suback
        c.on_disconnect = lambda *a: self._connected.clear()
        self._client = c

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self._connack is not None and self._connack < REFUSED

    # paho thread: only hand things over
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._connack = int(getattr(rc, "value", rc))
        if not rc.is_failure:
            self._connects += 1
            with self._lock:
                filters = list(dict.fromkeys(self._filters))
            if self._connects > 1 and filters:  # a reconnect: nobody waits for this SUBACK
                _, mid = client.subscribe([(f, 1) for f in filters])
                with self._lock:
                    self._given_up.add(mid)
        self._connected.set()  # a refusal too: it wakes connect(), and _connack says why

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _ack(self, mid: int, codes: list[int]) -> None:
        with self._lock:
            if mid in self._given_up:  # its waiter timed out and is gone
                self._given_up.discard(mid)
                return
            w = self._waiters.setdefault(mid, _Waiter())
            w.codes = codes
            w.done.set()

    def _on_ack(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self._ack(mid, [int(getattr(rc, "value", rc))])

    def _on_suback(self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[Any], props: Any) -> None:
        self._ack(mid, [int(getattr(r, "value", r)) for r in rcs])

    def _wait(self, mid: int, timeout: float, what: str) -> list[int]:
        with self._lock:
            w = self._waiters.setdefault(mid, _Waiter())
        answered = w.done.wait(timeout)
        with self._lock:
            self._waiters.pop(mid, None)  # answered or not: a tool that retries keeps no waiter per try
            answered = w.done.is_set()  # an ack in the last instant counts
            if not answered:
                self._given_up.add(mid)
        if not answered:
            raise ToolError(f"no answer from the broker to {what} within {timeout:g} s")
        return w.codes

    # owner API
    def connect(self, timeout: float = 5.0) -> ToolClient:
        """Connect or raise ToolError (unreachable, bad credentials)."""
        t = self.target
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        try:
            self._client.connect(t.host, t.port, keepalive=30, clean_start=True, properties=props)
        except OSError as exc:
            raise ToolError(f"không kết nối được broker {t.host}:{t.port} / cannot reach the broker: {exc}") from None
        self._client.loop_start()
        if not self._connected.wait(timeout) or self._connack is None:
            self.close()
            raise ToolError(f"broker {t.host}:{t.port} did not answer within {timeout:g} s")
        if self._connack >= REFUSED:
            code = self._connack
            self.close()
            raise ToolError(f"broker từ chối {t.username!r} / refused {t.username!r}: reason {code}"
                            f"{' (sai tài khoản/mật khẩu hoặc không được phép / bad credentials or not authorized)' if code in (134, 135) else ''}")
        return self

    def subscribe(self, *filters: str, timeout: float = 5.0) -> list[int]:
        with self._lock:
            self._filters.extend(filters)
        _, mid = self._client.subscribe([(f, 1) for f in filters])
        return self._wait(mid, timeout, f"subscribe {filters}")

    def link_notice(self) -> str | None:
        """For a tool that keeps watching: a line to print when the link to the broker went or came
        back since the last call (paho reconnects by itself and this client subscribes again), else None."""
        now = (self.connected, self._connects)
        before, self._link_said = self._link_said, now
        if now == before:
            return None
        t = self.target
        if not now[0]:
            return (f"mất kết nối broker {t.host}:{t.port}, đang thử lại / lost the broker, reconnecting "
                    "(what happens meanwhile is not shown)")
        return f"đã kết nối lại broker / reconnected to the broker {t.host}:{t.port}"

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1,
                timeout: float = 5.0, expiry_s: float | None = None) -> int:
        """Publish and return the broker's reason code (0 when QoS 0). ``expiry_s``: the broker drops the
        message if it cannot hand it on within that long (MQTT 5 message expiry), so an order to a node
        that is offline is not carried out hours later, after the tool said it was not."""
        props = None
        if expiry_s:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = max(1, math.ceil(expiry_s))
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos == 0:
            return 0
        return self._wait(info.mid, timeout, f"publish to {topic}")[0]

    def get(self, timeout: float) -> Received | None:
        try:
            return self.inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def drain_retained(self, quiet_s: float = 0.3, timeout: float = 3.0) -> list[Received]:
        """Messages arriving until the line is quiet for ``quiet_s`` (retained ones come at once)."""
        out: list[Received] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.get(min(quiet_s, end - time.monotonic()))
            if m is None:
                break
            out.append(m)
        return out

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> ToolClient:
        return self if self._connack is not None else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Devices


@dataclass
class DeviceView:
    """What the retained topics say about one node."""

    node: str
    status: NodeStatus | None = None
    health: NodeHealth | None = None
    alerts: dict[str, Alert] = field(default_factory=dict)
    config: ConfigState | None = None
    alerts_not_kept: int = 0  # alerts over MAX_ALERTS_PER_NODE, or naming another node

    @property
    def online(self) -> bool:
        return bool(self.status and self.status.online)

    @property
    def role(self) -> str:
        return (self.status.role if self.status else "") or (self.health.role if self.health else "")


class DeviceRegistry:
    """Folds retained ``node/#`` and ``config/+/state`` messages into a view per node."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.devices: dict[str, DeviceView] = {}

    def update(self, topic: str, payload: bytes) -> str | None:
        """Fold one message; returns the node it was about, or None when it was not ours."""
        try:
            levels = self.topics.parse(topic)
        except ValueError:
            return None
        try:
            if levels[0] == "node" and len(levels) >= 3:
                d = self.devices.setdefault(levels[1], DeviceView(levels[1]))
                if levels[2] == "status" and payload:
                    st = NodeStatus.model_validate_json(payload)
                    # a late Will of an older session does not mark a live node offline
                    if not (d.status and d.status.online and not st.online and st.session < d.status.session):
                        d.status = st
                elif levels[2] == "health" and payload:
                    d.health = NodeHealth.model_validate_json(payload)
                elif levels[2] == "alert" and len(levels) == 4:
                    if not payload:
                        d.alerts.pop(levels[3], None)
                        return d.node
                    a = Alert.model_validate_json(payload)
                    # as webd and the province (docs/protocol.md): a node speaks for itself, and keeps a
                    # handful of alerts; one password wrote 3,000 of 60,000 characters (a 180 MB table)
                    if a.node != d.node or a.id != levels[3] or (
                            levels[3] not in d.alerts and len(d.alerts) >= MAX_ALERTS_PER_NODE):
                        d.alerts_not_kept += 1
                        return d.node
                    d.alerts[levels[3]] = a
                return d.node
            if levels[0] == "config" and len(levels) == 3 and levels[2] == "state" and payload:
                d = self.devices.setdefault(levels[1], DeviceView(levels[1]))
                d.config = ConfigState.model_validate_json(payload)
                return d.node
        except ValidationError as exc:
            log.warning("ignoring a malformed message on %s: %s", topic, exc.errors()[0]["msg"])
        return None

    def signature(self) -> tuple[Any, ...]:
        """What a technician watches for: who is online, versions, config revs, alerts (not uptimes,
        which move with every heartbeat)."""
        return tuple(sorted((d.node, d.role, d.online, (d.health.version if d.health else ""),
                             d.config.rev if d.config else (d.health.config_rev if d.health else 0),
                             d.config.restart_required if d.config else False,
                             tuple(sorted((a.id, a.message_vi) for a in d.alerts.values())))
                            for d in self.devices.values()))

    def table(self, lang: str = "vi") -> str:
        """One line per node, sorted hub first."""
        head = ("NÚT", "VAI TRÒ", "TRẠNG THÁI", "PHIÊN BẢN", "CHẠY", "CẤU HÌNH", "CẢNH BÁO") if lang == "vi" else \
            ("NODE", "ROLE", "STATUS", "VERSION", "UPTIME", "CONFIG", "ALERTS")
        rows = [head]
        order = {"hub": 0, "dispenser": 1, "counter": 2, "display": 3, "announcer": 4}
        for d in sorted(self.devices.values(), key=lambda d: (order.get(d.node.split("-")[0], 9), _natural(d.node))):
            if (d.status is None and d.health is None) or d.node == "tech" or d.node.startswith("tech-"):
                continue  # a technician's tool is not a device of the centre
            state = ("trực tuyến" if lang == "vi" else "online") if d.online else ("MẤT KẾT NỐI" if lang == "vi" else "OFFLINE")
            version = (d.health.version if d.health else "") or (d.status.version if d.status else "")
            uptime = _duration(d.health.uptime_s) if d.health else "-"
            rev = d.config.rev if d.config else (d.health.config_rev if d.health else 0)
            cfg = f"rev {rev}" + (" ⟳" if d.config and d.config.restart_required else "")
            alerts = ", ".join(f"{a.id}: {_cut(a.message_vi if lang == 'vi' else a.message_en or a.message_vi)}"
                               for a in d.alerts.values()) or "-"
            if d.alerts_not_kept:
                alerts += (f" (+{d.alerts_not_kept} cảnh báo không giữ)" if lang == "vi" else
                           f" (+{d.alerts_not_kept} alerts not kept)")
            rows.append(tuple(shown(c) for c in (d.node, d.role or "-", state, version or "-", uptime, cfg, alerts)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
                         for r in rows)


ALERT_TEXT_SHOWN = 160  # characters of one alert in the table (its retained topic has it whole)


def _cut(text: str) -> str:
    return text if len(text) <= ALERT_TEXT_SHOWN else text[:ALERT_TEXT_SHOWN - 1] + "…"


def _natural(s: str) -> tuple[Any, ...]:
    head, _, tail = s.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (s, 0)


def _duration(seconds: float) -> str:
    if not 0 <= seconds < 100 * 365 * 86400:  # a board's password can say anything (NaN, 1e308): not a duration
        return "?"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# ---------------------------------------------------------------------------------------------
# Events in plain Vietnamese


def describe_event(payload: bytes | dict[str, Any], lang: str = "vi") -> str:
    """One readable line for a ticket or counter event, or the hub's hourly summary (``tail`` and the
    demo's live line)."""
    e = payload if isinstance(payload, dict) else json.loads(payload)
    at = e.get("at")
    when = datetime.fromtimestamp(at, VN_TZ).strftime("%H:%M:%S") if isinstance(at, int | float) else "--:--:--"
    kind = e.get("kind", "?")
    t = e.get("ticket") or {}
    num = t.get("display") or str(t.get("number", "?"))
    svc = e.get("service_name_vi" if lang == "vi" else "service_name_en") or e.get("service_name_vi") or t.get("service", "")
    counter = e.get("counter") or t.get("counter")
    prio = " (ưu tiên)" if t.get("priority_group") and lang == "vi" else " (priority)" if t.get("priority_group") else ""
    vi = {
        "issued": f"Cấp số {num}{prio} — {svc}"
                  + (f", {e['people_ahead']} người chờ trước" if e.get("people_ahead") is not None else ""),
        "called": f"Mời số {num} đến quầy {counter}",
        "recalled": f"Gọi lại số {num} đến quầy {counter} (lần {t.get('recalls', 1)})",
        "finished": f"Quầy {counter} xong số {num}" + (" (thời điểm suy ra)" if e.get("inferred") else ""),
        "no-show": f"Số {num} vắng mặt" + (f" tại quầy {counter}" if counter else "")
                   + (" — xếp lại cuối hàng" if e.get("reason") == "requeued" else ""),
        "transferred": f"Số {num} chuyển sang {svc}",
        "voided": f"Huỷ số {num}" + (f" ({e['reason']})" if e.get("reason") else ""),
        # the event does not carry the site's scale (3 or 5): the score, not stars out of a guessed 5
        "rated": f"Số {num} đánh giá quầy {counter}: {e.get('score')} điểm",
        "arrived": f"Công dân số {num} đã đến quầy {counter}",
        "expired": f"Số {num} hết hạn cuối ngày",
        "paused": f"Quầy {counter} tạm nghỉ" + (f" ({e['reason']})" if e.get("reason") else ""),
        "resumed": f"Quầy {counter} làm việc lại",
    }
    en = {
        "issued": f"Ticket {num}{prio} issued — {svc}"
                  + (f", {e['people_ahead']} ahead" if e.get("people_ahead") is not None else ""),
        "called": f"Number {num} called to counter {counter}",
        "recalled": f"Number {num} recalled to counter {counter} (time {t.get('recalls', 1)})",
        "finished": f"Counter {counter} finished {num}" + (" (inferred)" if e.get("inferred") else ""),
        "no-show": f"Number {num} did not show" + (f" at counter {counter}" if counter else "")
                   + (" — back to the end of the queue" if e.get("reason") == "requeued" else ""),
        "transferred": f"Number {num} transferred to {svc}",
        "voided": f"Ticket {num} voided" + (f" ({e['reason']})" if e.get("reason") else ""),
        "rated": f"Number {num} rated counter {counter}: {e.get('score')} point{'s' if e.get('score') != 1 else ''}",
        "arrived": f"Number {num} arrived at counter {counter}",
        "expired": f"Ticket {num} expired at day end",
        "paused": f"Counter {counter} paused" + (f" ({e['reason']})" if e.get("reason") else ""),
        "resumed": f"Counter {counter} resumed",
    }
    if "kind" in e:
        text = (vi if lang == "vi" else en).get(kind, f"{kind} {num}")
    elif e.get("schema") == HourlySummary.SCHEMA or "this_hour" in e:
        text = _describe_hourly(e, lang)
    else:  # an event this tool does not know yet: its schema, not "? ?"
        text = f"{e.get('schema') or '?'}"
    return shown(f"{when}  {text}")  # names, numbers and reasons are the payload's words


def _describe_hourly(e: dict[str, Any], lang: str) -> str:
    """The hub's hourly summary (``event/summary/hourly``): that hour's figures, then the day's."""
    h = e.get("hour")
    hours = f"{h:02d}:00–{(h + 1) % 24:02d}:00" if isinstance(h, int) and not isinstance(h, bool) else "?"
    th = e.get("this_hour") if isinstance(e.get("this_hour"), dict) else {}

    def n(d: dict[str, Any], key: str) -> str:
        v = d.get(key, 0)
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else "?"

    if lang == "vi":
        return (f"Tổng hợp giờ {hours}: cấp {n(th, 'issued')} số, xong {n(th, 'served')}, vắng {n(th, 'no_shows')} — "
                f"cả ngày cấp {n(e, 'issued')}, xong {n(e, 'served')}, đang chờ {n(e, 'waiting')}")
    return (f"Hourly summary {hours}: {n(th, 'issued')} issued, {n(th, 'served')} served, {n(th, 'no_shows')} "
            f"no-shows — day so far {n(e, 'issued')} issued, {n(e, 'served')} served, {n(e, 'waiting')} waiting")


# ---------------------------------------------------------------------------------------------
# Config


class ConfigFileError(ValueError):
    pass


# the section of each daemon's settings file that is its pushable node config
CONFIG_SECTIONS = ("ticket", "counter", "display", "announcer", "hub")


# the keys of ``config get``'s output (and of the retained config state it prints): such a file is
# pushed as its "config", against its "rev"
CONFIG_GET_KEYS = frozenset({"node", "rev", "restart_required", "config", "at", "schema"})


@dataclass
class PushFile:
    """What a file to push says: the options, and when it is ``config get``'s output, the node and
    the rev it was read at (the push's ``base_rev``: a real stale check)."""

    config: dict[str, Any]
    base_rev: int | None = None
    node: str | None = None


def read_config_file(path: Path) -> dict[str, Any]:
    """A partial node config from TOML or JSON (by extension; TOML otherwise): the options only
    (``read_push_file`` also gives the rev of ``config get``'s output)."""
    return read_push_file(path).config


def read_push_file(path: Path) -> PushFile:
    """A partial node config from TOML or JSON (by extension; TOML otherwise).

    Three shapes the docs show are taken as they are meant: ``config get``'s output
    (``{"node", "rev", "restart_required", "config"}``: its config, against its rev), the MQTT
    payload's ``{"config": {…}}`` and a copy of a settings file's section (``[display]`` …): the
    last two are unwrapped to the options, with no rev of their own."""
    data = _load_config_file(path)
    if isinstance(data.get("config"), dict) and "rev" in data and set(data) <= CONFIG_GET_KEYS:
        rev, node = data["rev"], data.get("node")
        if isinstance(rev, bool) or not isinstance(rev, int) or rev < 0:
            raise ConfigFileError(f"{path}: \"rev\" must be the whole number `config get` printed, not {rev!r}")
        if node is not None and not isinstance(node, str):
            raise ConfigFileError(f"{path}: \"node\" must be a node id, not {node!r}")
        return PushFile(data["config"], rev, node)
    if len(data) == 1:
        (key, inner), = data.items()
        if isinstance(inner, dict) and (key == "config" or key in CONFIG_SECTIONS):
            return PushFile(inner)
    if any(k in CONFIG_SECTIONS or k == "config" for k in data) and any(isinstance(v, dict) for v in data.values()):
        raise ConfigFileError(
            f"{path}: push only the node's options (the keys of its [{'|'.join(CONFIG_SECTIONS)}] section, "
            f"{{\"config\": {{…}}}}, or `xephang config get`'s output as it is), not a whole settings file: "
            f"found sections {sorted(data)}")
    return PushFile(data)


def _load_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(raw) if str(path).endswith(".json") else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a table/object")
    return data


def fetch_retained(client: ToolClient, topic: str, model: type[M], timeout: float) -> M | None:
    """The retained message on ``topic`` as ``model``, or None when there is none (or it is junk)."""
    client.subscribe(topic)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = client.get(end - time.monotonic())
        if m is None:
            break
        if m.topic == topic and m.payload:
            with contextlib.suppress(ValidationError):
                return model.model_validate_json(m.payload)
    return None


def fetch_config_state(client: ToolClient, node: str, timeout: float = 2.0) -> ConfigState | None:
    """The node's retained config state, or None when it never published one."""
    return fetch_retained(client, client.topics.config_state(node), ConfigState, timeout)


@dataclass
class PushResult:
    ack: ConfigAck | None
    base_rev: int | None
    exit_code: int
    why: str = ""


def fetch_status(client: ToolClient, node: str, timeout: float = 1.0) -> NodeStatus | None:
    """The node's retained availability, or None when no node of that name ever connected."""
    return fetch_retained(client, client.topics.status(node), NodeStatus, timeout)


def is_technician(username: str | None) -> bool:
    """A technician's account: ``tech`` or ``tech-…`` (``broker-config --tech`` takes no other name). The
    broker grants a board's subscription to what its ACL hides and filters it without a word (mosquitto's
    SUBACK says granted), so the tools tell a board's account by its name, before they show an empty
    or half-filled answer as if it were the centre's."""
    from xephang.contract import BadPayload
    from xephang_ops.brokerconf import BrokerConfigError, role_of

    try:
        return bool(username) and role_of(username) == "tech"  # the rule broker-config makes accounts by
    except (BrokerConfigError, BadPayload, ValueError):
        return False


def no_config_state(client: ToolClient, node: str) -> tuple[int, str]:
    """Why ``node`` shows no config state, as (exit code, reason): 4 a board's account, which the
    broker hides config states from without a word (a forbidden subscription is granted and
    filtered); 3 no node of that name ever connected, it is offline, or it has nothing pushable."""
    who = client.target.username
    if not is_technician(who):
        return exits.NOT_ALLOWED, (f"{who!r} is not a technician account (tech, tech-…): the broker's ACL lets only "
                                   "technicians read and push config")
    status = fetch_status(client, node)
    why = ("no node of that name has ever connected" if status is None else
           "it is offline" if not status.online else "it has no pushable config")
    return exits.NO_ANSWER, f"{node}: no config state ({why})"


def push_config(client: ToolClient, node: str, config: dict[str, Any], *, source: str = "tech", by: str = "",
                base_rev: int | None = None, use_base: bool = True, timeout: float = 10.0) -> PushResult:
    """Send ``config`` to ``node`` against ``base_rev`` (the rev the change was made on: ``config get``'s)
    and wait for the ack; no ``base_rev`` = against the rev the node has now, read right before sending
    (only a change in the instant between counts as stale); ``use_base=False``: no stale check.

    Exit codes: 0 applied / restart required, 1 rejected, 2 stale, 3 no answer, 4 refused by the broker.
    """
    t = client.topics
    if use_base and base_rev is None:
        st = fetch_config_state(client, node)
        if st is None:
            code, why = no_config_state(client, node)
            return PushResult(None, None, code, why + ("; --force pushes without the stale check"
                                                       if code == exits.NO_ANSWER else ""))
        base_rev = st.rev
    client.subscribe(t.config_ack(node))
    push = ConfigSet(request_id=new_request_id(), source=source, by=by, base_rev=base_rev if use_base else None,
                     config=config)
    # it expires with the wait: an offline node's session would otherwise keep it and apply it when the
    # node comes back, after the technician was told "no ack" and has moved on
    rc = client.publish(t.config_set(node), push.to_json(), expiry_s=timeout)
    if rc >= REFUSED:
        return PushResult(None, base_rev, exits.NOT_ALLOWED)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = client.get(end - time.monotonic())
        if m is None or m.topic != t.config_ack(node) or not m.payload:
            continue
        ack = ConfigAck.model_validate_json(m.payload)
        if ack.request_id != push.request_id:
            continue
        code = {"applied": exits.OK, "restart-required": exits.OK, "rejected": exits.REFUSED,
                "stale": exits.USAGE}[ack.status]
        return PushResult(ack, base_rev, code)
    return PushResult(None, base_rev, exits.NO_ANSWER)


# ---------------------------------------------------------------------------------------------
# CLI


def positive_seconds(text: str) -> float:
    """argparse ``type`` of a wait an order expires with: more than 0 (an MQTT expiry of 0 is none at all)."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"số giây từ 0 đến 3600 / seconds, more than 0 and at most 3600: {text!r}")
    return v


def non_negative_int(text: str) -> int:
    """argparse ``type`` of a config rev: a whole number from 0."""
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"số rev từ 0 / a rev, a whole number from 0: {text!r}")
    return v


def add_broker_options(p: argparse.ArgumentParser) -> None:
    """--host/--port/--username/--password-file/--site, defaulting to the XEPHANG_* variables."""
    env = os.environ.get
    g = p.add_argument_group("broker")
    g.add_argument("--host", default=env("XEPHANG_BROKER__HOST", "127.0.0.1"))
    g.add_argument("--port", type=port_number, default=tech_port_default(),
                   help="the technicians' listener of the site's broker, where several terminals may run at once "
                        "(default $XEPHANG_TECH_PORT, $XEPHANG_BROKER__PORT or 1884)")
    g.add_argument("--username", "-u", default=env("XEPHANG_TECH_USER", "tech"), help="technician account (default tech)")
    g.add_argument("--password-file", type=Path, default=env("XEPHANG_TECH_PASSWORD_FILE") or None,
                   help="file holding the password (from xephang broker-config: passwords/tech.pw)")
    g.add_argument("--site", default=env("XEPHANG_SITE", "tuong-linh"), help="site slug (topic root)")
    g.add_argument("--tls", action="store_true", help="connect with TLS")
    g.add_argument("--ca-file", type=Path, default=None, help="CA certificate for --tls")
    g.add_argument("--lang", choices=("vi", "en"), default=env("XEPHANG_LANG", "vi"))


def target_from_args(args: argparse.Namespace) -> BrokerTarget:
    try:
        pw = args.password_file.read_text().strip() if args.password_file else os.environ.get("XEPHANG_TECH_PASSWORD")
    except OSError as exc:
        raise ToolUsageError(f"không đọc được tệp mật khẩu / cannot read the password file {args.password_file}: "
                             f"{exc.strerror or exc}") from None
    return BrokerTarget(site=args.site, host=args.host, port=args.port, username=args.username, password=pw,
                        tls=args.tls or bool(args.ca_file), ca_file=args.ca_file)


def _tool(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn ToolError into a one-line message and its exit code (xephang.exits)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ToolUsageError as exc:
            print(f"lỗi / error: {exc}", file=sys.stderr)
            return exits.USAGE
        except ToolError as exc:
            print(f"lỗi / error: {exc}", file=sys.stderr)
            return exits.NO_BROKER
        except KeyboardInterrupt:
            return exits.INTERRUPTED

    return run


def cmd_devices(args: argparse.Namespace) -> int:
    tgt = target_from_args(args)
    reg = DeviceRegistry(Topics(tgt.site))
    with ToolClient(tgt) as c:
        # a board's account reads the nodes' statuses but not their health or config states: the table
        # would show every node online at rev 0 with no uptime, as if it were so (docs/tools.md, exit 4)
        codes = c.subscribe(c.topics.all_node(), c.topics.all_config_states())
        if not is_technician(tgt.username) or any(rc >= REFUSED for rc in codes):
            print(f"lỗi / error: {shown(repr(tgt.username))} không phải tài khoản kỹ thuật viên / is not a technician account "
                  "(tech, tech-…): the broker's ACL shows it the nodes' statuses only, not their health or config "
                  "(log in as `tech` or `tech-…`)", file=sys.stderr)
            return exits.NOT_ALLOWED
        for m in c.drain_retained(quiet_s=args.wait, timeout=max(args.wait * 4, 2)):
            reg.update(m.topic, m.payload)
        if not reg.devices:  # a new centre, or a typo in --site (the ACL shows a site only its own topics)
            print(shown(f"Chưa thấy nút nào trên site {tgt.site!r}: --site có đúng không (tên site, $XEPHANG_SITE)? / "
                        f"no node has reported yet on site {tgt.site!r}: is --site right (the site's slug, "
                        "$XEPHANG_SITE)?"))
        else:
            print(reg.table(args.lang))
        if not args.watch:
            return 0
        last = reg.signature()
        while True:
            m = c.get(1.0)
            if (notice := c.link_notice()) is not None:
                print(notice, file=sys.stderr, flush=True)
            if m is None:
                continue
            node = reg.update(m.topic, m.payload)
            if node and reg.signature() != last:  # a heartbeat alone changes nothing worth a new table
                last = reg.signature()
                print(f"\n{datetime.now(VN_TZ):%H:%M:%S} — {shown(node)}")
                print(reg.table(args.lang), flush=True)


def cmd_config_get(args: argparse.Namespace) -> int:
    tgt = target_from_args(args)
    with ToolClient(tgt) as c:
        st = fetch_config_state(c, args.node, timeout=args.timeout)
        if st is None:
            code, why = no_config_state(c, args.node)
            print(f"lỗi / error: không có cấu hình / {shown(why)}", file=sys.stderr)
            return code
    body = {"node": st.node, "rev": st.rev, "restart_required": st.restart_required, "config": st.config}
    print(shown_json(body, indent=2))
    return 0


def cmd_config_push(args: argparse.Namespace) -> int:
    if len(args.by) > 80 or any(ord(ch) < 32 or ord(ch) == 127 for ch in args.by):
        print("lỗi / error: --by: a name of at most 80 characters, on one line", file=sys.stderr)
        return exits.USAGE
    try:
        pf = read_push_file(args.file)
        if pf.node is not None and pf.node != args.node:
            raise ConfigFileError(
                f"{args.file} là cấu hình của {pf.node!r}, không phải {args.node!r} / is `config get {pf.node}`'s "
                f"output, not {args.node}'s: push it to {pf.node}, or keep only its \"config\" to copy it")
    except ConfigFileError as exc:
        print(f"lỗi / error: {shown(str(exc))}", file=sys.stderr)
        return exits.REFUSED
    base = args.base_rev
    if pf.base_rev is not None and base is not None and base != pf.base_rev:
        print(f"lỗi / error: {args.file} was read at rev {pf.base_rev} (`config get`), --base-rev says {base}: "
              "give one of them", file=sys.stderr)
        return exits.USAGE
    if base is None:
        base = pf.base_rev
    if args.force and base is not None:
        if args.base_rev is not None:
            print("lỗi / error: --force pushes with no base rev; --base-rev asks for one: give one of them",
                  file=sys.stderr)
            return exits.USAGE
        base = None  # `config get`'s output pushed with --force: no stale check, as asked
    tgt = target_from_args(args)
    with ToolClient(tgt) as c:
        res = push_config(c, args.node, pf.config, source=tgt.username, by=args.by, base_rev=base,
                          use_base=not args.force, timeout=args.timeout)
    a = res.ack
    if res.why:
        print(f"lỗi / error: {res.why}", file=sys.stderr)
    elif res.exit_code == 4:
        print(f"{args.node}: broker từ chối / the broker refused the push (ACL: is {tgt.username!r} a technician?)",
              file=sys.stderr)
    elif a is None:
        print(f"{args.node}: không có phản hồi sau {args.timeout:g} s / no ack within {args.timeout:g} s (node offline?). "
              "The push expires at the broker within a second after the wait: a node that comes back later does not "
              "apply it (`xephang config get` shows what it runs)", file=sys.stderr)
    elif a.status == "applied" and not a.changed:
        print(f"{args.node}: không có gì thay đổi / nothing changed — the node runs this already, rev {a.rev}")
    elif a.status == "applied":
        print(f"{args.node}: đã áp dụng / applied — rev {res.base_rev} → {a.rev}")
    elif a.status == "restart-required":
        print(f"{args.node}: đã lưu, cần khởi động lại / saved, RESTART REQUIRED — rev {res.base_rev} → {a.rev}")
    elif a.status == "stale":
        # only the hub has a second writer (the head's roster page): for a board, another technician
        web_vi, web_en = (" (vd. trưởng bộ phận sửa phân công trên web)", " (the head's roster on the web?)") \
            if args.node == "hub" else ("", "")
        print(f"{args.node}: bị từ chối vì cũ, không thay đổi gì — nút đã ở rev {a.rev}, thay đổi của bạn làm trên "
              f"rev {res.base_rev}: đã có người sửa trong lúc đó{web_vi}. Chạy lại `xephang config get {args.node}`, "
              f"làm lại thay đổi trên đó rồi đẩy, hoặc --force để ghi đè / STALE, nothing changed — the node is at "
              f"rev {a.rev}, your change was made on rev {res.base_rev}: someone changed it since{web_en}. Run "
              f"`xephang config get {args.node}` again, redo your edit on it and push that; or --force to overwrite "
              "their change", file=sys.stderr)
    else:
        print(f"{args.node}: bị từ chối, không thay đổi gì ({len(a.errors)} lỗi, rev {a.rev}) / REJECTED, nothing "
              f"changed ({len(a.errors)} error{'s' if len(a.errors) != 1 else ''}, rev {a.rev}):",
              file=sys.stderr)
        for e in a.errors:
            print(f"  - {shown(e)}", file=sys.stderr)
    return res.exit_code


def press_key(client: ToolClient, node: str, button: str, *, hold_s: float = 0.0,
              timeout: float = 3.0) -> tuple[int, str]:
    """Press a simulated key and wait for the node's answer: (exit code, what to print).

    0 the node pressed it; 1 the node refused it (no such key: its reason); 3 no answer (offline,
    not in sim mode, or no such node); 4 the broker refused the press (not a technician)."""
    try:
        press = SimPress(button=button, hold_s=hold_s)
    except ValidationError as exc:
        return exits.REFUSED, f"{node}: phím không hợp lệ / not a key name: {button!r} ({exc.errors()[0]['msg']})"
    ack_topic = client.topics.sim_ack(node)
    client.subscribe(ack_topic, client.topics.status(node))
    rc = client.publish(client.topics.sim_press(node), press.to_json(), expiry_s=timeout)  # as config push
    if rc >= REFUSED:
        return exits.NOT_ALLOWED, f"broker từ chối / the broker refused the press (reason {rc}: is {client.target.username!r} a technician?)"
    status: NodeStatus | None = None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = client.get(end - time.monotonic())
        if m is None:
            break
        if m.topic == client.topics.status(node) and m.payload:
            with contextlib.suppress(ValidationError):
                status = NodeStatus.model_validate_json(m.payload)
            continue
        if m.topic != ack_topic:
            continue
        try:
            ack = SimPressAck.model_validate_json(m.payload)
        except ValidationError:
            continue
        if ack.press_id != press.press_id:
            continue
        if ack.status == "refused":
            return exits.REFUSED, f"{node}: từ chối / refused {button!r}: {ack.reason}"
        held = f" ({hold_s:g} s)" if hold_s else ""
        # the key went down; what came of it (a ticket, or the hub's refusal) is the node's to say
        return exits.OK, (f"{node}: đã nhấn / pressed {button}{held} — kết quả (số mới, lượt gọi) xem bằng "
                          f"`xephang tail`; không có gì thì xem nhật ký của nút / what it did shows in `xephang "
                          "tail`; nothing there: the node's log")
    why = ("chưa từng kết nối / no node of that name has ever connected" if status is None else
           "đang mất kết nối / it is offline" if not status.online else
           "không chạy chế độ mô phỏng / it does not run in sim mode")
    return exits.NO_ANSWER, (f"{node}: không trả lời sau {timeout:g} s / no answer within {timeout:g} s: {why}; "
                             "the press expires at the broker within a second after the wait: "
                             "a node that comes back later will not press it")


def cmd_press(args: argparse.Namespace) -> int:
    tgt = target_from_args(args)
    with ToolClient(tgt) as c:
        code, text = press_key(c, args.node, args.button, hold_s=args.hold, timeout=args.timeout)
    print(shown(text), file=sys.stdout if code == 0 else sys.stderr)  # the node's reason is in it
    return code


def cmd_tail(args: argparse.Namespace) -> int:
    tgt = target_from_args(args)
    with ToolClient(tgt) as c:
        c.subscribe(c.topics.all_events())
        seen = 0
        while args.count is None or seen < args.count:
            m = c.get(1.0)
            if (notice := c.link_notice()) is not None:
                print(notice, file=sys.stderr, flush=True)
            if m is None:
                continue
            try:
                line = _payload_as_json(m.payload) if args.json else describe_event(m.payload, args.lang)
            except (ValueError, TypeError) as exc:
                line = f"?? {m.topic}: {exc}"
            print(shown(line), flush=True)
            seen += 1
    return 0


def _payload_as_json(payload: bytes) -> str:
    """``tail --json``: the payload's JSON, the same value with its control characters escaped (or, when
    it is no JSON, its text; printed through ``shown``)."""
    text = payload.decode()
    try:
        return shown_json(json.loads(text))
    except ValueError:
        return text


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add devices, config, press, tail and broker-config to the ``xephang`` command line."""
    p = sub.add_parser("devices", help="every node: online, version, uptime, config rev, alerts / các thiết bị")
    add_broker_options(p)
    p.add_argument("--watch", "-w", action="store_true",
                   help="keep watching; reprint when a node goes on/offline, changes version or config, or an alert "
                        "is raised or cleared (not on heartbeats)")
    p.add_argument("--wait", type=float, default=0.5, help="seconds of quiet that end the retained burst")
    p.set_defaults(func=_tool(cmd_devices))

    p = sub.add_parser("config", help="get or push a node's config / cấu hình nút")
    csub = p.add_subparsers(dest="config_cmd", metavar="get|push", required=True)
    g = csub.add_parser("get", help="print the node's current config (secrets masked)")
    g.add_argument("node")
    add_broker_options(g)
    g.add_argument("--timeout", type=float, default=2.0)
    g.set_defaults(func=_tool(cmd_config_get))
    ps = csub.add_parser("push", help="push a TOML/JSON file, wait for the ack")
    ps.add_argument("node")
    ps.add_argument("file", type=Path)
    add_broker_options(ps)
    ps.add_argument("--force", action="store_true", help="push without a base revision (no stale check)")
    ps.add_argument("--base-rev", type=non_negative_int, default=None, metavar="N",
                    help="the rev your change was made on (`config get`'s): the node refuses it as stale (exit 2) if "
                         "it changed since. A file that is `config get`'s output carries its own; a plain options "
                         "file without one is pushed against the rev the node has when you push (no real check)")
    ps.add_argument("--by", default="", help="your name, kept with the change (the hub's site history)")
    ps.add_argument("--timeout", type=positive_seconds, default=10.0,
                    help="seconds to wait for the ack; the push expires at the broker with it (default 10)")
    ps.set_defaults(func=_tool(cmd_config_push))

    p = sub.add_parser("press", help="press a key of a simulated node / nhấn phím mô phỏng")
    p.add_argument("node")
    p.add_argument("button", help="service id or priority (dispenser); next, recall, no-show, finish, pause, "
                                  "resume, transfer, rate-1..5 (counter)")
    p.add_argument("--hold", type=float, default=0.0, help="hold seconds")
    p.add_argument("--timeout", type=positive_seconds, default=3.0,
                   help="seconds to wait for the node's answer; the press expires at the broker with it (default 3)")
    add_broker_options(p)
    p.set_defaults(func=_tool(cmd_press))

    p = sub.add_parser("tail", help="live events, one line each / sự kiện trực tiếp")
    add_broker_options(p)
    p.add_argument("--json", action="store_true", help="raw JSON payloads")
    p.add_argument("--count", "-n", type=int, default=None, help="stop after N events")
    p.set_defaults(func=_tool(cmd_tail))

    from xephang_ops import brokerconf

    brokerconf.register(sub)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - `xephang` is the entry point
    from xephang_ops.cli import main as cli_main

    return cli_main(argv)
