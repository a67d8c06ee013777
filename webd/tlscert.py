"""HTTPS for webd on a LAN without Internet: a certificate authority made at install, and a
server certificate it signs for the hub's names and addresses.

Browsers give the microphone only to secure origins (``https://…`` or ``http://localhost``):
the head's recording page (/head/voice) needs one on the head's PC. ``xephang web cert``
makes ``ca.crt`` (import it once on the head's PC as a trusted root: docs/voice-packs.md) and
``server.crt``/``server.key`` for webd (``[web] tls_certfile``/``tls_keyfile``). It runs the
``openssl`` program (Debian's, always on Raspberry Pi OS); nothing is linked.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


class CertError(RuntimeError):
    """The certificates could not be made."""


def _run(args: list[str], cwd: Path) -> None:
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    if r.returncode != 0:
        # openssl's key-generation progress ("...+..+*****") comes first on stderr: keep only the reason
        why = [line for line in r.stderr.splitlines() if line.strip() and not re.fullmatch(r"[.+*\-\s]+", line)]
        raise CertError(f"{' '.join(args[:3])}…: {' '.join(why)[-300:]}")


def make_certificates(out: Path, names: Sequence[str], *, site: str = "xephang", ca_days: int = 3650,
                      server_days: int = 825) -> dict[str, Path]:
    """CA (kept if already there, so PCs that trust it keep trusting) and a fresh server
    certificate for ``names`` (host names and IP addresses). Returns the files' paths."""
    exe = shutil.which("openssl")
    if not exe:
        raise CertError("openssl is not installed (Debian: apt-get install openssl)")
    if not names:
        raise CertError("name at least one host name or address, e.g. xephang.local 192.168.1.10")
    # absolute: openssl runs with cwd=out, where a relative out/… would name out/out/…; and these
    # paths go into webd.toml (`--config`), read by a daemon started from /
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt, key, crt = out / "ca.key", out / "ca.crt", out / "server.key", out / "server.crt"
    if not (ca_key.exists() and ca_crt.exists()):
        _run([exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
              "-days", str(ca_days), "-subj", f"/O=xephang/CN=xephang {site} local CA",
              "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], out)
    sans = []
    for n in names:
        try:
            sans.append(f"IP:{ipaddress.ip_address(n)}")
        except ValueError:
            sans.append(f"DNS:{n}")
    ext = out / "server.ext"
    ext.write_text(f"subjectAltName={','.join(sans)}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n")
    csr = out / "server.csr"
    _run([exe, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
          "-subj", f"/O=xephang/CN={names[0]}"], out)
    _run([exe, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
          "-out", str(crt), "-days", str(server_days), "-extfile", str(ext)], out)
    csr.unlink(missing_ok=True)
    for f in (ca_key, key):
        f.chmod(0o600)
    return {"ca": ca_crt, "cert": crt, "key": key}


# ---- at install: the hub's own names and addresses, a certificate only when needed, webd.toml

def host_names() -> list[str]:
    """This machine's host name and its mDNS name (``xephang``, ``xephang.local``)."""
    import socket

    short = socket.gethostname().split(".")[0].lower()
    return [short, f"{short}.local"] if short and short != "localhost" else []


def lan_addresses() -> list[str]:
    """This machine's global IPv4 addresses (``ip -j``; ``hostname -I`` when iproute2 is missing)."""
    import json

    if shutil.which("ip"):
        r = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True,
                           check=False, timeout=10)
        if r.returncode == 0:
            try:
                return [a["local"] for link in json.loads(r.stdout) for a in link.get("addr_info", [])
                        if a.get("family") == "inet" and a.get("local")]
            except (ValueError, KeyError, TypeError):
                pass
    if shutil.which("hostname"):
        r = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False, timeout=10)
        return [a for a in r.stdout.split() if "." in a and not a.startswith("127.")]
    return []


def certificate_names(crt: Path) -> set[str]:
    """The host names and addresses a certificate is for (its subjectAltName)."""
    exe = shutil.which("openssl") or "openssl"
    r = subprocess.run([exe, "x509", "-in", str(crt), "-noout", "-ext", "subjectAltName"], capture_output=True,
                       text=True, check=False, timeout=30)
    names = set()
    for item in r.stdout.replace("\n", ",").split(","):
        kind, _, value = item.strip().partition(":")
        if kind in ("DNS", "IP Address") and value:
            names.add(value.strip().lower())
    return names


