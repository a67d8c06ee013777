"""The link behind a ticket's QR code: ``/q/{day}/{number}/{id}/{token}``.

The token is an HMAC-SHA256 of the site, service day, ticket id and printed number under a
secret that only the dispenser (which prints it) and ``webd`` (which checks it) hold; the
first 128 bits, URL-safe base64 (22 characters). Without the secret a token cannot be made
for another ticket, and changing any part of the link (another number, id or day) makes it
fail: a citizen's page is bound to that citizen's ticket, and nobody can walk the numbers.

The secret is a file of random bytes made by ``xephang web secret`` (``docs/web.md``), copied
to the dispenser (``ticket.link_secret_file``) and read by webd (``web.link_secret_file``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

TOKEN_CHARS = 22  # 128 bits of the HMAC, URL-safe base64 without padding
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DISPLAY_RE = re.compile(r"^[A-Z]?[0-9]{1,6}$")  # the contract's TicketInfo.display
SECRET_BYTES = 32


class LinkSecretError(ValueError):
    """The link secret file is missing, unreadable or too short."""


def make_secret() -> str:
    """A new secret (the file's text): 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def write_secret(path: Path, *, rotate: bool = False) -> bool:
    """Write a new secret to ``path`` (mode 0600) unless a usable one is there; True when written.

    A file already there is checked as the daemons read it (:func:`load_secret`): one they would
    refuse (empty, too short, unreadable, a folder) raises LinkSecretError rather than being
    "kept"; it is not overwritten either (``-o`` may name the wrong file), ``rotate`` replaces it.
    """
    path = Path(path)
    if path.exists() and not rotate:
        load_secret(path)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make_secret() + "\n")
    os.chmod(path, 0o600)
    return True


def load_secret(path: Path) -> bytes:
    """The secret's bytes; raises LinkSecretError when it cannot be used."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise LinkSecretError(f"ticket link secret {path}: {exc.strerror or exc}") from None
    if len(text) < 32:
        raise LinkSecretError(f"ticket link secret {path}: too short (make one with `xephang web secret`)")
    return text.encode()


def ticket_token(secret: bytes, site: str, day: str, ticket_id: int, display: str) -> str:
    """The token printed in ticket ``ticket_id``'s QR link."""
    msg = f"xephang-ticket-v1|{site}|{day}|{int(ticket_id)}|{display}".encode()
    mac = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:TOKEN_CHARS]


def check_token(secret: bytes, site: str, day: str, ticket_id: int, display: str, token: str) -> bool:
    """True when ``token`` is the one for this ticket (constant-time comparison)."""
    if not (isinstance(token, str) and TOKEN_RE.fullmatch(token) and DAY_RE.fullmatch(day) and DISPLAY_RE.fullmatch(display)):
        return False
    return hmac.compare_digest(ticket_token(secret, site, day, ticket_id, display), token)


def ticket_path(secret: bytes, site: str, day: str, ticket_id: int, display: str) -> str:
    """``/q/{day}/{display}/{id}/{token}``: the path part of the QR link."""
    return f"/q/{day}/{display}/{int(ticket_id)}/{ticket_token(secret, site, day, ticket_id, display)}"
