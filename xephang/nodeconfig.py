"""Technicians' node config over MQTT: merge → validate the whole → (prepare off the loop) →
write atomically → apply → ack → retained state.

The pushable part of a node's config is a pydantic model chosen by the daemon (display
theme, announcer repeats, counter key map …). Broker credentials are never part of it:
secrets never travel over MQTT. A push names the ``base_rev`` it was made against; a stale
base is refused so two laptops cannot silently overwrite each other. The last good config
is kept on disk (atomic replace), so a node killed mid-write boots with it.

A push whose check is slow (the announcer downloads and checks a voice pack) is *prepared* on a
worker thread: the owner loop goes on (the hall keeps hearing calls in the old voice), and the
push applies or is refused, and is acked, when the worker's verdict comes back through the bus.
One push is prepared at a time; another push meanwhile is refused as busy (its sender retries),
so no push is ever applied on top of a config it was not merged with. One exception: a push from a
*yielding* sender (the announcer's web account) gives way to a technician's push that would be
taken — it is stopped and refused, so a stalled download named by a stolen password cannot keep
technicians out; a yielding sender's push meanwhile is still refused as busy.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from xephang.checktext import both
from xephang.contract import BadPayload, ConfigAck, ConfigSet, ConfigState, decode, loads
from xephang.settings import format_validation_errors

if TYPE_CHECKING:
    from xephang.bus import Bus, Inbound

log = logging.getLogger(__name__)

SECRET_WORDS = ("password", "secret", "token", "key_file", "psk")

PREPARE_TIMEOUT_S = 60.0  # a preparation still running after this is abandoned: its push refused, others taken
YIELD_WAIT_S = 15.0  # a push prepared after one it stopped waits this long, on its worker, for that one to end
PrepareJob = Callable[[threading.Event], list[str]]  # on a worker thread: every refusal (empty: apply); stop when set


C = TypeVar("C", bound=BaseModel)


@dataclass
class Preparing(Generic[C]):
    """A push being prepared on the worker thread (its ack follows the worker's verdict)."""

    push: ConfigSet
    sender: str | None
    new: C
    base_rev: int  # the rev it was merged with
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    timer: threading.Timer | None = None


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
        raw_check: Callable[[dict[str, Any]], list[str]] | None = None,
        merge: Callable[[dict[str, Any], ConfigSet, str | None], dict[str, Any]] | None = None,
        senders: tuple[str, ...] = (),
        yielding: tuple[str, ...] = (),
        origin: str | None = None,
        prepare: Callable[[C], PrepareJob | None] | None = None,
        prepare_timeout_s: float = PREPARE_TIMEOUT_S,
        read_only: bool = False,
    ) -> None:
        """``check`` lists why a valid config cannot apply now (refused, nothing changes);
        ``prepare`` gives the slow part of that check (a download) as a job for the worker thread,
        or None when there is none: the push is acked when the job's verdict is back (a job still
        running after ``prepare_timeout_s`` is abandoned and its push refused);
        ``merge`` makes the new whole from the current one and a push (``sender``: the named
        sender of ``…/set/{sender}``, None for technicians); ``senders`` are the named senders
        this node takes pushes from; ``yielding`` those among them whose push being prepared is
        stopped (and refused) by a push from anyone else that would be taken; ``origin`` names
        the local file the config was made from — when it changed since the last push, the file
        wins (a technician edited it and restarted). ``read_only`` (``--check``, which may run beside the
        running daemon): a pending push there is the running daemon's, left where it is."""
        self.model = model
        self.path = path
        self.bus = bus
        self.node = node
        self._apply = apply
        self._check = check
        self._raw_check = raw_check
        self._merge = merge
        self._prepare = prepare
        self.prepare_timeout_s = prepare_timeout_s
        self.preparing: Preparing[C] | None = None  # the push being prepared off the loop
        self.senders = senders
        self.yielding = yielding
        self.yield_wait_s = YIELD_WAIT_S
        self._stopped: Preparing[C] | None = None  # a push stopped for another, its worker maybe still ending
        self.origin = origin
        self.applying: tuple[ConfigSet, str | None, int] | None = None  # (push, sender, rev) while applying
        self._clock = clock
        self._acks: OrderedDict[str, ConfigAck] = OrderedDict()
        self.restart_required = False
        self.pending_path = path.with_name(path.name + ".pending")
        self.discarded: Path | None = None  # a push the node died applying, kept for the technician
        # (rev, config) last pushed, when the local file changed since and was taken instead: the
        # daemon may find the file cannot apply to its state and run another config (run_instead)
        self.file_won: tuple[int, dict[str, Any]] | None = None
        self.took_file = False  # this start runs the local file, not a saved push (none, unusable, or the file changed)
        self._saved_origin: str | None = None
        if not read_only:
            self._discard_pending()
        self.rev, raw = self._load(initial)
        try:
            self.current: C = model.model_validate(raw)
        except ValidationError as exc:
            errs = format_validation_errors(exc, model)
            raise ValueError(both(f"cấu hình của thiết bị trong {path} không hợp lệ", f"node config in {path} is invalid")
                             + f": {'; '.join(errs)}") from None
        self.raw = self.current.model_dump(mode="json")

    def run_instead(self, rev: int, raw: dict[str, Any], *, keep_origin: bool = False) -> None:
        """Run ``raw`` at ``rev`` instead of what this start chose (the daemon found the local file
        cannot apply to its state: hubd, a site that would strand today's tickets). Nothing is written:
        the next push is saved as made on the file before the edit (``origin``), so the edited file
        is considered again at a later start, and wins when it can."""
        self.current = self.model.model_validate(raw)
        self.raw = self.current.model_dump(mode="json")
        self.rev = rev
        self.file_won = None
        if self.took_file and not keep_origin:  # the file runs no more: saved as made on the file before it
            self.origin = self._saved_origin
        self.took_file = False

    def save(self) -> None:
        """Write what runs as the saved config (a local file taken at this start: later starts then
        take the saved config, not the file again, until the file changes once more)."""
        write_atomic(self.path, json.dumps({"rev": self.rev, "config": self.raw, "origin": self.origin},
                                           ensure_ascii=False, indent=1).encode())
        self.file_won = None
        self.took_file = False

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
                self._saved_origin = saved.get("origin")
                self.took_file = True
                try:
                    self.model.model_validate(cfg)
                    self.file_won = (rev, cfg)
                except ValidationError:  # a push the checks of this version refuse: the file, at the next rev
                    pass
                if cfg == initial and self.file_won is not None:  # edited, yet the same config: nothing new
                    log.info("node config rev %s from %s (the local file says the same)", rev, self.path)
                    self.file_won, self.took_file = None, False
                    return rev, cfg
                log.warning("the local file changed since config rev %s was pushed: it is taken, at rev %s, "
                            "unless the daemon finds it cannot apply (it then says so)", rev, rev + 1)
                return rev + 1, initial
            self.model.model_validate(cfg)
            log.info("node config rev %s from %s", rev, self.path)
            return rev, cfg
        except FileNotFoundError:
            self.took_file = True
            return 0, initial
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            log.error("saved node config %s unusable (%s): using the local settings", self.path, exc)
            self.took_file = True
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
                            errors=[both(f"nguồn {push.source!r} gửi trên chủ đề của {sender!r}",
                                         f"source {push.source!r} pushed on {sender!r}'s topic")])
            self._ack(ack)
            raise BadPayload("wrong-sender", ack.errors[0])
        self.handle(push, sender)

    def handle(self, push: ConfigSet, sender: str | None = None) -> ConfigAck | None:
        """Apply one push (idempotent by request_id) and publish the ack. None: the push is being
        prepared on the worker thread, its ack follows (:meth:`wait_prepared` in tests)."""
        if push.request_id in self._acks:  # a redelivery: same answer, nothing done twice
            ack = self._acks[push.request_id]
            self.bus.publish(self.bus.topics.config_ack(self.node), ack)
            return ack
        if self.preparing is not None and not self._may_stop(self.preparing, sender):
            if self.preparing.push.request_id == push.request_id:  # a redelivery: its ack is coming
                log.info("config push %s delivered again while being prepared", push.request_id)
                return None
            busy = self.preparing.push
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="rejected", rev=self.rev,
                            errors=[both(f"đang bận: lần đẩy {busy.request_id} của {busy.by or busy.source} còn đang "
                                         "chuẩn bị (đang tải gói giọng); thử lại khi nó có trả lời",
                                         f"busy: push {busy.request_id} by {busy.by or busy.source} is still being "
                                         "prepared (a voice pack downloading); try again when it is answered")])
            log.info("config push %s refused: %s", push.request_id, ack.errors[0])
            # not remembered: sent again with the same id once the other is answered, it is handled
            self.bus.publish(self.bus.topics.config_ack(self.node), ack)
            return ack
        if push.base_rev is not None and push.base_rev != self.rev and self._runs_already(push, sender):
            # made on an older rev, yet it asks for what runs now (the same file pushed twice): nothing to
            # refuse and nothing to do — "stale … someone changed it since" sent the technician hunting
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="applied", rev=self.rev, changed=False)
            self._ack(ack)
            return ack
        if push.base_rev is not None and push.base_rev != self.rev:
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="stale", rev=self.rev,
                            errors=[both(f"base_rev {push.base_rev} đã cũ: thiết bị đang ở phiên bản {self.rev}, "
                                         "hãy lấy cấu hình lại",
                                         f"base_rev {push.base_rev} is stale: the node is at rev {self.rev}; "
                                         "get the config again")])
            self._ack(ack)
            return ack
        merged: Any = None
        try:
            merged = self._merged(push, sender)
            new = self.model.model_validate(merged)
            refusals = self._check(new) if self._check else []
        except ConfigRefused as exc:
            refusals = exc.errors
        except ValidationError as exc:
            refusals = format_validation_errors(exc, self.model)
            # what pydantic skipped beside a field error, and the daemon's own checks, on the raw config:
            # every mistake of a push at once, not one more after each fix
            for cross in (getattr(self.model, "cross_check_errors", None), self._raw_check):
                if cross is not None and isinstance(merged, dict):
                    refusals += [c for c in cross(merged) if not any(c in r for r in refusals)]
        if refusals:
            return self._refuse(push, refusals)  # a yielding push being prepared goes on
        if self.preparing is not None:
            self._stop_preparing(push, sender)
        if new.model_dump(mode="json") == self.raw and not self.restart_required:
            # what runs already: no new rev, no write, nothing applied again (a roster saved twice, a
            # flood of the same push grew the hub's history by a whole site each time)
            ack = ConfigAck(request_id=push.request_id, node=self.node, status="applied", rev=self.rev, changed=False)
            log.info("config push %s by %s: nothing changed (rev %s)", push.request_id, push.by or push.source, self.rev)
            self._ack(ack)
            return ack
        job = self._prepare(new) if self._prepare else None
        if job is not None:
            self._start_preparing(Preparing(push, sender, new, self.rev), job)
            return None
        return self._commit(push, sender, new)

    def _merged(self, push: ConfigSet, sender: str | None) -> dict[str, Any]:
        """The whole config ``push`` asks for: the daemon's merge, or tables merged and values replaced."""
        return self._merge(self.raw, push, sender) if self._merge else deep_merge(self.raw, push.config)

    def _runs_already(self, push: ConfigSet, sender: str | None) -> bool:
        """Does ``push`` ask for exactly the config that runs?"""
        try:
            return self.model.model_validate(self._merged(push, sender)).model_dump(mode="json") == self.raw
        except Exception:  # refused or invalid: not what runs
            return False

    def _may_stop(self, prep: Preparing[C], sender: str | None) -> bool:
        """Does a push from ``sender`` stop ``prep``, if it is taken? (A technician's, a yielding sender's.)"""
        return prep.sender in self.yielding and sender not in self.yielding

    def _stop_preparing(self, by: ConfigSet, sender: str | None) -> None:
        """Stop the yielding push being prepared and refuse it, without waiting (the loop never blocks):
        a job prepared next waits on its own worker for this one to end."""
        prep, self.preparing = self.preparing, None
        if prep is None:
            return
        self._halt(prep)
        self._stopped = prep
        who, who_vi = ("a technician", "kỹ thuật viên") if sender is None else (sender, sender)
        self._refuse(prep.push, [both(f"đã dừng: lần đẩy {by.request_id} của {by.by or by.source} ({who_vi}) được nhận "
                                      "trong lúc lần này đang chuẩn bị; không có gì của lần này được áp dụng",
                                      f"stopped: push {by.request_id} by {by.by or by.source} ({who}) took over "
                                      "while this one was being prepared; nothing of it applied")])

    @staticmethod
    def _halt(prep: Preparing[C]) -> None:
        """Tell a preparation's worker to stop and cancel its deadline (it ends on its own)."""
        prep.stop.set()
        if prep.timer is not None:
            prep.timer.cancel()

    def _refuse(self, push: ConfigSet, refusals: list[str]) -> ConfigAck:
        ack = ConfigAck(request_id=push.request_id, node=self.node, status="rejected", rev=self.rev,
                        errors=capped_errors(refusals))
        log.info("config push %s by %s refused (%d): %s", push.request_id, push.by or push.source, len(refusals),
                 " | ".join(refusals)[:4000])
        self._ack(ack)
        return ack

    # ---- the slow part, off the owner loop
    def _start_preparing(self, prep: Preparing[C], job: PrepareJob) -> None:
        stopped, self._stopped = self._stopped, None

        def work() -> None:
            if stopped is not None and stopped.thread is not None:  # never two jobs at once (the same files)
                stopped.thread.join(self.yield_wait_s)
                if stopped.thread.is_alive():
                    self.bus.call_soon(lambda: self._prepared(prep, [
                        f"push {stopped.push.request_id}, stopped for this one, has not ended after "
                        f"{self.yield_wait_s:g} s; try again"]))
                    return
            try:
                refusals = list(job(prep.stop))
            except Exception as exc:  # a job that fails refuses its push; it never takes the daemon down
                log.exception("preparing config push %s failed", prep.push.request_id)
                refusals = [both("không kiểm tra được lần đẩy", "could not check the push")
                            + f": {type(exc).__name__}: {str(exc)[:200]}"]
            self.bus.call_soon(lambda: self._prepared(prep, refusals))

        def overdue() -> None:
            self.bus.call_soon(lambda: self._prepared(prep, [
                f"checking the push took over {self.prepare_timeout_s:g} s: given up (try again)"]))

        self.preparing = prep
        prep.thread = threading.Thread(target=work, name=f"config-prepare-{prep.push.request_id}", daemon=True)
        prep.timer = threading.Timer(self.prepare_timeout_s, overdue)
        prep.timer.daemon = True
        log.info("config push %s by %s: preparing off the loop", prep.push.request_id, prep.push.by or prep.push.source)
        prep.thread.start()
        prep.timer.start()

    def _prepared(self, prep: Preparing[C], refusals: list[str]) -> None:
        """The worker's verdict (or the timer's), in the owner thread: apply or refuse, and ack."""
        if self.preparing is not prep:  # answered already (overdue), or the daemon is stopping
            return
        self.preparing = None
        prep.stop.set()  # an overdue worker stops at its next check; its late verdict is ignored
        if prep.timer is not None:
            prep.timer.cancel()
        if not refusals and self.rev != prep.base_rev:  # cannot happen while others are refused as busy
            refusals = [both(f"cấu hình đã đổi sang phiên bản {self.rev} trong lúc chuẩn bị lần đẩy này, hãy đẩy lại",
                             f"the config changed to rev {self.rev} while this push was prepared; push it again")]
        if refusals:
            self._refuse(prep.push, refusals)
            return
        self._commit(prep.push, prep.sender, prep.new)

    def wait_prepared(self, timeout: float) -> bool:
        """Block until the worker is done (tests; the verdict still needs the owner loop to run)."""
        prep = self.preparing
        if prep is None or prep.thread is None:
            return True
        prep.thread.join(timeout)
        return not prep.thread.is_alive()

    def close(self, timeout: float = 2.0) -> None:
        """Ask a running preparation to stop and wait a little for it (the daemon is stopping):
        its push is neither applied nor acked, and its sender times out."""
        prep, self.preparing = self.preparing, None
        if prep is None:
            return
        self._halt(prep)
        if prep.thread is not None:
            prep.thread.join(timeout)
            if prep.thread.is_alive():
                log.warning("config push %s: its preparation did not stop within %.0f s", prep.push.request_id,
                            timeout)

    # ---- write, apply, ack
    def _commit(self, push: ConfigSet, sender: str | None, new: C) -> ConfigAck:
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
                            errors=[both("áp dụng không được", "apply failed") + f": {exc}"])
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


