"""Daemon settings: ``--config FILE`` (TOML) plus ``XEPHANG_*`` environment variables.

The environment wins over the file, so a systemd unit or a test can point any daemon at a
broker, a site and a state directory without writing a file
(``XEPHANG_BROKER__PORT=18830``, ``XEPHANG_NODE=counter-3``, ``XEPHANG_STATE_DIR=/tmp/x``).
Invalid settings are reported all at once, with "did you mean" for unknown keys.
"""

from __future__ import annotations

import collections.abc
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from xephang.checktext import both, error_text, plain_message
from xephang.clock import Clock, ScaledClock
from xephang.site import Site, cross_check_errors


class SettingsError(ValueError):
    """Settings that cannot run. ``errors`` lists every problem found."""

    def __init__(self, errors: list[str], source: str = "", source_vi: str | None = None) -> None:
        """``source``: where (a file's path, or what was checked, in English); ``source_vi``: the
        same in Vietnamese when it is words, not a path."""
        self.errors = errors
        n = len(errors)
        where_vi = source_vi if source_vi is not None else source
        head = both(f"cấu hình không hợp lệ{f' trong {where_vi}' if where_vi else ''} ({n} lỗi)",
                    f"invalid settings{f' in {source}' if source else ''} ({n} error{'s' if n != 1 else ''}):")
        super().__init__("\n".join([head, *(f"  - {e}" for e in errors)]))


class BrokerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(default=None, description="defaults to the node id")
    password: SecretStr | None = None
    password_file: Path | None = Field(default=None, description="file holding the password (preferred over password)")
    tls: bool = False
    ca_file: Path | None = None
    keepalive_s: int = Field(default=15, ge=5, le=600)
    session_expiry_s: int = Field(default=3600, ge=0, description="broker keeps our subscriptions and QoS 1 messages this long")
    reconnect_max_s: float = Field(default=2.0, ge=0.5, le=60)

    def secret(self) -> str | None:
        if self.password_file:
            return self.password_file.read_text().strip()
        return self.password.get_secret_value() if self.password else None


class ClockSettings(BaseModel):
    """Simulated time for the demo: every process gets the same three numbers."""

    model_config = ConfigDict(extra="forbid")
    speed: float = Field(default=1.0, gt=0, le=10_000)
    origin: float | None = Field(default=None, description="simulated epoch seconds at real_origin")
    real_origin: float | None = None

    def make(self) -> Clock:
        if self.origin is None or (self.speed == 1.0 and self.real_origin is None):
            return Clock()
        return ScaledClock(self.origin, self.real_origin if self.real_origin is not None else self.origin, self.speed)


