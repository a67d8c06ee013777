"""``xephang web user | secret | posters | cert`` as a technician runs them: what each says and
its exit code, for the right and the wrong cases (an audit found a password change that made an
officer a head, a "kept" key the daemons refuse, a relative ``cert -o`` that never worked, and
tracebacks for ordinary mistakes)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from webd.auth import Accounts
from xephang.ticketlink import load_secret
from xephang_ops.cli import main as xephang

REPO = Path(__file__).resolve().parents[2]
PW, NEW_PW = "Matkhau-dai-123", "Matkhau-moi-456"


def run(capsys, monkeypatch, argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = xephang(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def user(capsys, monkeypatch, acc: Path, *argv: str, password: str = "") -> tuple[int, str, str]:
    return run(capsys, monkeypatch, ["web", "user", *argv, "--accounts", str(acc), "--password-stdin"],
               password + "\n")


def test_passwd_keeps_the_role_and_never_creates_an_account(tmp_path, capsys, monkeypatch) -> None:
    acc = tmp_path / "acc.json"
    assert user(capsys, monkeypatch, acc, "add", "lan", "--role", "officer", password=PW)[0] == 0
    assert user(capsys, monkeypatch, acc, "add", "tech-kien", "--role", "technician", password=PW)[0] == 0
    for name, role in (("lan", "officer"), ("tech-kien", "technician")):
        rc, out, _ = user(capsys, monkeypatch, acc, "passwd", name, password=NEW_PW)
        assert rc == 0 and f"{name} ({role}, unchanged)" in out
        a = Accounts(acc).verify(name, NEW_PW)
        assert a is not None and a.role == role  # the new password works, the role is the same
        assert Accounts(acc).verify(name, PW) is None
    rc, out, err = user(capsys, monkeypatch, acc, "passwd", "truong-t", password=NEW_PW)  # misspelt
    assert rc == 1 and "không có tài khoản / no account 'truong-t'" in err and not out
    assert [a.username for a in Accounts(acc).all()] == ["lan", "tech-kien"]
    # --role with passwd would read as "change the role": refused, nothing changed
    rc, _, err = user(capsys, monkeypatch, acc, "passwd", "lan", "--role", "head", password=PW)
    assert rc == 2 and "--role" in err and Accounts(acc).get("lan").role == "officer"


def test_add_of_an_existing_name_refuses_and_add_needs_a_role(tmp_path, capsys, monkeypatch) -> None:
    acc = tmp_path / "acc.json"
    assert user(capsys, monkeypatch, acc, "add", "lan", "--role", "officer", password=PW)[0] == 0
    before = acc.read_text()
    rc, out, err = user(capsys, monkeypatch, acc, "add", "lan", "--role", "head", password=NEW_PW)
    assert rc == 1 and "exists (officer)" in err and "passwd lan" in err and not out
    assert acc.read_text() == before  # same role, same password
    rc, _, err = user(capsys, monkeypatch, acc, "add", "truong", password=PW)
    assert rc == 2 and "--role" in err and Accounts(acc).get("truong") is None
    # another role: remove, then add
    assert user(capsys, monkeypatch, acc, "remove", "lan")[0] == 0
    assert user(capsys, monkeypatch, acc, "add", "lan", "--role", "head", password=PW)[0] == 0
    assert Accounts(acc).get("lan").role == "head"


@pytest.mark.parametrize("text", ["{", "[]", '{"users": {"lan": "x"}}', "\xff"])
def test_a_damaged_accounts_file_is_one_line_exit_1(tmp_path, capsys, monkeypatch, text) -> None:
    acc = tmp_path / "broken.json"
    acc.write_bytes(text.encode("latin-1"))
    for argv in (["list"], ["add", "lan", "--role", "officer"], ["passwd", "lan"], ["remove", "lan"]):
        rc, out, err = user(capsys, monkeypatch, acc, *argv, password=PW)
        assert rc == 1 and not out, argv
        assert err.count("\n") == 1 and "tệp tài khoản hỏng / damaged accounts file" in err, err
    assert acc.read_bytes() == text.encode("latin-1")  # never "repaired" by writing over it


def test_secret_checks_a_key_already_there_as_the_daemons_do(tmp_path, capsys, monkeypatch) -> None:
    for name, content in (("empty.key", ""), ("short.key", "abc\n")):
        key = tmp_path / name
        key.write_text(content)
        rc, out, err = run(capsys, monkeypatch, ["web", "secret", "-o", str(key)])
        assert rc == 1 and "kept" not in out + err and "too short" in err and "--rotate" in err
        assert key.read_text() == content  # -o may name the wrong file: not overwritten unasked
        rc, out, _ = run(capsys, monkeypatch, ["web", "secret", "-o", str(key), "--rotate"])
        assert rc == 0 and "written" in out and load_secret(key)
        rc, out, _ = run(capsys, monkeypatch, ["web", "secret", "-o", str(key)])
        assert rc == 0 and "kept" in out
    rc, _, err = run(capsys, monkeypatch, ["web", "secret", "-o", str(tmp_path)])
    assert rc == 1 and "is a folder" in err


def test_ordinary_mistakes_end_in_one_line_and_exit_1(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("afile").touch()
    site = str(REPO / "config" / "site.example.toml")
    for argv, want in ((["web", "secret", "-o", "afile/ticket-link.key"], "afile là tệp"),
                       (["web", "posters", "--site-file", site, "-o", "afile/posters"], "afile là tệp"),
                       (["web", "posters", "--site-file", "nosuch-site.toml"], "nosuch-site.toml not found")):
        rc, out, err = run(capsys, monkeypatch, argv)
        assert rc == 1 and not out and err.count("\n") == 1 and want in err and " / " in err, (argv, err)


def test_cert_with_a_relative_out_folder(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "webd.toml"
    toml.write_text("[web]\nport = 80\n")
    rc, out, err = run(capsys, monkeypatch, ["web", "cert", "xephang.local", "-o", "web-tls", "--config", str(toml)])
    assert rc == 0, err
    for f in ("ca.crt", "ca.key", "server.crt", "server.key"):
        assert (tmp_path / "web-tls" / f).is_file()
    # webd is started from /: the paths it is given are absolute
    assert f'tls_certfile = "{tmp_path / "web-tls" / "server.crt"}"' in toml.read_text()
    assert json.dumps(str(tmp_path / "web-tls" / "ca.crt"))[1:-1] in out


def test_make_certificates_with_a_relative_folder(tmp_path, monkeypatch) -> None:
    from webd.tlscert import make_certificates

    monkeypatch.chdir(tmp_path)
    files = make_certificates(Path("tls"), ["127.0.0.1"])  # openssl runs inside the folder
    assert files["cert"] == tmp_path / "tls" / "server.crt" and files["cert"].is_file()
