"""Accounts, sessions, CSRF tokens and login throttling for the head's and technicians' pages.

- Accounts live in one JSON file (``web.accounts_file``, mode 0600), written only by the
  command line (``xephang web user add``): there is no default password and no page that
  creates an account. Passwords are hashed with scrypt (memory-hard, stdlib ``hashlib``):
  ``scrypt$n$r$p$salt$hash``; 16 MiB and ~0.1 s per check on a Pi 4.
- Sessions are random 256-bit ids kept in memory (a webd restart logs everyone out), sent as
  an ``HttpOnly; SameSite=Strict`` cookie, with an idle and an absolute lifetime. Each session
  has its own CSRF token that every form carries; the login form's token is a signed
  double-submit cookie.
- Throttling (Home Assistant's ``ban.py`` habit): failed logins are counted per client
  address and per user name; after ``max_failures`` within ``window_s`` further attempts are
  refused (even with the right password) until ``lockout_s`` has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xephang.site import is_slug

ROLES = ("head", "technician", "officer")  # an officer's name is an [[officers]] id of the site
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 10
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB of memory per check
SCRYPT_MAXMEM = 64 * 1024 * 1024


class AccountError(ValueError):
    """A bad account name, role or password, or an unreadable accounts file."""


def hash_password(password: str, *, salt: bytes | None = None, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(digest)}"


def check_password(password: str, hashed: str) -> bool:
    try:
        kind, n, r, p, salt, want = hashed.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=SCRYPT_MAXMEM, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(want))


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    password_hash: str


class AccountExists(AccountError):
    """``add`` of a name that already has an account."""

    def __init__(self, account: Account) -> None:
        self.account = account
        super().__init__(f"account {account.username!r} exists ({account.role})")


class Accounts:
    """The accounts file: read at start and whenever it changed on disk (the CLI writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mtime: float | None = None
        self._accounts: dict[str, Account] = {}
        # a check against a user that does not exist costs the same as one that does
        self._dummy = hash_password(secrets.token_urlsafe(12))

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._accounts, self._mtime = {}, None
            return
        except OSError as exc:  # a technician without sudo on the 0600 file: say so, not a traceback
            raise AccountError(f"không đọc được / cannot read {self.path}: {exc.strerror or exc}") from None
        if self._mtime == st.st_mtime:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except OSError as exc:
            raise AccountError(f"không đọc được / cannot read {self.path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # not JSON (a hand edit, a copy cut short) or not UTF-8
            raise AccountError(f"tệp tài khoản hỏng / damaged accounts file {self.path}: {exc}") from None
        try:
            self._accounts = {u: Account(u, a["role"], a["password"]) for u, a in data.get("users", {}).items()
                              if USERNAME_RE.fullmatch(u) and a.get("role") in ROLES}
        except (AttributeError, KeyError, TypeError):  # JSON, but not {"users": {name: {role, password}}}
            raise AccountError(f"tệp tài khoản hỏng / damaged accounts file {self.path}: not the "
                               '{"users": {name: {"role", "password"}}} that `xephang web user` writes') from None
        self._mtime = st.st_mtime

    def all(self) -> list[Account]:
        self._load()
        return sorted(self._accounts.values(), key=lambda a: a.username)

    def get(self, username: str) -> Account | None:
        self._load()
        return self._accounts.get(username)

    def verify(self, username: str, password: str) -> Account | None:
        acc = self.get(username) if USERNAME_RE.fullmatch(username or "") else None
        ok = check_password(password, acc.password_hash if acc else self._dummy)
        return acc if acc is not None and ok else None

    # ---- the CLI's side
    def _write(self, accounts: dict[str, Account]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"users": {a.username: {"role": a.role, "password": a.password_hash}
                                 for a in accounts.values()}}, f, indent=1)
        os.replace(tmp, self.path)
        self._mtime = None

    def set(self, username: str, role: str, password: str) -> None:
        if not USERNAME_RE.fullmatch(username):
            raise AccountError(f"user name {username!r}: 2–32 of a-z 0-9 . _ - (starting with a letter or digit)")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
        if role == "officer" and not is_slug(username):
            raise AccountError(f"officer {username!r}: must be the officer's id in the site file ([[officers]] id: "
                               "a-z 0-9 and single hyphens)")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"password: at least {MIN_PASSWORD} characters")
        self._load()
        accounts = dict(self._accounts)
        accounts[username] = Account(username, role, hash_password(password))
        self._write(accounts)

    def add(self, username: str, role: str, password: str) -> None:
        """A new account; raises AccountError when ``username`` already has one (``add`` never
        silently replaces a head's or an officer's account: that is ``remove`` then ``add``)."""
        existing = self.get(username)
        if existing is not None:
            raise AccountExists(existing)
        self.set(username, role, password)

    def change_password(self, username: str, password: str) -> Account | None:
        """A new password for an existing account, its role (and so its officer id) kept;
        None when there is no such account (nothing is created)."""
        existing = self.get(username)
        if existing is None:
            return None
        self.set(username, existing.role, password)
        return self.get(username)

    def remove(self, username: str) -> bool:
        self._load()
        if username not in self._accounts:
            return False
        accounts = {u: a for u, a in self._accounts.items() if u != username}
        self._write(accounts)
        return True


@dataclass
class Session:
    id: str
    username: str
    role: str
    csrf: str
    created: float
    seen: float
    notes: dict[str, str] = field(default_factory=dict)  # one-shot answers waiting for their page, by key
    password_hash: str = ""  # the account's at login: a new password (`xephang web user passwd`) ends the session


