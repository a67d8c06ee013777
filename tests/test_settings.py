"""Settings and the site model: every error at once, "did you mean", the environment wins."""

from __future__ import annotations

import pytest

from xephang.settings import DaemonSettings, SettingsError, load_settings, load_site


def test_every_error_is_listed_with_did_you_mean(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('nod = "counter-1"\nlog_level = "LOUD"\n[broker]\nprot = 1884\nport = 0\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(DaemonSettings, cfg)
    errs = exc.value.errors
    assert len(errs) == 4
    text = str(exc.value)
    assert "nod: unknown key (did you mean 'node'?)" in text
    assert "broker.prot: unknown key (did you mean 'port'?)" in text
    assert "log_level" in text and "broker.port" in text


def test_environment_beats_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "ok.toml"
    cfg.write_text('node = "counter-1"\n[broker]\nport = 1884\n')
    monkeypatch.setenv("XEPHANG_BROKER__PORT", "18830")
    monkeypatch.setenv("XEPHANG_NODE", "counter-2")
    s = load_settings(DaemonSettings, cfg)
    assert (s.node, s.broker.port) == ("counter-2", 18830)


def test_not_toml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(DaemonSettings, bad)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(DaemonSettings, tmp_path / "nope.toml")


def test_site_errors_are_all_listed(tmp_path, site_file):
    text = site_file.read_text()
    text = text.replace("band = [2001, 2999]", "band = [1500, 2999]")  # overlaps ho-tich
    text = text.replace('services = ["dat-dai"]', 'services = ["dat-da"]')  # typo
    text = text.replace("rating_scale = 5", "rating_scale = 4\nrating_windw_s = 3")
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    msg = str(exc.value)
    assert "rating_windw_s: unknown key (did you mean 'rating_window_s'?)" in msg


def test_site_cross_checks_are_reported_together(tmp_path, site_file):
    text = site_file.read_text().replace("band = [2001, 2999]", "band = [1500, 2999]")
    text = text.replace('services = ["dat-dai"]', 'services = ["dat-da"]').replace("rating_scale = 5", "rating_scale = 4")
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    msg = str(exc.value)
    assert "overlap" in msg and "unknown service 'dat-da'" in msg and "rating_scale must be 3 or 5" in msg


def test_the_example_site_is_valid(site):
    assert [c.number for c in site.counters] == [1, 2, 3, 4]
    assert site.service("ho-tich").name_vi == "Hộ tịch"
