"""``xephang web …``: accounts of the head's pages, the ticket link secret, the catalogue check
and the QR posters. Accounts exist only through this command (no default password)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webd.auth import Accounts

DEFAULT_ACCOUNTS = Path("/var/lib/xephang/webd/web-accounts.json")


def _accounts_path(args: argparse.Namespace) -> Path:
    if args.accounts:
        return Path(args.accounts)
    sd = os.environ.get("XEPHANG_STATE_DIR")
    return Path(sd) / "web-accounts.json" if sd else DEFAULT_ACCOUNTS


def _write_failure(out: Path, exc: OSError) -> str:
    """Why ``out`` (a file or folder to make) could not be written, in one line."""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        # mkdir/open through a path with a plain file in it: name that file, not errno's words
        blocker = next((p for p in Path(out).parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"{blocker} là tệp, không phải thư mục / is a file, not a folder"
    return f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}"


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    a = getpass.getpass("Mật khẩu / password: ")
    b = getpass.getpass("Nhập lại / again: ")
    if a != b:
        raise SystemExit("hai lần nhập khác nhau / the two entries differ")
    return a


def user_cmd(args: argparse.Namespace) -> int:
    from webd.auth import AccountError, AccountExists, Accounts

    accounts = Accounts(_accounts_path(args))
    if args.role and args.action != "add":
        # `passwd --role officer` would read as "change the role": it never did, so it is refused
        print("--role chỉ dùng với add / --role goes with add only (another role: remove, then add)",
              file=sys.stderr)
        return 2
    try:
        known = accounts.all()  # reads the file first: a damaged or unreadable one is said here, in one line
    except AccountError as exc:
        print(f"xephang web user: {exc}", file=sys.stderr)
        return 1
    if args.action == "list":
        for a in known:
            print(f"{a.username}\t{a.role}")
        return 0
    if not args.name:
        print("cần tên tài khoản / a user name is needed", file=sys.stderr)
        return 2
    try:
        return _user_change(args, accounts)
    except AccountExists as exc:
        print(f"đã có tài khoản / account {args.name!r} exists ({exc.account.role}): nothing changed; "
              f"`passwd {args.name}` gives it a new password, `remove` then `add` another role", file=sys.stderr)
        return 1
    except AccountError as exc:
        print(f"xephang web user: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"xephang web user: không ghi được / cannot write {accounts.path}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1


def _user_change(args: argparse.Namespace, accounts: Accounts) -> int:
    """``add``, ``passwd`` or ``remove`` of ``args.name``; AccountError for a bad name, role or password."""
    from webd.auth import AccountExists

    if args.action == "remove":
        if not accounts.remove(args.name):
            print(f"không có tài khoản / no account {args.name!r}", file=sys.stderr)
            return 1
        print(f"đã xoá / removed {args.name} (webd ends its sessions at the next request)")
        return 0
    if args.action == "passwd":
        # a password change never creates an account (a misspelt name would have made a new one)
        if accounts.get(args.name) is None:
            print(f"không có tài khoản / no account {args.name!r}: nothing changed (`xephang web user list`; "
                  f"a new account is `add {args.name} --role …`)", file=sys.stderr)
            return 1
        acc = accounts.change_password(args.name, _read_password(args))
        if acc is None:  # removed while the password was typed
            print(f"không có tài khoản / no account {args.name!r}", file=sys.stderr)
            return 1
        print(f"đã đổi mật khẩu / password changed: {acc.username} ({acc.role}, unchanged) in {accounts.path}")
        return 0
    if not args.role:
        print("cần --role / add needs --role head, technician or officer", file=sys.stderr)
        return 2
    if (acc := accounts.get(args.name)) is not None:  # before the password is asked for nothing
        raise AccountExists(acc)
    accounts.add(args.name, args.role, _read_password(args))
    print(f"đã tạo / added {args.name} ({args.role}) in {accounts.path}")
    if args.role == "officer":
        _officer_in_site(args)
    return 0


def _officer_in_site(args: argparse.Namespace) -> None:
    """Say so when an officer's account names no officer of the site file (a typo: they log in and
    are seated at no counter). Only said: the site may gain the officer later."""
    from xephang.settings import SettingsError, load_site

    path = getattr(args, "site_file", None) or os.environ.get("XEPHANG_SITE_FILE") or "/etc/xephang/site.toml"
    if not Path(path).is_file():
        return
    try:
        ids = [o.id for o in load_site(path).officers]
    except (SettingsError, OSError):
        return
    if args.name not in ids:
        print(f"cảnh báo / warning: {args.name!r} không có trong [[officers]] của {path} "
              f"(có / there: {', '.join(ids) or '—'}): tài khoản đăng nhập được nhưng không được xếp ngồi quầy nào "
              f"/ the account logs in but is seated at no counter until the site names this id", file=sys.stderr)


def secret_cmd(args: argparse.Namespace) -> int:
    from xephang.ticketlink import LinkSecretError, write_secret

    out = Path(args.out)
    if out.is_dir():  # --rotate could not replace it either
        print(f"xephang web secret: {out} là thư mục / is a folder: -o names the key file, e.g. "
              f"{out / 'ticket-link.key'}", file=sys.stderr)
        return 1
    try:
        written = write_secret(out, rotate=args.rotate)
    except LinkSecretError as exc:
        # the file there is what ticketd and webd would refuse: never "kept" (docs/web.md)
        print(f"xephang web secret: tệp có sẵn không dùng được / the file there is not a usable key: {exc}; "
              f"nothing changed. `xephang web secret -o {out} --rotate` replaces it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"xephang web secret: không ghi được / cannot write {out}: {_write_failure(out, exc)}", file=sys.stderr)
        return 1
    print(("đã tạo / written: " if written else "giữ nguyên / kept (use --rotate for a new one): ") + str(out))
    print("Chép tệp này lên máy phát số (ticketd: link_secret_file) và máy chủ (webd: web.link_secret_file).")
    return 0


def _site(args: argparse.Namespace):  # noqa: ANN202
    from xephang.settings import load_site

    path = args.site_file or os.environ.get("XEPHANG_SITE_FILE")
    if not path:
        raise SystemExit("cần --site-file / --site-file is required")
    return load_site(path)


def catalogue_cmd(args: argparse.Namespace) -> int:
    from webd.catalogue import load_catalogue
    from xephang.settings import SettingsError

    try:
        site = _site(args)
        cat = load_catalogue(Path(args.file), site)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"OK: {len(cat.procedures)} thủ tục / procedures")
    # valid, but a service with no procedure has an empty guide behind its poster's QR (it said "OK")
    for svc in site.services:
        if not cat.for_service(svc.id):
            print(f"cảnh báo / warning: lĩnh vực «{svc.name_vi}» ({svc.id}) chưa có thủ tục nào: mã QR trên áp phích "
                  f"của nó mở trang hướng dẫn trống / has no procedure: its poster's QR opens an empty guide")
    return 0


def posters_cmd(args: argparse.Namespace) -> int:
    from webd.catalogue import write_posters
    from xephang.settings import SettingsError

    try:
        site = _site(args)
    except SettingsError as exc:  # a missing or invalid site file: its reason in one line, as `catalogue` does
        print(f"xephang web posters: tệp site không dùng được / site file not usable: {'; '.join(exc.errors)}",
              file=sys.stderr)
        return 1
    try:
        paths = write_posters(site, args.public_url.rstrip("/"), Path(args.out), wifi=args.wifi)
    except OSError as exc:
        print(f"xephang web posters: không ghi được / cannot write {args.out}: {_write_failure(Path(args.out), exc)}",
              file=sys.stderr)
        return 1
    for p in paths:
        print(f"Đã ghi / written: {p}")
    return 0


def cert_cmd(args: argparse.Namespace) -> int:
    """Make the LAN's HTTPS certificate (the CA is kept); at install, ``--auto --if-missing
    --config webd.toml``: for this hub's names and addresses, only when needed, and set in webd."""
    import shutil
    import tomllib

    from webd import tlscert

    out = Path(args.out).resolve()  # -o web-tls: the files, and what --config writes, name it absolutely
    names = list(dict.fromkeys(args.names))
    if args.auto:
        names += tlscert.host_names()
        if args.config:
            try:
                web = tomllib.loads(Path(args.config).read_text(encoding="utf-8")).get("web", {})
            except (OSError, tomllib.TOMLDecodeError) as exc:
                print(f"xephang web cert: {args.config}: {exc}", file=sys.stderr)
                return 1
            from urllib.parse import urlsplit

            host = urlsplit(str(web.get("public_url", "http://xephang.local"))).hostname
            names += [host] if host else []
        names += tlscert.lan_addresses()
        names = list(dict.fromkeys(n.lower() for n in names))
    if not names:
        print("xephang web cert: name at least one host name or address, or --auto", file=sys.stderr)
        return 2
    try:
        why = tlscert.reusable(out, names) if args.if_missing else "asked for"
        if why is None:
            files = {"ca": out / "ca.crt", "cert": out / "server.crt", "key": out / "server.key"}
            print(f"Giữ chứng chỉ / kept: {files['cert']} (for {', '.join(names)})")
        else:
            kept_ca = (out / "ca.crt").exists()
            files = tlscert.make_certificates(out, names, site=args.site)
            print(f"Đã tạo / written: {files['cert']}, {files['key']} for {', '.join(names)} ({why}; "
                  f"CA {'kept' if kept_ca else 'new'}: {files['ca']})")
        if args.key_group:
            shutil.chown(files["key"], group=args.key_group)
            files["key"].chmod(0o640)
        if args.config:
            done = tlscert.configure_webd(Path(args.config), files, https_port=args.https_port)
            print(f"{args.config}: [web] {', '.join(done)} set" if done else
                  f"{args.config}: [web] already names its certificate (kept)")
    except (tlscert.CertError, OSError, LookupError) as exc:
        print(f"xephang web cert: {exc}", file=sys.stderr)
        return 1
    print(f"Cài {files['ca']} làm gốc tin cậy trên máy của lãnh đạo (docs/voice-packs.md) / "
          f"import {files['ca']} as a trusted root on the head's PC")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("web", help="trang web của trung tâm: tài khoản, khoá liên kết, áp phích QR / webd's accounts, "
                                   "link secret, catalogue, posters")
    ws = p.add_subparsers(dest="web_command", metavar="WHAT", required=True)
    u = ws.add_parser("user", help="tài khoản lãnh đạo/kỹ thuật / head's and technicians' accounts")
    u.add_argument("action", choices=["add", "passwd", "remove", "list"])
    u.add_argument("name", nargs="?")
    u.add_argument("--role", choices=["head", "technician", "officer"],
                   help="add only (passwd keeps the role). officer: the name must be the officer's id in the site's "
                        "[[officers]]; their console acts only for the counter the site seats them at")
    u.add_argument("--accounts", help=f"accounts file (default $XEPHANG_STATE_DIR/web-accounts.json or {DEFAULT_ACCOUNTS})")
    u.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    u.add_argument("--site-file", help="the site file an officer's id is checked against (default $XEPHANG_SITE_FILE "
                                       "or /etc/xephang/site.toml, when there)")
    u.set_defaults(func=user_cmd)
    s = ws.add_parser("secret", help="khoá ký liên kết trên phiếu / the ticket link secret")
    s.add_argument("--out", "-o", default="ticket-link.key")
    s.add_argument("--rotate", action="store_true", help="a new secret (printed tickets' links stop working)")
    s.set_defaults(func=secret_cmd)
    c = ws.add_parser("catalogue", help="kiểm tra danh mục thủ tục / check the procedure catalogue")
    c.add_argument("file")
    c.add_argument("--site-file")
    c.set_defaults(func=catalogue_cmd)
    q = ws.add_parser("posters", help="áp phích QR A4 cho từng quầy và lĩnh vực / A4 QR posters")
    q.add_argument("--site-file")
    q.add_argument("--public-url", default="http://xephang.local")
    q.add_argument("--wifi", default="")
    q.add_argument("--out", "-o", default="posters")
    q.set_defaults(func=posters_cmd)
    t = ws.add_parser("cert", help="chứng chỉ HTTPS trong mạng nội bộ (micro cho trang thu giọng) / LAN HTTPS certificates")
    t.add_argument("names", nargs="*", help="host names and addresses the head's PC uses, e.g. xephang.local 192.168.1.10")
    t.add_argument("--out", "-o", default="/etc/xephang/web-tls")
    t.add_argument("--site", default="xephang")
    t.add_argument("--auto", action="store_true", help="add this machine's host name, NAME.local, public_url's host "
                   "(with --config) and its LAN addresses")
    t.add_argument("--if-missing", action="store_true", help="keep the certificate there when it is signed by the CA "
                   "there, is for every name and lasts 30 days more (the install's re-runs)")
    t.add_argument("--config", help="webd's TOML: set [web] https_port, tls_certfile, tls_keyfile where not set")
    t.add_argument("--https-port", type=int, default=443, help="with --config (default 443)")
    t.add_argument("--key-group", help="the group that may read server.key (xephang-webd)")
    t.set_defaults(func=cert_cmd)