def reusable(out: Path, names: Sequence[str], *, min_days: int = 30) -> str | None:
    """Why the server certificate in ``out`` must be made again (None: it can stay): missing, not
    signed by the CA there, not for every one of ``names``, or expiring within ``min_days``."""
    exe = shutil.which("openssl")
    if not exe:
        raise CertError("openssl is not installed (Debian: apt-get install openssl)")
    ca, crt, key = out / "ca.crt", out / "server.crt", out / "server.key"
    if not (ca.exists() and crt.exists() and key.exists()):
        return "no certificate yet"
    if subprocess.run([exe, "verify", "-CAfile", str(ca), str(crt)], capture_output=True, check=False,
                      timeout=30).returncode != 0:
        return "not signed by the CA there"
    missing = sorted({str(ipaddress.ip_address(n)) if _is_ip(n) else n.lower() for n in names}
                     - certificate_names(crt))
    if missing:
        return f"not for {', '.join(missing)}"
    if subprocess.run([exe, "x509", "-in", str(crt), "-noout", "-checkend", str(min_days * 86400)],
                      capture_output=True, check=False, timeout=30).returncode != 0:
        return f"expires within {min_days} days"
    return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


WEB_TLS_KEYS = ("https_port", "tls_certfile", "tls_keyfile")


def configure_webd(toml_path: Path, files: dict[str, Path], *, https_port: int = 443) -> list[str]:
    """Set ``[web] https_port``, ``tls_certfile`` and ``tls_keyfile`` in webd's TOML where they are
    not set yet (a value already there is kept: the centre's choice). Comments and order stay; the
    result is checked as webd would before it is written. Returns what was set."""
    import tomllib

    from pydantic import ValidationError

    from webd.config import WebConfig
    from xephang.settings import format_validation_errors

    text = toml_path.read_text(encoding="utf-8")
    try:
        web = tomllib.loads(text).get("web", {})
    except tomllib.TOMLDecodeError as exc:
        raise CertError(f"{toml_path}: not TOML ({exc})") from None
    values = {"https_port": str(https_port), "tls_certfile": _toml_str(files["cert"]),
              "tls_keyfile": _toml_str(files["key"])}
    if "https_port" not in web and "tls_certfile" in web:
        values.pop("https_port")  # HTTPS alone on `port` (set by hand): not turned into two listeners
    todo = {k: v for k, v in values.items() if k not in web}
    if not todo:
        return []
    header = re.search(r"(?m)^\[web\][ \t]*(#.*)?$", text)
    if header is None:
        new = text.rstrip("\n") + "\n\n[web]\n" + "".join(f"{k} = {v}\n" for k, v in todo.items())
    else:
        nxt = re.search(r"(?m)^\[", text[header.end():])
        end = header.end() + (nxt.start() if nxt else len(text) - header.end())
        table = text[header.end():end].split("\n")
        rest = {}
        for k, v in todo.items():  # a commented-out example line (`# https_port = 443`) becomes the setting
            at = next((i for i, line in enumerate(table) if re.match(rf"#\s*{k}\s*=", line.strip())), None)
            if at is None:
                rest[k] = v
            else:
                table[at] = f"{k} = {v}"
        if rest:  # after the table's last setting, not after trailing comments
            last = max((i for i, line in enumerate(table) if re.match(r"\s*[A-Za-z0-9_]+\s*=", line)), default=0)
            table[last + 1:last + 1] = [f"{k} = {v}" for k, v in rest.items()]
        new = text[:header.end()] + "\n".join(table) + text[end:]
    try:
        WebConfig.model_validate(tomllib.loads(new).get("web", {}))
    except ValidationError as exc:
        raise CertError(f"{toml_path}: with the certificate, [web] would not be valid: "
                        f"{'; '.join(format_validation_errors(exc, WebConfig))}") from None
    toml_path.write_text(new, encoding="utf-8")  # in place: the file keeps its owner and mode
    return list(todo)


def _toml_str(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'