@dataclass
class Sessions:
    """Server-side sessions in memory."""

    idle_s: float = 8 * 3600
    max_age_s: float = 24 * 3600
    per_account: int = 20  # a password holder logging in in a loop cannot fill the memory
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)

    def new(self, acc: Account) -> Session:
        """A new session; the account's oldest ends when it has more than ``per_account``."""
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), acc.username, acc.role, secrets.token_urlsafe(24), now, now,
                    password_hash=acc.password_hash)
        self._by_id[s.id] = s
        self._expire(now)
        mine = [k for k, x in self._by_id.items() if x.username == acc.username]  # oldest first
        for sid in mine[:-self.per_account]:
            del self._by_id[sid]
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        now = self.clock()
        if s is None or now - s.seen > self.idle_s or now - s.created > self.max_age_s:
            self._by_id.pop(sid or "", None)
            return None
        s.seen = now
        return s

    def end(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def end_user(self, username: str) -> None:
        for sid in [k for k, s in self._by_id.items() if s.username == username]:
            del self._by_id[sid]

    def _expire(self, now: float) -> None:
        for sid in [k for k, s in self._by_id.items() if now - s.seen > self.idle_s or now - s.created > self.max_age_s]:
            del self._by_id[sid]

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class Throttle:
    """Failed logins per key (client address, user name); refuses while locked out. Successful
    logins count too, with a higher limit: each costs a password check (scrypt, 16 MiB, ~0.1 s on a
    Pi, a few at once), so someone holding one password and logging in in a loop would otherwise
    keep everyone else's logins waiting."""

    max_failures: int = 5
    window_s: float = 900.0
    lockout_s: float = 300.0
    max_successes: int = 30
    clock: Callable[[], float] = time.monotonic
    _fails: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # (when, the name tried)
    _wins: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)
    # checks begun and not yet ended, per key: counted as if they had failed, so that sixty guesses
    # sent at once are not all checked before the first five failures are written (red team: the
    # right password, 60th of a burst from one address, logged in as the head)
    _pending: dict[str, int] = field(default_factory=dict)

    def begin(self, *keys: str) -> float:
        """Before a password check: 0 and the check is counted as pending (``end`` it), or the
        seconds to wait (a lockout, or as many checks in flight as ``keys`` have tries left)."""
        left = self.locked(*keys)
        if left:
            return left
        now = self.clock()
        for k in keys:
            pending = self._pending.get(k, 0)
            if not pending:  # nothing in flight: as before, one check after a lockout ends
                continue
            fails = sum(1 for t, _ in self._fails.get(k, ()) if now - t < self.window_s)
            wins = sum(1 for t, _ in self._wins.get(k, ()) if now - t < self.window_s)
            if fails + pending >= self.max_failures or wins + pending >= self.max_successes:
                return 60.0  # the checks in flight decide: ask again in a minute
        for k in keys:
            self._pending[k] = self._pending.get(k, 0) + 1
        return 0.0

    def end(self, *keys: str) -> None:
        """A check ``begin`` let in is over (its result recorded with ``failed`` or ``succeeded``)."""
        for k in keys:
            n = self._pending.get(k, 0) - 1
            if n > 0:
                self._pending[k] = n
            else:
                self._pending.pop(k, None)

    def locked(self, *keys: str) -> float:
        """Seconds left of the longest lockout among ``keys`` (0: not locked)."""
        now = self.clock()
        left = 0.0
        for k in keys:
            until = self._locked.get(k)
            if until is not None:
                if until <= now:
                    del self._locked[k]
                else:
                    left = max(left, until - now)
        return left

    def failed(self, *keys: str, name: str = "") -> None:
        """A wrong password for the account ``name``."""
        self._count(self._fails, self.max_failures, keys, name)

    def succeeded(self, *keys: str, name: str = "") -> None:
        """A good password for ``name``: the failures of ``keys`` for that name are forgotten (the
        person's own typing errors), not those for other names: an officer logging in with their own
        password between guesses at other accounts from one address wiped its count (red team); the
        login itself is counted."""
        for k in keys:
            kept = [x for x in self._fails.get(k, ()) if x[1] != name]
            if kept:
                self._fails[k] = kept
            else:
                self._fails.pop(k, None)
        self._count(self._wins, self.max_successes, keys, name)

    def _count(self, book: dict[str, list[tuple[float, str]]], most: int, keys: tuple[str, ...], name: str) -> None:
        now = self.clock()
        for k in keys:
            xs = [x for x in book.get(k, []) if now - x[0] < self.window_s]
            xs.append((now, name))
            book[k] = xs
            if len(xs) >= most:
                self._locked[k] = now + self.lockout_s
        if len(book) > 10_000:  # a flood of made-up names must not grow memory for ever
            fresh = {k: v for k, v in book.items() if now - v[-1][0] < self.window_s}
            book.clear()
            book.update(fresh)


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens. Compared as bytes: ``compare_digest`` raises on
    non-ASCII text, and a form, header or cookie may carry any (a junk token is just not equal)."""
    return hmac.compare_digest((a or "").encode("utf-8", "surrogatepass"), (b or "").encode("utf-8", "surrogatepass"))


def sign(secret: bytes, value: str) -> str:
    return value + "." + base64.urlsafe_b64encode(hmac.new(secret, value.encode(), hashlib.sha256).digest()[:16]).decode().rstrip("=")


def unsign(secret: bytes, signed: str | None) -> str | None:
    if not signed or "." not in signed:
        return None
    value, _, _ = signed.rpartition(".")
    return value if same_token(sign(secret, value), signed) else None