MAX_ACK_ERRORS = 100  # lines of a refusal's ack, each cut at MAX_ERROR_CHARS, MAX_ACK_BYTES in all as the
MAX_ERROR_CHARS = 1000  # ack's JSON writes them: under the broker's and the contract's 64 KiB (an ack of
MAX_ACK_BYTES = 40_000  # 412 KB was never sent, and the technician read "no answer")


def capped_errors(errors: list[str]) -> list[str]:
    """The first errors (at most MAX_ACK_ERRORS, MAX_ACK_BYTES of JSON in all: a control character in a
    key name is 6 bytes there, a Vietnamese letter 2 or 3), each cut to MAX_ERROR_CHARS, and how many
    more there were."""
    out: list[str] = []
    total = 0
    for e in errors[:MAX_ACK_ERRORS]:
        line = e if len(e) <= MAX_ERROR_CHARS else e[:MAX_ERROR_CHARS - 1] + "…"
        size = len(json.dumps(line, ensure_ascii=False).encode())
        if out and total + size > MAX_ACK_BYTES:
            break
        out.append(line)
        total += size
    if len(errors) > len(out):
        more = len(errors) - len(out)
        out.append(both(f"… và {more} lỗi khác (sửa các lỗi trên rồi đẩy lại)",
                        f"… and {more} more (fix the ones above and push again)"))
    return out


class ConfigRefused(ValueError):
    """A push that cannot be merged or applied as sent: every reason, in the ack's words."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")  # contract.RequestId


def _request_id_of(payload: bytes) -> str | None:
    """The request_id of a refused push, when it is one an ack can carry (a made-up one, a lone
    surrogate, would fail the ack itself)."""
    try:
        rid = loads(payload).get("request_id")
    except BadPayload:
        return None
    return rid if isinstance(rid, str) and _REQUEST_ID.fullmatch(rid) else None
