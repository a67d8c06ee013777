"""Settings and the site model: every error at once, "did you mean", the environment wins."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

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
    """Field errors and cross-checks come out together, each on its own line."""
    text = site_file.read_text()
    text = text.replace("band = [2001, 2999]", "band = [1500, 2999]")  # overlaps ho-tich
    text = text.replace('services = ["dat-dai"]', 'services = ["dat-da"]')  # typo
    text = text.replace("rating_scale = 5", "rating_scale = 4\nrating_windw_s = 3")
    text = text.replace("target_wait_min = 20", "target_wait_mn = 20")  # services.1 (dat-dai)
    text = text.replace('officer_id = "tuan"', 'officer_i = "tuan"')  # counters.2
    text = text.replace('officer_id = "hoa"', 'officer_id = "hoaa"')  # counter 4: nobody of that id
    text = text.replace("band = [3001, 3999]", "band = [3999, 3001]")  # a field error of services.2
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    assert sorted(exc.value.errors) == sorted([
        "rating_windw_s: unknown key (did you mean 'rating_window_s'?)",
        "services.1.target_wait_mn: unknown key (did you mean 'target_wait_min'?)",
        "counters.2.officer_i: unknown key (did you mean 'officer_id'?)",
        "counters: counter 4 names unknown officer 'hoaa' (add it to [[officers]])",
        "services.2.band: Value error, band must be [first, last] with 0 <= first < last <= 9999",
        "services: bands of 'ho-tich' and 'dat-dai' overlap",
        "counters: counter 3 names unknown service 'dat-da'",
        "rating_scale must be 3 or 5",
    ])
    assert "(8 errors)" in str(exc.value)


def test_a_broken_service_entry_does_not_make_its_counters_look_wrong(tmp_path, site_file):
    # dat-dai has a typo'd key: its id is still readable, so counters 3 and 4 naming it are fine
    text = site_file.read_text().replace("target_wait_min = 20", "target_wait_mn = 20")
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    assert exc.value.errors == ["services.1.target_wait_mn: unknown key (did you mean 'target_wait_min'?)"]


def test_duplicates_are_found_even_next_to_field_errors(tmp_path, site_file):
    text = site_file.read_text().replace("number = 4", "number = 3").replace("[hours]", "[hours]\nopne = 1")
    text = text.replace('{ id = "co-thai"', '{ id = "cao-tuoi"')
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    assert sorted(exc.value.errors) == sorted([
        "hours.opne: unknown key (did you mean 'open'?)",
        "counters: duplicate number [3]",
        "priority.groups: duplicate id ['cao-tuoi']",
    ])


class ButtonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    pin: int


class Hardware(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buttons: tuple[ButtonSpec, ...] = ()
    lights: dict[str, ButtonSpec] = {}


class BoxSettings(DaemonSettings):
    hardware: Hardware = Hardware()


def test_did_you_mean_inside_list_entries_and_tables(tmp_path):
    cfg = tmp_path / "box.toml"
    cfg.write_text('[hardware]\nbuttons = [{ service = "ho-tich", pin = 5 }, { servce = "dat-dai", pin = 6 }]\n'
                   '[hardware.lights.ho-tich]\nservice = "ho-tich"\npn = 17\n[hardware.nonsense]\nx = 1\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(BoxSettings, cfg)
    errs = exc.value.errors
    assert "hardware.buttons.1.servce: unknown key (did you mean 'service'?)" in errs
    assert "hardware.lights.ho-tich.pn: unknown key (did you mean 'pin'?)" in errs
    # nothing close: no made-up suggestion
    assert "hardware.nonsense: unknown key" in errs


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


def test_site_docstrings_name_only_real_keys():
    """docs/config.md is generated from these docstrings: a key they name must exist."""
    import re

    from xephang import site as site_mod

    for model in (site_mod.Service, site_mod.Counter, site_mod.PriorityRule, site_mod.OpeningHours,
                  site_mod.SiteInfo, site_mod.Site):
        for name in re.findall(r"``([a-z_]+)``", model.__doc__ or ""):
            assert name in model.model_fields, f"{model.__name__} docstring names {name!r}, not a key"
