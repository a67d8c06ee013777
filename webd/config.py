"""webd's settings: the shared daemon settings plus the ``[web]`` section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xephang.checktext import both
from xephang.settings import DaemonSettings


class WebConfig(BaseModel):
    """The ``[web]`` section of ``webd.toml``."""

    model_config = ConfigDict(extra="forbid")
    listen: str = Field(default="0.0.0.0", description="address the HTTP server listens on")
    port: int = Field(default=80, ge=1, le=65535, description="HTTP port (80: `http://xephang.local/`; the unit "
                      "grants CAP_NET_BIND_SERVICE)")
    public_url: str = Field(default="http://xephang.local", max_length=200, pattern=r"^https?://[^\s/]+(:\d+)?$",
                            description="how phones reach this server (posters' QR codes)")
    link_secret_file: Path | None = Field(default=None, description="secret shared with the dispenser that signs "
                                          "each ticket's link (`xephang web secret`); without it no ticket page opens")
    accounts_file: Path | None = Field(default=None, description="head's and technicians' accounts; default "
                                       "STATE_DIR/web-accounts.json (`xephang web user add`)")
    catalogue_file: Path | None = Field(default=None, description="the procedure catalogue TOML (docs/web.md); "
                                        "none: the guide pages say so")
    watch_password_file: Path | None = Field(
        default=None, description="the `web-watch` account's password (`xephang broker-config` makes it): a second "
        "connection that reads what the boards say of themselves (status, alerts, the hall speaker's config state and "
        "acks), so that one board's password "
        "flooding them cannot hold the hub's calls and replies behind it (xephang/reader.py); none: one connection")
    wifi_name: str = Field(default="", max_length=40, description="the hall's Wi-Fi name, shown on the pages")
    catchup_events: int = Field(default=2000, ge=0, le=100_000, description="events read back at start (today's "
                                "tickets issued before webd started)")
    report_refresh_s: float = Field(default=10.0, ge=2, le=600, description="the dashboard's today's figures: "
                                    "asked again at most this often")
    session_idle_min: float = Field(default=480, ge=5, le=7 * 24 * 60)
    login_max_failures: int = Field(default=5, ge=2, le=100, description="failed logins (per address or user) "
                                    "within 15 min before a lockout")
    login_lockout_s: float = Field(default=300, ge=10, le=86400)
    login_max_successes: int = Field(default=30, ge=5, le=1000, description="successful logins (per address or "
                                     "user) within 15 min before a lockout: a password holder logging in in a loop "
                                     "would take the password checks from everyone else")
    sse_heartbeat_s: float = Field(default=15, ge=1, le=120, description="a comment line this often keeps "
                                   "phones' and proxies' connections open")
    announcer: str = Field(default="announcer-hall", pattern=r"^[a-z0-9-]+$", description="the hall speaker the "
                           "head's recorded voice is installed on (/head/voice)")
    recogniser_python: Path | None = Field(default=None, description="a Python that imports viet-asr (the ASR "
                                           "venv: python -m xephang_voice.hearing install; a development tool, not shipped): each recorded clip is heard "
                                           "on the spot (/head/voice); empty = not heard")
    https_port: int | None = Field(default=None, ge=1, le=65535, description="also serve HTTPS on this port "
                                   "(443), beside HTTP on `port`: the head's recording page gets the microphone there, "
                                   "phones and posters keep `public_url`; needs tls_certfile and tls_keyfile")
    tls_certfile: Path | None = Field(default=None, description="the HTTPS certificate (`xephang web cert`): with "
                                      "https_port, HTTPS on that port; without, HTTPS instead of HTTP on `port` "
                                      "(browsers give the recording page the microphone only on https:// or localhost)")
    tls_keyfile: Path | None = Field(default=None, description="the certificate's private key")
    max_streams: int = Field(default=1000, ge=1, le=20000, description="live-page connections at most; the last "
                             "5 % (at most 50) only for logged-in pages (head, officers)")
    province_dsn: str | None = Field(default=None, max_length=500, description="PostgreSQL DSN of the province "
                                     "database: webd runs at the province (centres, devices, the province report; "
                                     "no hub, no MQTT; docs/province.md)")
    province_reports_at_once: int = Field(default=2, ge=1, le=16, description="province reports computed at once "
                                          "at most, one per account (a year over odd dates keeps the database busy "
                                          "over a minute); more are answered 'try again later' (429 or 503)")

    @model_validator(mode="after")
    def _tls(self) -> WebConfig:
        errors = https_errors(self.model_dump())
        if errors:
            raise ValueError("\n".join(errors))  # a line each: format_validation_errors
        return self

    def https_base(self, host: str | None = None) -> str | None:
        """``https://host[:https_port]`` where webd serves HTTPS beside HTTP (None: it does not).
        ``host``: the name the browser used (default: public_url's)."""
        if self.https_port is None:
            return None
        host = host or (urlsplit(self.public_url).hostname or "xephang.local")
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        return f"https://{host}" + ("" if self.https_port == 443 else f":{self.https_port}")


def https_errors(web: Mapping[str, Any]) -> list[str]:
    """Every problem of the ``[web]`` HTTPS keys at once (raw or validated data)."""
    errors = []
    cert, key, https_port = web.get("tls_certfile"), web.get("tls_keyfile"), web.get("https_port")
    if (cert is None) != (key is None):
        errors.append(both("tls_certfile và tls_keyfile phải đi cùng nhau", "tls_certfile and tls_keyfile go together"))
    if https_port is not None and cert is None and key is None:
        errors.append(both(f"https_port {https_port} cần tls_certfile và tls_keyfile (`xephang web cert`)",
                           f"https_port {https_port} needs tls_certfile and tls_keyfile (`xephang web cert`)"))
    port = web.get("port", WebConfig.model_fields["port"].default)
    if https_port is not None and str(https_port) == str(port):
        errors.append(both(f"https_port và port đều là {port}: HTTP và HTTPS mỗi thứ cần một cổng riêng",
                           f"https_port and port are both {port}: HTTP and HTTPS need a port each"))
    if https_port is not None and web.get("province_dsn"):
        errors.append(both("https_port dành cho webd của trung tâm: trang cấp tỉnh chỉ dùng `port`",
                           "https_port is for a centre's webd: the province pages serve `port` only"))
    return errors


class WebSettings(DaemonSettings):
    web: WebConfig = WebConfig()

    @classmethod
    def cross_check_errors(cls, data: Mapping[str, Any]) -> list[str]:
        """The HTTPS keys' problems, listed even when other ``[web]`` keys are invalid too."""
        web = data.get("web")
        return [f"web: {e}" for e in https_errors(web)] if isinstance(web, Mapping) else []

    def accounts_path(self) -> Path:
        return self.web.accounts_file or Path(self.state_dir) / "web-accounts.json"
