"""The MQTT contract, v1: topic builders and the pydantic model of every payload.

Root ``R = xephang/v1/{site}``. Topic levels are ``[a-z0-9-]``. JSON payloads, QoS 1.
Strict where other tools must not guess (requests, config pushes: unknown fields are
errors); tolerant where newer producers may add fields (status, health, events, state:
unknown fields are ignored). Every payload names its ``schema``.

``docs/protocol.md`` is generated from this module (``xephang docs``) and a test fails when
the two drift, so this file is the single source of truth for tools outside the repo.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xephang.terminal import NOT_IN_A_LINE_CLASS

PROTOCOL_MAJOR = 1
ROOT_PREFIX = "xephang/v1"
MAX_PAYLOAD_BYTES = 64 * 1024  # larger payloads are dropped before decoding

# every MQTT client id starts with this: a site's broker (``xephang broker-config``) admits no other
# id, and on the boards' listener replaces it by the username (docs/install-pi.md, "Client ids")
CLIENT_ID_PREFIX = "xephang-"
MAX_TOPIC_LEN = 200  # every topic of the contract is far shorter; a longer one is refused before paho sees it

LEVEL_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
# a topic to publish on: levels of the contract's alphabet, no wildcard, no empty level, no NUL, no $
TOPIC_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*(/[a-z0-9]+(-[a-z0-9]+)*)*$"
_LEVEL = re.compile(LEVEL_PATTERN)
_TOPIC = re.compile(TOPIC_PATTERN)
NodeId = Annotated[str, Field(pattern=LEVEL_PATTERN, min_length=1, max_length=40)]
Slug = NodeId
RequestId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# an event's id is a key at the province (``events (site, event_id)``): the hub's are 32 hex digits;
# 6,000 characters made PostgreSQL refuse the index row and held every centre's ingest
EventId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# the hub's clock in epoch seconds, 1970 to 2100: a wait of 1e308 s was finite, stored, and made
# every province report that summed it fail (float overflow)
MAX_EPOCH_S = 4_102_444_800.0  # 2100-01-01 UTC
EpochS = Annotated[float, Field(ge=0, le=MAX_EPOCH_S)]
# free text that reaches the ledger, events, log lines and the head's pages: printable, one line,
# no C1 control and no text-direction override (U+202A–U+202E, U+2066–U+2069; see xephang.terminal)
PlainText = Annotated[str, Field(max_length=80, pattern=f"^[^{NOT_IN_A_LINE_CLASS}]*$")]
# where a reply goes: a topic of the contract's alphabet (no wildcard, NUL or $); the hub answers
# only on R/reply/{source} of its own site whatever this says (see docs/protocol.md)
ReplyTopic = Annotated[str, Field(max_length=MAX_TOPIC_LEN, pattern=r"^$|" + TOPIC_PATTERN)]


class ContractError(ValueError):
    """A payload or topic that does not follow the contract."""


class BadPayload(ContractError):
    """A payload could not be decoded or validated. ``code`` is a stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_level(level: str) -> str:
    if not isinstance(level, str) or len(level) > 40 or not _LEVEL.fullmatch(level):
        raise ContractError(f"topic level {level!r} must match [a-z0-9-] (at most 40 characters)")
    return level


def check_topic(topic: str) -> str:
    """A topic this system may publish on: the contract's alphabet, single levels, no wildcard.

    paho raises on a wildcard, and the broker drops the whole connection on a NUL or bad UTF-8
    (and paho re-sends the stuck publish on every reconnect): such a topic must never reach paho.
    """
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC_LEN or not _TOPIC.fullmatch(topic):
        raise ContractError(f"not a publishable topic: {str(topic)[:80]!r}")
    return topic


def new_request_id() -> str:
    """A fresh request id: made once per key press and reused on every retry."""
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# Topics


