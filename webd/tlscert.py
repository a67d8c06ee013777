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
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


class CertError(RuntimeError):
    """The certificates could not be made."""


def _run(args: list[str], cwd: Path) -> None:
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    if r.returncode != 0:
        raise CertError(f"{' '.join(args[:3])}…: {r.stderr.strip()[-300:]}")


def make_certificates(out: Path, names: Sequence[str], *, site: str = "xephang", ca_days: int = 3650,
                      server_days: int = 825) -> dict[str, Path]:
    """CA (kept if already there, so PCs that trust it keep trusting) and a fresh server
    certificate for ``names`` (host names and IP addresses). Returns the files' paths."""
    exe = shutil.which("openssl")
    if not exe:
        raise CertError("openssl is not installed (Debian: apt-get install openssl)")
    if not names:
        raise CertError("name at least one host name or address, e.g. xephang.local 192.168.1.10")
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