class DaemonSettings(BaseSettings):
    """Settings every daemon shares. Daemons subclass and add their own section."""

    model_config = SettingsConfigDict(env_prefix="XEPHANG_", env_nested_delimiter="__", extra="forbid")

    site: str = Field(default="tuong-linh", pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", description="site slug, the topic root level")
    node: str = Field(default="", pattern=r"^([a-z0-9]+(-[a-z0-9]+)*)?$", description="node id = MQTT client id and username")
    site_file: Path | None = Field(default=None, description="the site model TOML (services, counters …)")
    state_dir: Path = Field(default=Path("/var/lib/xephang"), description="writable state: ledger, node config, session counter")
    broker: BrokerSettings = BrokerSettings()
    clock: ClockSettings = ClockSettings()
    sim: bool = Field(default=False, description="simulated hardware: mock pins, fake printer, SDL dummy/disk drivers")
    sim_out: Path | None = Field(default=None, description="where sim hardware writes tickets, frames, WAVs")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    lang: str = Field(default="vi", pattern=r"^(vi|en)$")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the TOML file (passed as init kwargs)
        return env_settings, init_settings

    @classmethod
    def cross_check_errors(cls, data: Mapping[str, Any]) -> list[str]:
        """Checks across sections (or against the site) on the raw settings data. They run
        when other fields are invalid too, so a file's errors are all listed at once (pydantic
        skips a model's own cross-checks while any of its fields is invalid). None by default."""
        return []

    def load_site(self) -> Site:
        if not self.site_file:
            raise SettingsError(["site_file: not set (XEPHANG_SITE_FILE or site_file in the config)"])
        return load_site(self.site_file)

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked (for logs and `config get`)."""
        return self.model_dump(mode="json")


S = TypeVar("S", bound=DaemonSettings)


def _unwrap(ann: Any) -> list[Any]:
    """The types an annotation may hold: Optional/Union/Annotated opened up."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(ann) if a is not type(None) for t in _unwrap(a)]
    return [ann]


def _step(ann: Any, part: Any) -> Any:
    """The annotation found one ``loc`` level below ``ann`` (a field, a list entry, a dict value)."""
    for t in _unwrap(ann):
        if isinstance(t, type) and issubclass(t, BaseModel):
            if isinstance(part, str):
                f = t.model_fields.get(part) or next((f for f in t.model_fields.values() if f.alias == part), None)
                if f is not None:
                    return f.annotation
            continue
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin in (list, tuple, set, frozenset, collections.abc.Sequence) and isinstance(part, int) and args:
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                return args[part] if part < len(args) else None
            return args[0]
        if origin in (dict, collections.abc.Mapping) and len(args) == 2:
            return args[1]
    return None


def _close_key(model: type[BaseModel], loc: tuple[Any, ...], key: str) -> str | None:
    """A close field name for an unknown ``key`` at ``loc`` — also inside list entries
    (``counters.2.officr`` → officer, ``hardware.buttons.0.servce`` → service)."""
    ann: Any = model
    for part in loc:
        ann = _step(ann, part)
        if ann is None:
            return None
    fields = [name for t in _unwrap(ann) if isinstance(t, type) and issubclass(t, BaseModel) for name in t.model_fields]
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_text(close: str | None) -> str:
    """"unknown key" in both languages, with the close field name when there is one."""
    if close is None:
        return both("khóa không có trong cấu hình", "unknown key")
    return both(f"khóa không có trong cấu hình (có phải {close!r}?)", f"unknown key (did you mean {close!r}?)")


def format_validation_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """Each error as ``where: <vi> / <en>`` (``where = 'value': …`` when the value is short text).
    A model validator's several problems (raised as lines of one ``ValueError``) are a line each."""
    return [line for e in exc.errors() for line in _error_lines(e, model)]


def _error_lines(e: Any, model: type[BaseModel]) -> list[str]:
    loc = tuple(e["loc"])
    where = ".".join(str(p) for p in loc) or "(root)"
    if e["type"] == "extra_forbidden":
        return [f"{where}: {unknown_key_text(_close_key(model, loc[:-1], str(loc[-1])))}"]
    val = e.get("input")
    shown = "" if isinstance(val, dict | list | tuple) or val is None or e["type"] == "missing" \
        else f" = {val[:60]!r}" if isinstance(val, str) else f" = {str(val)[:60]}"
    if e["type"] == "value_error":  # the project's own words, each line naming its place or given this one
        return [line if line.startswith((f"{where}:", f"{where}.")) or (where == "(root)" and ": " in line)
                else f"{where}{shown}: {line}" for line in error_text(e).split("\n") if line]
    return [f"{where}{shown}: {error_text(e)}"]


def site_errors(data: Any) -> list[str]:
    """Every problem of raw site data at once (empty when it is a valid site)."""
    try:
        Site.model_validate(data)
    except ValidationError as exc:
        return _site_errors(exc, data)
    return []


def _site_errors(exc: ValidationError, data: Any) -> list[str]:
    # pydantic skips the cross-checks (a model validator) while any field is invalid: run them on
    # what is readable instead (the validator's own root lines are the same checks)
    errors = [line for e in exc.errors() if not (e["loc"] == () and e["type"] == "value_error")
              for line in _error_lines(e, Site)]
    if isinstance(data, Mapping):
        errors += [x for x in cross_check_errors(data) if x not in errors]
    return errors or format_validation_errors(exc, Site)


WHAT_VI = {"config": "cấu hình", "site": "site", "catalogue": "danh mục thủ tục"}  # read_toml's ``what``


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file's table, or SettingsError naming ``what`` (config, site, catalogue …) and why."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError([both(f"không có tệp {WHAT_VI.get(what, what)} {path}", f"{what} file {path} not found")]) from None
    except OSError as exc:  # unreadable (permissions), a folder, a symlink loop …: a fault of this box, said in one line
        raise SettingsError([f"không đọc được {path} ({exc.strerror or exc}): kiểm tra đường dẫn và quyền đọc của "
                             f"người dùng dịch vụ / cannot read the {what} file {path} ({exc.strerror or exc}): "
                             f"check the path, and that the service's user may read it"]) from None
    except UnicodeDecodeError as exc:  # tomllib reads UTF-8 only: a file saved as UTF-16 or in a legacy code page
        raise SettingsError([f"{path} không phải UTF-8 (byte {exc.start}): lưu lại dưới dạng UTF-8 / "
                             f"{path} is not UTF-8 (byte {exc.start}): save it as UTF-8"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([both(f"{path}: không phải TOML hợp lệ", f"{path}: not valid TOML") + f": {exc}"]) from None


def _all_said(message: str, parts: list[str]) -> bool:
    """True when every line of ``message`` is in ``parts`` (or names its place before one of them)."""
    lines = [x for x in message.split("\n") if x]
    return bool(lines) and all(any(x == p or x.endswith(": " + p) or p.endswith(": " + x) for p in parts) for x in lines)


def load_settings(cls: type[S], config_path: str | Path | None = None, **overrides: Any) -> S:
    """Load ``cls`` from the TOML file (optional) and the environment; list every error."""
    source = str(config_path) if config_path else "environment"
    data: dict[str, Any] = read_toml(config_path, "config") if config_path else {}
    data.update(overrides)
    try:
        return cls(**data)
    except ValidationError as exc:
        cross = cls.cross_check_errors(data)
        # a model validator's lines are dropped when the cross-checks say each of them
        kept = [line for e in exc.errors() for line in _error_lines(e, cls)
                if not (e["type"] == "value_error" and _all_said(plain_message(e), cross))]
        errors = kept + [e for e in cross if not any(e in x for x in kept)]
        raise SettingsError(errors, source) from None


def load_site(path: str | Path) -> Site:
    """Load and validate the site model, every error listed."""
    data = read_toml(path, "site")
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_site_errors(exc, data), str(path)) from None


def env_for(settings: DaemonSettings) -> dict[str, str]:
    """XEPHANG_* variables that reproduce the shared part of ``settings`` (for child processes)."""
    env = {
        "XEPHANG_SITE": settings.site,
        "XEPHANG_BROKER__HOST": settings.broker.host,
        "XEPHANG_BROKER__PORT": str(settings.broker.port),
    }
    if settings.site_file:
        env["XEPHANG_SITE_FILE"] = str(settings.site_file)
    return env


def default_state_dir() -> Path:
    return Path(os.environ.get("XEPHANG_STATE_DIR", "/var/lib/xephang"))