class Topics:
    """Topic builders for one site. ``Topics("tuong-linh").req("call-next")`` …"""

    def __init__(self, site: str, prefix: str = ROOT_PREFIX) -> None:
        self.site = check_level(site)
        self.root = f"{prefix}/{site}"

    def status(self, node: str) -> str:
        return f"{self.root}/node/{check_level(node)}/status"

    def health(self, node: str) -> str:
        return f"{self.root}/node/{check_level(node)}/health"

    def alert(self, node: str, alert_id: str) -> str:
        return f"{self.root}/node/{check_level(node)}/alert/{check_level(alert_id)}"

    def req(self, action: str, node: str | None = None) -> str:
        """``R/req/hub/{action}``, or ``R/req/hub/{action}/{node}``: the form boards use, so the
        broker's ACL can bind the requester (the topic's last level) to its username."""
        base = f"{self.root}/req/hub/{check_level(action)}"
        return f"{base}/{check_level(node)}" if node else base

    def reply(self, node: str) -> str:
        return f"{self.root}/reply/{check_level(node)}"

    def event(self, family: Literal["ticket", "counter", "summary"], kind: str) -> str:
        return f"{self.root}/event/{family}/{check_level(kind)}"

    def state_hall(self) -> str:
        return f"{self.root}/state/hall"

    def state_counter(self, number: int) -> str:
        return f"{self.root}/state/counter/{int(number)}"

    def state_service(self, service_id: str) -> str:
        return f"{self.root}/state/service/{check_level(service_id)}"

    def state_summary(self) -> str:
        return f"{self.root}/state/summary"

    def bridge_state(self) -> str:
        """The centre's link to the province: the Mosquitto bridge's own notification, retained,
        ``1`` up, ``0`` down (not JSON). Published at both ends; the Will at the province says ``0``."""
        return f"{self.root}/bridge/state"

    def config_set(self, node: str, sender: str | None = None) -> str:
        """Technicians push on ``config/{node}/set``; a named sender the ACL binds to its own
        account (the web daemon's roster change to the hub) pushes on ``config/{node}/set/{sender}``."""
        base = f"{self.root}/config/{check_level(node)}/set"
        return base if sender is None else f"{base}/{check_level(sender)}"

    def config_ack(self, node: str) -> str:
        return f"{self.root}/config/{check_level(node)}/ack"

    def config_state(self, node: str) -> str:
        return f"{self.root}/config/{check_level(node)}/state"

    def sim_press(self, node: str) -> str:
        return f"{self.root}/sim/{check_level(node)}/press"

    def sim_ack(self, node: str) -> str:
        return f"{self.root}/sim/{check_level(node)}/ack"

    # filters
    def all_status(self) -> str:
        return f"{self.root}/node/+/status"

    def all_node(self) -> str:
        return f"{self.root}/node/#"

    def all_events(self) -> str:
        return f"{self.root}/event/#"

    def ticket_events(self) -> str:
        return f"{self.root}/event/ticket/+"

    def counter_events(self) -> str:
        return f"{self.root}/event/counter/+"

    def all_alerts(self) -> str:
        return f"{self.root}/node/+/alert/+"

    def all_counter_states(self) -> str:
        return f"{self.root}/state/counter/+"

    def all_service_states(self) -> str:
        return f"{self.root}/state/service/+"

    def all_config_states(self) -> str:
        return f"{self.root}/config/+/state"

    def all_requests(self) -> str:
        return f"{self.root}/req/hub/#"

    def all_state(self) -> str:
        return f"{self.root}/state/#"

    def parse(self, topic: str) -> list[str]:
        """Levels after the site root; raises ContractError for a topic of another site."""
        if not topic.startswith(self.root + "/"):
            raise ContractError(f"topic {topic!r} is not under {self.root}")
        return topic[len(self.root) + 1 :].split("/")


# ---------------------------------------------------------------------------------------------
# Base models


def _req_schema(action: str) -> str:
    return f"xephang.req.{action}.v1"


