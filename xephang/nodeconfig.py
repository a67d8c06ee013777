"""Technicians' node config over MQTT: merge → validate the whole → write atomically → apply
→ ack → retained state.

The pushable part of a node's config is a pydantic model chosen by the daemon (display
theme, announcer repeats, counter key map …). Broker credentials are never part of it:
secrets never travel over MQTT. A push names the ``base_rev`` it was made against; a stale
base is refused so two laptops cannot silently overwrite each other. The last good config
is kept on disk (atomic replace), so a node killed mid-write boots with it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from xephang.contract import BadPayload, ConfigAck, ConfigSet, ConfigState, decode
from xephang.settings import format_validation_errors

if TYPE_CHECKING:
    from xephang.bus import Bus, Inbound

log = logging.getLogger(__name__)

SECRET_WORDS = ("password", "secret", "token", "key_file", "psk")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` merged into a copy of ``base``; nested tables merge, other values replace."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def mask_secrets(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) and v else mask_secrets(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_secrets(v) for v in obj]
    return obj


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse directory fsync
        pass


C = TypeVar("C", bound=BaseModel)


class NodeConfigManager(Generic[C]):
    """Holds a node's pushable config (a ``C``, the node's own model) and applies technicians' pushes."""

    def __init__(
        self,
        *,
        model: type[C],
        path: Path,
        initial: dict[str, Any],
        apply: Callable[[C, C | None], bool],
        bus: Bus,
        node: str,
        clock: Callable[[], float],
        check: Callable[[C], list[str]] | None = None,
        merge: Callable[[dict[str, Any], ConfigSet, str | None], dict[str, Any]] | None = None,
        senders: tuple[str, ...] = (),
        origin: str | None = None,
    ) -> None:
        """``check`` lists why a valid config cannot apply now (refused, nothing changes);
        ``merge`` makes the new whole from the current one and a push (``sender``: the named
        sender of ``…/set/{sender}``, None for technicians); ``senders`` are the named senders
        this node takes pushes from; ``origin`` names the local file the config was made from —
        when it changed since the last push, the file wins (a technician edited it and restarted)."""
        self.model = model
        self.path = path
        self.bus = bus
        self.node = node
        self._apply = apply
        self._check = check
        self._merge = merge
        self.senders = senders
        self.origin = origin
        self.applying: tuple[ConfigSet, str | None, int] | None = None  # (push, sender, rev) while applying
        self._clock = clock
        self._acks: OrderedDict[str, ConfigAck] = OrderedDict()
        self.restart_required = False
        self.pending_path = path.with_name(path.name + ".pending")
        self.discarded: Path | None = None  # a push the node died applying, kept for the technician
        self._discard_pending()
        self.rev, raw = self._load(initial)
        try:
            self.current: C = model.model_validate(raw)
        except ValidationError as exc:
            errs = format_validation_errors(exc, model)
            raise ValueError(f"node config in {path} is invalid: {'; '.join(errs)}") from None
        self.raw = self.current.model_dump(mode="json")

    def _discard_pending(self) -> None:
        """A pushed config the node was applying when it died never becomes the config."""
        if not self.pending_path.exists():
            return
        self.discarded = self.pending_path.with_name(self.path.name + ".failed")
        os.replace(self.pending_path, self.discarded)
        log.error("the node stopped while applying a pushed config: it is set aside in %s and the last good "
                  "config in %s is used", self.discarded, self.path)

    def _load(self, initial: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            saved = json.loads(self.path.read_text())
            rev, cfg = int(saved["rev"]), saved["config"]
            if saved.get("origin") != self.origin:
                log.warning("the local file changed since config rev %s was pushed: the file is used (rev %s)",
                            rev, rev + 1)
                return rev + 1, initial
            self.model.model_validate(cfg)
            log.info("node config rev %s from %s", rev, self.path)
            return rev, cfg
        except FileNotFoundError:
            return 0, initial
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            log.error("saved node config %s unusable (%s): using the local settings", self.path, exc)
            return 0, initial

    def subscribe(self) -> None:
        self.bus.subscribe(self.bus.topics.config_set(self.node), self._on_set, retained=False)
        for sender in self.senders:
            topic = self.bus.topics.config_set(self.node, sender)
            self.bus.subscribe(topic, lambda msg, sender=sender: self._on_set(msg, sender), retained=False)

    def publish_state(self) -> None:
        st = ConfigState(node=self.node, rev=self.rev, config=mask_secrets(self.raw), at=self._clock(),
                         restart_required=self.restart_required)
        self.bus.publish(self.bus.topics.config_state(self.node), st, retain=True)

    def _ack(self, ack: ConfigAck) -> None:
        self._acks[ack.request_id] = ack
        while len(self._acks) > 100:
            self._acks.popitem(last=False)
        self.bus.publish(self.bus.topics.config_ack(self.node), ack)

    def _on_set(self, msg: Inbound, sender: str | None = None) -> None:
        try:
            push = decode(ConfigSet, msg.payload)
        except BadPayload as exc:
            rid = _request_id_of(msg.payload)
            if rid:
                self._ack(ConfigAck(request_id=rid, node=self.node, status="rejected", rev=self.rev,
                                    errors=[str(exc)]))
            raise
        if sender is not None and push.source != sender:
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="rejected", rev=self.rev,
                            errors=[f"source {push.source!r} pushed on {sender!r}'s topic"])
            self._ack(ack)
            raise BadPayload("wrong-sender", ack.errors[0])
        self.handle(push, sender)

    def handle(self, push: ConfigSet, sender: str | None = None) -> ConfigAck:
        """Apply one push (idempotent by request_id) and publish the ack."""
        if push.request_id in self._acks:  # a redelivery: same answer, nothing done twice
            ack = self._acks[push.request_id]
            self.bus.publish(self.bus.topics.config_ack(self.node), ack)
            return ack
        if push.base_rev is not None and push.base_rev != self.rev:
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="stale", rev=self.rev,
                            errors=[f"base_rev {push.base_rev} is stale: the node is at rev {self.rev}; get the config again"])
            self._ack(ack)
            return ack
        try:
            merged = self._merge(self.raw, push, sender) if self._merge else deep_merge(self.raw, push.config)
            new = self.model.model_validate(merged)
            refusals = self._check(new) if self._check else []
        except ConfigRefused as exc:
            refusals = exc.errors
        except ValidationError as exc:
            refusals = format_validation_errors(exc, self.model)
        if refusals:
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="rejected", rev=self.rev,
                            errors=refusals)
            log.info("config push %s by %s refused: %s", push.request_id, push.by or push.source, refusals[:3])
            self._ack(ack)
            return ack
        new_raw = new.model_dump(mode="json")
        new_rev = self.rev + 1
        # the new config waits beside the last good one until it has been applied: a node that
        # dies while applying it (a crash, a power cut) boots with the last good config
        write_atomic(self.pending_path, json.dumps({"rev": new_rev, "config": new_raw, "origin": self.origin},
                                                   ensure_ascii=False, indent=1).encode())
        old = self.current
        self.applying = (push, sender, new_rev)
        try:
            restart = bool(self._apply(new, old))
        except Exception as exc:  # the daemon could not apply it: keep running the old one
            log.exception("applying node config rev %s failed", new_rev)
            self.pending_path.unlink(missing_ok=True)
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="rejected", rev=self.rev,
                            errors=[f"apply failed: {exc}"])
            self._ack(ack)
            return ack
        finally:
            self.applying = None
        os.replace(self.pending_path, self.path)
        _fsync_dir(self.path.parent)
        self.current, self.raw, self.rev = new, new_raw, new_rev
        self.restart_required = self.restart_required or restart
        ack = ConfigAck(request_id=push.request_id, node=self.node,
                        status="restart-required" if restart else "applied", rev=new_rev)
        log.info("node config rev %s %s", new_rev, ack.status)
        # the state first, then the ack (one client, one QoS: they arrive in this order), so whoever
        # acts on the ack (webd redirects to the roster page) already holds the new state
        self.publish_state()
        self._ack(ack)
        return ack


class ConfigRefused(ValueError):
    """A push that cannot be merged or applied as sent: every reason, in the ack's words."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _request_id_of(payload: bytes) -> str | None:
    try:
        obj = json.loads(payload)
        rid = obj.get("request_id") if isinstance(obj, dict) else None
        return rid if isinstance(rid, str) and 0 < len(rid) <= 64 else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