class Message(BaseModel):
    """Base of every payload. A class that names its ``SCHEMA`` (a request: its ``ACTION``, whose
    schema is ``xephang.req.{action}.v1``) gets the ``schema`` field first, defaulting to it: the
    pair is declared once, here, not in every model."""

    SCHEMA: ClassVar[str] = ""
    TOPIC: ClassVar[str] = ""  # documentation only: the topic pattern
    # NaN and infinities are no JSON numbers: refused in a payload read (``decode``, ``model_validate_json``)
    model_config = ConfigDict(extra="ignore", populate_by_name=True, serialize_by_alias=True, allow_inf_nan=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # runs before pydantic collects the fields (pydantic 2: ModelMetaclass builds the class,
        # then reads its annotations), so the field is an ordinary one, first in every payload
        super().__init_subclass__(**kwargs)
        action = cls.__dict__.get("ACTION")
        if action and "SCHEMA" not in cls.__dict__:
            cls.SCHEMA = _req_schema(action)
        if "SCHEMA" in cls.__dict__ or action:
            own = {k: v for k, v in cls.__dict__.get("__annotations__", {}).items() if k != "schema_"}
            cls.__annotations__ = {"schema_": "str", **own}
            cls.schema_ = Field(default=cls.SCHEMA, alias="schema")  # type: ignore[assignment]

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class StrictMessage(Message):
    """Requests, config pushes, sim presses: unknown fields are errors and types are not coerced
    (JSON ``true`` is not counter 1, ``"0"`` is not 0 seconds)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True, strict=True)


def _schema(name: str) -> Any:
    return Field(default=name, description=f"always `{name}`")


def decode(model: type[Message], payload: bytes | str) -> Any:
    """Decode and validate ``payload`` as ``model``; raise BadPayload with a code."""
    obj = loads(payload)
    schema = obj.get("schema")
    if schema is not None and schema != model.SCHEMA:
        raise BadPayload("wrong-schema", f"schema {schema!r}, expected {model.SCHEMA!r}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise BadPayload("invalid", _errors(exc)) from None


def loads(payload: bytes | str) -> dict[str, Any]:
    """A payload's JSON object, read as every reader must (``decode`` and the province's raw
    readers): at most 64 KiB of UTF-8, RFC 8259 numbers only (no NaN, Infinity or 1e400, no
    5,000-digit integer) and no lone UTF-16 surrogate (``"\\ud800"`` is valid JSON that no UTF-8
    text can hold: PostgreSQL refused it and ended the province's ingester). BadPayload otherwise."""
    if isinstance(payload, bytes | bytearray):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise BadPayload("too-large", f"payload of {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadPayload("bad-utf8", f"payload is not UTF-8: {exc}") from None
    else:
        text = payload
    try:
        obj = json.loads(text, parse_constant=_not_a_json_number, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BadPayload("bad-json", f"payload is not JSON: {exc}") from None
    except RecursionError:  # 50 KB of "[" is valid-looking JSON nested past the parser's stack
        raise BadPayload("bad-json", "payload is nested too deeply") from None
    except BadPayload:
        raise
    except ValueError as exc:  # an integer of more than 4300 digits (Python's limit)
        raise BadPayload("bad-json", f"payload is not JSON we read: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise BadPayload("bad-json", "payload must be a JSON object")
    if _too_deep(text):  # under the parser's limit, a config 900 levels deep ended deep_merge and deepcopy
        raise BadPayload("bad-json", f"payload is nested more than {MAX_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(text):  # a pair reads as one character; only a lone half stays
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadPayload("bad-json", "payload holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    return obj


MAX_DEPTH = 32  # the deepest payload of the contract is a site push: {config: {services: [{band: []}]}}


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(i for i in range(256) if i not in b"[]{}")


def _too_deep(text: str) -> bool:
    """Is the JSON ``text`` (valid: it was just read) nested more than MAX_DEPTH objects and arrays
    deep? Its strings are dropped and its brackets kept, then each round removes the innermost pairs
    ("[]", "{}"): whatever is left after MAX_DEPTH rounds is deeper. All of it runs in C (a regex and
    bytes.translate/replace): a walk of the object in Python took 3.7 ms on a 64 KB payload the parser
    read in 0.5."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    syntax = (_JSON_STRING.sub("", text) if '"' in text else text).encode()  # ASCII once its strings are gone
    brackets = syntax.translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        # one round, one level: the innermost pairs become a mark first, so "{[]}" loses "[]" only
        brackets = brackets.replace(b"[]", b"\0").replace(b"{}", b"\0").replace(b"\0", b"")
    return bool(brackets)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _not_a_json_number(name: str) -> Any:
    # Python's json reads NaN and Infinity, which RFC 8259 JSON has not: a retained health with
    # `"uptime_s": NaN` ended `xephang devices`, and PostgreSQL's jsonb refuses it at the province
    raise BadPayload("bad-json", f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):  # 1e400 reads as infinity
        raise BadPayload("bad-json", f"{text[:40]} is beyond a float")
    return x


def _errors(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)[:500]


# ---------------------------------------------------------------------------------------------
# Node availability, health, alerts


class NodeStatus(Message):
    """Retained availability. Birth on every connect; the Will says offline.

    ``session`` grows on every connect of the node: a consumer (and the node itself) ignores an
    ``online: false`` whose session is older than the newest online it has seen, so a late Will
    of an old connection cannot mark a live node offline (the node re-publishes its birth)."""

    SCHEMA: ClassVar[str] = "xephang.node-status.v1"
    TOPIC: ClassVar[str] = "R/node/{node}/status"
    node: NodeId
    online: bool
    session: int = Field(ge=0, description="connect counter of the node, grows on every connect")
    role: str = Field(default="", max_length=40)
    version: str = Field(default="", max_length=40)
    at: float | None = Field(default=None, description="device clock, informational")


class NodeHealth(Message):
    SCHEMA: ClassVar[str] = "xephang.node-health.v1"
    TOPIC: ClassVar[str] = "R/node/{node}/health"
    node: NodeId
    role: str = Field(default="", max_length=40)  # as NodeStatus's: the province builds a status from a health
    version: str = Field(default="", max_length=40)
    uptime_s: float = 0
    config_rev: int = 0
    at: float | None = None
    dropped_messages: int = Field(default=0, description="malformed inbound messages logged and dropped")
    dropped_by_code: dict[str, int] = Field(default_factory=dict, description="the drops by reason: bad-json, invalid, "
                                            "too-large, retained-command, handler-error, foreign (what none of its filters asked for: a "
                                            "subscription someone else put in its session) …")
    publish_failed: dict[str, int] = Field(default_factory=dict, description="messages this node could not send, by "
                                           "reason: bad-topic, too-large, refused (by the broker), paho-error; each "
                                           "logged and dropped, the node goes on")
    details: dict[str, Any] = Field(default_factory=dict, description="role-specific: printer state, paper, audio …")


MAX_ALERTS_PER_NODE = 32  # open alerts a consumer keeps per node: a device has a handful of ids, never thousands

# The alerts each role raises: the broker's ACL lets a node write only ``node/{itself}/alert/{id}``
# for these ids (xephang broker-config). With ``alert/+`` one board's password retained 3,000
# alerts of 60 KB in the broker (195 MB) under ids it made up; now a board holds at most these
# few, each at most one packet. A new alert is added here, then the broker config is regenerated.
ALERT_IDS: dict[str, tuple[str, ...]] = {
    "hub": ("tickets-refused", "site-file"),
    "dispenser": ("paper-out", "printer-offline", "printer-error", "paper-low", "font-glyphs"),
    "counter": ("counter-config", "counter-rating-scale"),
    "display": ("display-missing",),
    "announcer": ("voice-pack", "audio-missing"),
}


class Alert(Message):
    """Retained alert; an empty payload on the same topic clears it."""

    SCHEMA: ClassVar[str] = "xephang.alert.v1"
    TOPIC: ClassVar[str] = "R/node/{node}/alert/{id}"
    node: NodeId
    id: Slug = Field(description="paper-out, paper-low, printer-offline, printer-error, printer-config, font-glyphs "
                                 "(dispenser); counter-config (counter); display-missing (board); audio-missing, "
                                 "voice-pack (speaker)")
    severity: Literal["info", "warning", "critical"] = "warning"
    message_vi: str = ""
    message_en: str = ""
    at: float | None = None


# ---------------------------------------------------------------------------------------------
# Requests to the hub (strict)


class Request(StrictMessage):
    """Fields every request carries."""

    ACTION: ClassVar[str] = ""
    schema_: str = Field(alias="schema")
    request_id: RequestId = Field(description="made once per key press, reused on every retry")
    source: NodeId = Field(description="node id of the requester")
    reply_to: ReplyTopic = Field(default="", description="R/reply/{source}, or empty (the same): the hub answers "
                                 "only there")
    sent_at: float | None = Field(default=None, description="device clock, informational")
    valid_until: float | None = Field(default=None, description="hub clock (epoch s): arriving later, the request is "
                                      "refused (`expired`) and never executed — the web console has told the officer "
                                      "\"not done\" by then")


class IssueTicket(Request):
    ACTION: ClassVar[str] = "issue-ticket"
    service: Slug
    priority_group: Slug | None = Field(default=None, description="a priority group id, or null")
    seen_day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                 description="with `seen_number`: the service day the dispenser last saw")
    seen_number: int | None = Field(default=None, ge=0, le=9999,
                                    description="the highest number of `service` the dispenser printed or saw on the "
                                    "hall state on `seen_day` (its own record, kept on its card): a hub whose ledger "
                                    "does not have them (begun that day: a new card) goes on after it, up to the "
                                    "middle of the band, instead of giving those numbers a second time")


class CounterRequest(Request):
    counter: int = Field(ge=1, le=99)
    officer: Slug | None = Field(default=None, description="web console only: the officer account acting; the hub "
                                 "acts only when the site seats that officer at `counter` (a box leaves it out)")


class CallNext(CounterRequest):
    ACTION: ClassVar[str] = "call-next"


class Recall(CounterRequest):
    ACTION: ClassVar[str] = "recall"


class NoShow(CounterRequest):
    ACTION: ClassVar[str] = "no-show"


class Finish(CounterRequest):
    ACTION: ClassVar[str] = "finish"


class Transfer(CounterRequest):
    ACTION: ClassVar[str] = "transfer"
    to_service: Slug


class Pause(CounterRequest):
    ACTION: ClassVar[str] = "pause"
    reason: PlainText = ""


class Resume(CounterRequest):
    ACTION: ClassVar[str] = "resume"


class Rate(CounterRequest):
    ACTION: ClassVar[str] = "rate"
    score: int = Field(ge=1, le=5)
    ticket_id: int | None = Field(default=None, ge=1, description="the ticket the box saw finished (`data.ticket.id` of the finish reply); "
                                  "when given, the hub refuses a rating for any other ticket")


class CallTicket(CounterRequest):
    """Call one waiting number out of the call order (the console's "call this number")."""

    ACTION: ClassVar[str] = "call-ticket"
    ticket_id: int = Field(ge=1, description="the waiting ticket's id (`ticket.id` of its events)")
    reason: PlainText = Field(min_length=1, description="why this number goes before the call order (reports list it)")


class Arrived(CounterRequest):
    """The called citizen reached the counter: the walk ends, the service time starts."""

    ACTION: ClassVar[str] = "arrived"


class VoidTicket(Request):
    ACTION: ClassVar[str] = "void-ticket"
    ticket_id: int = Field(ge=1, description="`data.ticket.id` of the issue reply")
    reason: PlainText = Field(default="", description="paper-out, printer-offline, printer-error, not-printed …")


class Resync(Request):
    ACTION: ClassVar[str] = "resync"
    since_rev: int | None = Field(default=None, ge=0, description="last rev the requester saw")


class ReportRequest(Request):
    """Ask the hub for a report (see docs/reports.md)."""

    ACTION: ClassVar[str] = "report"
    period: str = Field(default="today", max_length=40, pattern=r"^[A-Za-z0-9.:-]+$",
                        description="today, YYYY-MM-DD, YYYY-MM, YYYY-Qn, or FROM..TO")
    group_by: Slug = "service"
    lang: Literal["vi", "en"] = "vi"
    packed: bool = Field(default=False, description="the asker reads a report's rows packed as one table "
                         "(`rows_packed`, docs/reports.md) when they would not fit one reply otherwise; sent only "
                         "when true: a hub before 2026-12-07 refuses it as `invalid`, and the asker asks again "
                         "without it (`packed_refused`)")

    def to_json(self) -> bytes:
        # requests are strict (unknown fields refused): a hub that predates `packed` must not see it unasked
        return self.model_dump_json(by_alias=True, exclude=None if self.packed else {"packed"}).encode()


def packed_refused(reply: Reply | None) -> bool:
    """An older hub's answer to a report request carrying ``packed``: the field refused as unknown.
    The asker asks again without it (and reads the report unpacked, as such a hub sends it)."""
    return (reply is not None and reply.status != "ok" and reply.error is not None
            and reply.error.code == "invalid" and "packed" in reply.error.message)


TICKET_WAIT_MAX = 10  # tickets in one ticket-wait request at most (each costs the hub a played-forward day)


class TicketWait(Request):
    """The estimated wait of tickets still waiting, as the hub plays the day forward now (the
    phone page behind a ticket's QR keeps the citizen's range current). Read-only: nothing is
    stored, a retry is simply answered again."""

    ACTION: ClassVar[str] = "ticket-wait"
    ticket_ids: list[int] = Field(min_length=1, max_length=TICKET_WAIT_MAX,
                                  description=f"`ticket.id` of today's tickets (≥ 1), at most {TICKET_WAIT_MAX}")

    @field_validator("ticket_ids")
    @classmethod
    def _ids_positive(cls, v: list[int]) -> list[int]:
        if any(i < 1 for i in v):
            raise ValueError("ticket ids are ≥ 1")
        return v


class WaitOfTicket(Message):
    """One ticket of a ``ticket-wait`` reply (``data.waits``)."""

    ticket_id: int
    state: str = Field(description="waiting, called, done, no-show, voided, expired, or unknown (not today's)")
    people_ahead: int | None = Field(default=None, description="waiting: counted as on the ticket")
    est_wait_min: float | None = Field(default=None, description="waiting: the median of the estimate, minutes")
    est_wait_low_min: int | None = Field(default=None, description="waiting: the range's lower end, minutes")
    est_wait_high_min: int | None = Field(default=None, description="waiting: the upper end; null with est_wait_open")
    est_wait_open: bool | None = Field(default=None, description="waiting: 'more than est_wait_low_min minutes'")
    ticket: TicketInfo | None = Field(default=None, description="today's ticket as the hub holds it (absent for "
                                      "'unknown' and from hubs before 2026-12-07): webd learns from it a ticket "
                                      "issued before the events it read back at its start")


# who may ask each action (the broker's ACL and the hub's ``may_act`` are both made from this):
# "counter" = counter-N for counter N only; "dispenser" = dispenser-*; "any" = every node;
# "web" = the web daemon (``web``, ``web-*``: it reads, and asks for reports); "tech" = technicians only.
# The hub and technicians (``tech``, ``tech-*``) may ask everything.
ASKED_BY: dict[str, Literal["counter", "dispenser", "any", "web", "tech"]] = {
    "issue-ticket": "dispenser", "void-ticket": "dispenser",
    **dict.fromkeys(("call-next", "recall", "no-show", "finish", "transfer", "pause", "resume", "rate", "call-ticket",
                     "arrived"), "counter"),
    "resync": "any", "report": "web", "ticket-wait": "web",
}
def counter_node(number: int) -> str:
    """The node id (and broker account) that acts for counter ``number``: the hub, the broker's ACL
    and the call box read this one rule."""
    return f"counter-{number}"


# the requests each kind of board may send (the broker's ACL and the hub's second connection read these)
COUNTER_ACTIONS = tuple(a for a, who in ASKED_BY.items() if who == "counter")
DISPENSER_ACTIONS = tuple(a for a, who in ASKED_BY.items() if who == "dispenser")
WEB_ACTIONS = tuple(a for a, who in ASKED_BY.items() if who == "web")
# what the web console may ask for an officer (``officer`` set; the hub checks the site seats that
# officer at the counter): every counter action but the citizen's rating
CONSOLE_ACTIONS: tuple[str, ...] = ("call-next", "recall", "no-show", "finish", "transfer", "pause", "resume",
                                    "call-ticket", "arrived")
RESYNC_MAX_EVENTS = 200  # events in one resync reply at most, and never more than fit one message
# resyncs one node may ask at once, then this many a minute (a board asks at start, after a reconnect or a
# gap; webd reads its catch-up, 2000 events by default, in pages of 100-200): more are answered
# `rate-limited` with `retry_after_s`
RESYNC_BURST = 40
RESYNC_PER_MINUTE = 12
# a dispenser's tickets of one service: this many at once, then this many an hour (hub.issue_burst,
# hub.issue_per_hour, by the hub's clock): three times the simulated rush (40 an hour across the hall), so a
# busier hall than any we simulate is not refused, and a flood cannot use a band of 999 numbers in a day (docs/ticketd.md)
ISSUE_BURST = 40
ISSUE_PER_HOUR = 120
# one counter's keys (its box and the officer's web console together; the citizen's rating keys apart):
# this many at once, then this many a minute (hub.counter_burst, hub.counter_per_minute, by the hub's
# clock). An officer's fastest run (call, recall twice, no-show, call again…) is a few presses a minute;
# a loop of pause/resume from a counter's password made an event and a stored request each, 1,270 a second
COUNTER_BURST = 60
COUNTER_PER_MINUTE = 20
# requests of any kind one board (dispenser, counter, display, announcer) may send, before the hub reads
# them: this many at once, then this many a minute; more are dropped unread and counted (`flood`)
BOARD_BURST = 200
BOARD_PER_MINUTE = 1200
# a dispenser voids only a ticket it issued itself, at most this long after the issue: the number its
# printer failed on (ticketd asks about an unanswered press for 10 minutes, then voids what it learns).
# Older tickets are citizens waiting in the hall: only technicians void them.
DISPENSER_VOID_WINDOW_S = 15 * 60

# what one ticket can gather, bounded so that every consumer keeping a ticket's events (the province
# keeps at most MAX_EVENTS_PER_TICKET, each new one folds them all again) keeps all of a real one's: a
# counter's password recalling one citizen 98 times pushed the events of another counter's service
# (called, arrived, finished) past the province's cap, and they were dropped there. A citizen is
# recalled a few times before the officer marks them absent; a ticket goes through a few services.
MAX_RECALLS_PER_VISIT = 10  # more are refused `recall-limit`
MAX_TRANSFERS_PER_TICKET = 10  # more are refused `transfer-limit`
# visits: one per transfer, the one that a no-show sends back once, the last; each has called,
# recalls, arrived and its end (transferred, no-show, finished); the ticket's issued, and rated (or voided, expired)
MAX_VISITS_PER_TICKET = MAX_TRANSFERS_PER_TICKET + 2
MAX_EVENTS_PER_TICKET = 2 + MAX_VISITS_PER_TICKET * (3 + MAX_RECALLS_PER_VISIT)

# what the hub answers itself, changing nothing (never stored, never a command of the engine)
READ_ONLY_ACTIONS: tuple[str, ...] = ("resync", "report", "ticket-wait")

REQUEST_MODELS: dict[str, type[Request]] = {
    m.ACTION: m
    for m in (IssueTicket, CallNext, Recall, NoShow, Finish, Transfer, Pause, Resume, Rate, CallTicket, Arrived, VoidTicket,
              Resync, ReportRequest, TicketWait)
}


class ReplyError(Message):
    code: str
    message: str = ""
    retry_after_s: float | None = Field(default=None, description="with `rate-limited`: ask again after this many "
                                        "seconds (a new press, or the same request id)")


class Reply(Message):
    SCHEMA: ClassVar[str] = "xephang.reply.v1"
    TOPIC: ClassVar[str] = "R/reply/{node}"
    request_id: str
    action: str = ""
    status: Literal["ok", "error"]
    data: dict[str, Any] = Field(default_factory=dict)
    error: ReplyError | None = None
    rev: int | None = Field(default=None, description="hub revision after the request")


# ---------------------------------------------------------------------------------------------
# Tickets, events, state (tolerant)

TicketState = Literal["waiting", "called", "done", "no-show", "voided", "expired"]
CounterMode = Literal["open", "paused", "closed"]


class TicketInfo(Message):
    id: int = Field(description="ledger id, unique for ever")
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="service day YYYY-MM-DD (local, after the daily reset)")
    number: int
    display: str = Field(pattern=r"^[A-Z]?[0-9]{1,6}$", description="the number as printed and shown, e.g. '1023' or "
                         "'A023' (it names the speaker's and printer's files: checked)")
    service: Slug
    priority_group: Slug | None = None
    issued_at: EpochS = Field(description="hub clock, epoch seconds (1970–2100)")
    state: TicketState = "waiting"
    counter: int | None = None
    called_at: EpochS | None = Field(default=None, description="the first call, hub clock (1970–2100)")
    recalls: int = 0
    arrival_at: EpochS | None = Field(default=None, description="its place in its queue, hub clock: the issue "
                                      "time, kept by a transfer, the requeue's time after a no-show "
                                      "(people ahead are counted by it); absent from hubs before 2026-12-07")


WaitOfTicket.model_rebuild()  # its ``ticket`` is a TicketInfo, defined after it


class TicketEvent(Message):
    """``R/event/ticket/{kind}``: published after commit, never retained."""

    SCHEMA: ClassVar[str] = "xephang.event.ticket.v1"
    TOPIC: ClassVar[str] = "R/event/ticket/{kind}"
    KINDS: ClassVar[tuple[str, ...]] = ("issued", "called", "recalled", "arrived", "finished", "no-show", "transferred",
                                        "voided", "rated", "expired")
    event_id: EventId = Field(description="unique for ever (the hub's: 32 hex digits); at most 64 of [A-Za-z0-9_.:-]")
    rev: int = Field(ge=1, description="hub revision, +1 per event")
    at: EpochS = Field(description="hub clock, epoch seconds (1970–2100)")
    kind: str
    ticket: TicketInfo
    counter: int | None = None
    counter_label: str | None = None
    service_name_vi: str | None = None
    service_name_en: str | None = None
    people_ahead: int | None = None
    est_wait_min: float | None = Field(default=None, description="issued: the median of the estimate, minutes")
    est_wait_low_min: int | None = Field(default=None, description="issued: the printed range's lower end, minutes")
    est_wait_high_min: int | None = Field(
        default=None, description="issued: the printed range's upper end, minutes; null with est_wait_open")
    est_wait_open: bool | None = Field(
        default=None, description="issued: the wait cannot be narrowed: 'more than est_wait_low_min minutes' (0: not known yet)")
    inferred: bool | None = Field(default=None, description="finished: the finish time was inferred")
    out_of_order: bool | None = Field(default=None, description="called: the officer called this number out of the "
                                      "call order; `reason` says why")
    walk_s: float | None = Field(default=None, ge=0, le=86400, description="arrived: seconds from the call to the citizen's arrival")
    from_service: Slug | None = Field(default=None, description="transferred: the service id it left")
    score: int | None = None
    reason: str | None = None


class CounterEvent(Message):
    """``R/event/counter/{kind}``: paused, resumed."""

    SCHEMA: ClassVar[str] = "xephang.event.counter.v1"
    TOPIC: ClassVar[str] = "R/event/counter/{kind}"
    KINDS: ClassVar[tuple[str, ...]] = ("paused", "resumed")
    event_id: EventId = Field(description="as a ticket event's")
    rev: int = Field(ge=1)
    at: EpochS = Field(description="hub clock, epoch seconds (1970–2100)")
    kind: str
    counter: int
    reason: str | None = None


class CounterState(Message):
    SCHEMA: ClassVar[str] = "xephang.state.counter.v1"
    TOPIC: ClassVar[str] = "R/state/counter/{n}"
    number: int
    label_vi: str = ""
    label_en: str = ""
    state: CounterMode = "closed"
    pause_reason: str | None = None
    serving: TicketInfo | None = None
    services: list[str] = Field(default_factory=list)
    officer: str = ""
    officer_id: str | None = Field(default=None, description="the officer account seated here (the web console's)")
    visit_called_at: float | None = Field(default=None, description="the current visit: when this counter called it")
    arrived_at: float | None = Field(default=None, description="the current visit: when the citizen arrived (null: not yet)")
    call_reason: str | None = Field(default=None, description="the current visit was called out of order, for this reason")
    rev: int = 0


class ServiceState(Message):
    SCHEMA: ClassVar[str] = "xephang.state.service.v1"
    TOPIC: ClassVar[str] = "R/state/service/{id}"
    id: str
    name_vi: str = ""
    name_en: str = ""
    prefix: str = ""
    waiting: int = 0
    waiting_priority: int = 0
    est_wait_min: float = Field(default=0, description="median wait of a citizen taking a ticket now, minutes")
    est_wait_low_min: int | None = Field(default=None, description="that citizen's printed range, lower end")
    est_wait_high_min: int | None = Field(default=None, description="upper end; null when est_wait_open")
    est_wait_open: bool | None = Field(default=None, description="'more than est_wait_low_min minutes' (0: not known yet)")
    last_issued: str | None = None
    last_issued_number: int | None = Field(default=None, description="`last_issued` as a number (the band's), today")
    last_called: str | None = None
    rev: int = 0


class CallInfo(Message):
    rev: int
    at: float
    kind: str = "called"
    display: str
    service: str
    counter: int


class HallState(Message):
    SCHEMA: ClassVar[str] = "xephang.state.hall.v1"
    TOPIC: ClassVar[str] = "R/state/hall"
    rev: int = 0
    at: float = 0
    day: str = ""
    site_name_vi: str = ""
    site_name_en: str = ""
    counters: list[CounterState] = Field(default_factory=list)
    services: list[ServiceState] = Field(default_factory=list)
    last_calls: list[CallInfo] = Field(default_factory=list, description="newest first")
    ledger: int | None = Field(default=None, description="the ledger's numbering base: its revisions and ticket "
                               "ids start after it. Another one means a new ledger (the hub's card replaced): the "
                               "tickets of ids up to it are gone with the old one")


# ---------------------------------------------------------------------------------------------
# What each action's ``Reply.data`` holds (tolerant: a newer hub may add fields). The hub sends
# every ``ok`` reply's data through its model; readers take it with ``reply_data``.


class FinishedTicket(Message):
    """The ticket a call finished on the way (the counter was still serving it)."""

    ticket: TicketInfo
    inferred: bool = Field(default=True, description="finished by the next call, not by Finish")


class IssueData(Message):
    """``issue-ticket``: the ticket to print."""

    ticket: TicketInfo
    people_ahead: int | None = None
    est_wait_min: float | None = Field(default=None, description="the median of the estimate, minutes")
    est_wait_low_min: int | None = Field(default=None, description="the range to print: lower end, minutes")
    est_wait_high_min: int | None = Field(default=None, description="upper end; null with est_wait_open")
    est_wait_open: bool | None = Field(default=None, description="'more than est_wait_low_min minutes'")
    service_name_vi: str | None = None
    service_name_en: str | None = None


class CallData(Message):
    """``call-next`` and ``call-ticket``: who is called (null: the queue is empty)."""

    ticket: TicketInfo | None = None
    queue_empty: bool = False
    finished: FinishedTicket | None = Field(default=None, description="the ticket this call finished (inferred)")
    out_of_order: bool = Field(default=False, description="call-ticket: called out of the call order")
    waiting: int | None = Field(default=None, description="waiting now in the services this counter calls")


class RecallData(Message):
    ticket: TicketInfo
    recalls: int


class NoShowData(Message):
    ticket: TicketInfo
    requeued: bool = Field(default=False, description="sent back to the queue once (no_show_requeue)")


class FinishData(Message):
    ticket: TicketInfo
    rating_window_s: float = Field(default=0, description="how long the rating keys count for this ticket")


class TransferData(Message):
    ticket: TicketInfo
    from_service: str


class CounterData(Message):
    """``pause`` and ``resume``: the counter's state after it."""

    counter: int
    state: str
    finished: FinishedTicket | None = Field(default=None, description="pause: the ticket it finished (inferred)")


class RateData(Message):
    ticket: TicketInfo
    score: int


class ArrivedData(Message):
    ticket: TicketInfo
    arrived_at: float
    walk_s: float | None = Field(default=None, description="call → arrival, seconds")
    already: bool = Field(default=False, description="pressed before: the first arrival stands, no event")


class VoidData(Message):
    ticket: TicketInfo


class ResyncData(Message):
    """``resync``: the hall, and from ``since_rev`` the missed events (each a TicketEvent or a
    CounterEvent payload, by its ``schema``)."""

    hall: HallState
    events: list[dict[str, Any]] | None = None
    more: bool = Field(default=False, description="later events exist: ask again from the last one")

    def typed_events(self) -> list[TicketEvent | CounterEvent]:
        """The events as their models, by ``schema`` (``BadPayload`` when one does not read)."""
        out: list[TicketEvent | CounterEvent] = []
        for e in self.events or []:
            model = CounterEvent if e.get("schema") == CounterEvent.SCHEMA else TicketEvent
            try:
                out.append(model.model_validate(e))
            except ValidationError as exc:
                raise BadPayload("invalid", f"resync event: {_errors(exc)}") from None
        return out


_M = TypeVar("_M", bound=Message)


class TicketWaitData(Message):
    waits: list[WaitOfTicket] = Field(default_factory=list)


# action → the model of its ok reply's data (``report``: the report dict, docs/reports.md)
REPLY_DATA: dict[str, type[Message]] = {
    "issue-ticket": IssueData, "call-next": CallData, "call-ticket": CallData, "recall": RecallData,
    "no-show": NoShowData, "finish": FinishData, "transfer": TransferData, "pause": CounterData,
    "resume": CounterData, "rate": RateData, "arrived": ArrivedData, "void-ticket": VoidData,
    "resync": ResyncData, "ticket-wait": TicketWaitData,
}


def reply_data(reply: Reply, model: type[_M]) -> _M:
    """An ok reply's ``data`` as ``model``; ``BadPayload('invalid')`` when it is not one."""
    try:
        return model.model_validate(reply.data if reply.data is not None else {})
    except ValidationError as exc:
        raise BadPayload("invalid", f"{reply.action} reply data: {_errors(exc)}") from None


class DailySummary(Message):
    """``R/state/summary``: compact retained figures of the current service day (for a province view).

    The figures are the centre's report's day totals (``xephang_reports.build``, same definitions):
    times in seconds as ``{n, mean, p50, p90}``, shares 0–1. Published once a minute.
    """

    SCHEMA: ClassVar[str] = "xephang.state.summary.v1"
    TOPIC: ClassVar[str] = "R/state/summary"
    site: str
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="service day YYYY-MM-DD")
    at: EpochS = Field(description="hub clock, epoch seconds (1970–2100)")
    issued: int = 0
    served: int = 0
    no_shows: int = 0
    voided: int = 0
    expired: int = Field(default=0, description="still waiting at the daily reset")
    transferred: int = 0
    open: int = Field(default=0, description="issued today and not yet ended")
    calls: int = 0
    waiting: int = Field(default=0, description="waiting now")
    wait: dict[str, float | int | None] = Field(default_factory=dict, description="issue → first call: n, mean, p50, p90 (s)")
    service_time: dict[str, float | int | None] = Field(default_factory=dict, description="call → end: n, mean, p50, p90 (s)")
    within_target: dict[str, float | int | None] = Field(default_factory=dict, description="n, ok, share called within the service's target wait")
    ratings: dict[str, int] = Field(default_factory=dict, description="count per score")
    rated: int = 0
    satisfaction: float | None = Field(default=None, description="share of ratings in the top part of the scale")
    mean_wait_min: float | None = Field(default=None, description="the mean wait in minutes (first version's field)")


class HourlySummary(DailySummary):
    """``R/event/summary/hourly``: the day so far, sent once an hour has ended (QoS 1, not retained).

    Under ``event/`` so the province bridge carries it; ``event_id`` names the site's day and
    hour, so a resend after a hub restart is stored once.
    """

    SCHEMA: ClassVar[str] = "xephang.event.summary.hourly.v1"
    TOPIC: ClassVar[str] = "R/event/summary/hourly"
    event_id: str = Field(description="`summary-{day}-{hour}`")
    hour: int = Field(ge=0, le=23, description="the hour of day that just ended (local time)")
    this_hour: dict[str, int] = Field(default_factory=dict, description="issued, served, no_shows, voided in that hour")


# ---------------------------------------------------------------------------------------------
# Technicians' config


class ConfigSet(StrictMessage):
    SCHEMA: ClassVar[str] = "xephang.config-set.v1"
    TOPIC: ClassVar[str] = "R/config/{node}/set"
    request_id: RequestId
    source: NodeId = Field(description="who pushes: a technician id (or `web` on `…/set/web`)")
    by: PlainText = Field(default="", description="the person who made the change "
                                 "(a technician's or the head's name), kept with the hub's site history")
    base_rev: int | None = Field(default=None, ge=0, description="the config rev the change was made against; stale → refused")
    config: dict[str, Any] = Field(description="partial node config, merged into the current one")


class ConfigAck(Message):
    SCHEMA: ClassVar[str] = "xephang.config-ack.v1"
    TOPIC: ClassVar[str] = "R/config/{node}/ack"
    request_id: str
    node: str
    status: Literal["applied", "restart-required", "rejected", "stale"]
    rev: int
    errors: list[str] = Field(default_factory=list)
    changed: bool = Field(default=True, description="false: the push asked for the config the node runs already; "
                          "nothing was written or applied and the rev stays (no new revision, no history row)")


class ConfigState(Message):
    SCHEMA: ClassVar[str] = "xephang.config-state.v1"
    TOPIC: ClassVar[str] = "R/config/{node}/state"
    node: str
    rev: int
    config: dict[str, Any] = Field(default_factory=dict, description="current node config, secrets masked")
    at: float | None = None
    restart_required: bool = False


# ---------------------------------------------------------------------------------------------
# Simulated hardware


class SimPress(StrictMessage):
    SCHEMA: ClassVar[str] = "xephang.sim-press.v1"
    TOPIC: ClassVar[str] = "R/sim/{node}/press"
    button: Slug = Field(description="service id, priority, next, recall, rate-3 …")
    hold_s: float = Field(default=0.0, ge=0, le=30)
    press_id: str = Field(default_factory=new_request_id, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                          description="made once per simulated press (default: a new one); QoS 1 may deliver a "
                                      "press twice (a broker restored from its persistence): the node acts once per id")


class SimPressAck(Message):
    """``R/sim/{node}/ack``: the node's answer to a sim press (not retained). ``pressed``: the key
    went down on the simulated board and acts as a real press would (a ticket, a call …);
    ``refused``: the board has no such key, ``reason`` says why. A node not in sim mode, offline
    or unknown sends nothing: a tool that waits reports "no answer"."""

    SCHEMA: ClassVar[str] = "xephang.sim-press-ack.v1"
    TOPIC: ClassVar[str] = "R/sim/{node}/ack"
    node: NodeId
    press_id: str = Field(max_length=64)
    button: str = Field(max_length=40)
    status: Literal["pressed", "refused"]
    reason: str = Field(default="", max_length=300)
    repeated: bool = Field(default=False, description="the same press delivered again: acted on once, answered again")


ALL_MODELS: list[type[Message]] = [
    NodeStatus,
    NodeHealth,
    Alert,
    *REQUEST_MODELS.values(),
    Reply,
    *dict.fromkeys(REPLY_DATA.values()),
    FinishedTicket,
    WaitOfTicket,
    TicketEvent,
    CounterEvent,
    HallState,
    CounterState,
    ServiceState,
    DailySummary,
    HourlySummary,
    ConfigSet,
    ConfigAck,
    ConfigState,
    SimPress,
    SimPressAck,
]
