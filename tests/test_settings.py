"""Settings and the site model: every error at once, "did you mean", the environment wins."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from xephang.settings import DaemonSettings, SettingsError, load_settings, load_site


def UNKNOWN(close: str) -> str:  # noqa: N802 - reads as the text it stands for
    return f"khóa không có trong cấu hình (có phải {close!r}?) / unknown key (did you mean {close!r}?)"


def test_every_error_is_listed_with_did_you_mean(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('nod = "counter-1"\nlog_level = "LOUD"\n[broker]\nprot = 1884\nport = 0\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(DaemonSettings, cfg)
    errs = exc.value.errors
    assert len(errs) == 4
    text = str(exc.value)
    # Vietnamese first, then English: pydantic's own words stay, after the translation
    assert f"nod: {UNKNOWN('node')}" in text
    assert f"broker.prot: {UNKNOWN('port')}" in text
    assert "broker.port = 0: phải từ 1 trở lên / Input should be greater than or equal to 1" in text
    assert "log_level = 'LOUD': không đúng dạng" in text
    assert text.startswith("cấu hình không hợp lệ trong ") and "(4 lỗi) / invalid settings in " in text


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
        f"rating_windw_s: {UNKNOWN('rating_window_s')}",
        f"services.1.target_wait_mn: {UNKNOWN('target_wait_min')}",
        f"counters.2.officer_i: {UNKNOWN('officer_id')}",
        "counters: quầy 4 ghi cán bộ không có 'hoaa' (thêm vào [[officers]]) / "
        "counter 4 names unknown officer 'hoaa' (add it to [[officers]])",
        "services.2.band: dải số phải là [đầu, cuối] với 0 <= đầu < cuối <= 9999 / "
        "band must be [first, last] with 0 <= first < last <= 9999",
        "services: dải số của 'ho-tich' và 'dat-dai' chồng lên nhau / bands of 'ho-tich' and 'dat-dai' overlap",
        "counters: quầy 3 ghi lĩnh vực không có 'dat-da' / counter 3 names unknown service 'dat-da'",
        "rating_scale: phải là 3 hoặc 5 / must be 3 or 5",
    ])
    assert "(8 lỗi) / invalid settings" in str(exc.value) and "(8 errors)" in str(exc.value)


def test_a_broken_service_entry_does_not_make_its_counters_look_wrong(tmp_path, site_file):
    # dat-dai has a typo'd key: its id is still readable, so counters 3 and 4 naming it are fine
    text = site_file.read_text().replace("target_wait_min = 20", "target_wait_mn = 20")
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    assert exc.value.errors == [f"services.1.target_wait_mn: {UNKNOWN('target_wait_min')}"]


def test_duplicates_are_found_even_next_to_field_errors(tmp_path, site_file):
    text = site_file.read_text().replace("number = 4", "number = 3").replace("[hours]", "[hours]\nopne = 1")
    text = text.replace('{ id = "co-thai"', '{ id = "cao-tuoi"')
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    assert sorted(exc.value.errors) == sorted([
        f"hours.opne: {UNKNOWN('open')}",
        "counters: số quầy bị trùng [3] / duplicate number [3]",
        "priority.groups: mã nhóm bị trùng ['cao-tuoi'] / duplicate id ['cao-tuoi']",
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
    assert f"hardware.buttons.1.servce: {UNKNOWN('service')}" in errs
    assert f"hardware.lights.ho-tich.pn: {UNKNOWN('pin')}" in errs
    # nothing close: no made-up suggestion
    assert "hardware.nonsense: khóa không có trong cấu hình / unknown key" in errs


def test_site_cross_checks_are_reported_together(tmp_path, site_file):
    text = site_file.read_text().replace("band = [2001, 2999]", "band = [1500, 2999]")
    text = text.replace('services = ["dat-dai"]', 'services = ["dat-da"]').replace("rating_scale = 5", "rating_scale = 4")
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_site(bad)
    msg = str(exc.value)
    assert "overlap" in msg and "unknown service 'dat-da'" in msg and "rating_scale: phải là 3 hoặc 5 / must be 3 or 5" in msg


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


def test_opening_hours_must_make_a_week_a_hall_can_keep(site_file):
    """days [7, 9, -1, 3, 3], a close before the open and no day at all were applied live: the wait
    estimate counted to a closing that never came (~560 min)."""
    import tomllib

    from xephang.settings import site_errors

    site = tomllib.loads(site_file.read_text())
    site["hours"] = {"open": "17:00:00", "close": "07:30:00", "days": [7, 9, -1, 3, 3]}
    assert site_errors(site) == [
        "hours.days: ngày trong tuần là 0 (thứ Hai) … 6 (Chủ nhật), không phải [7, 9, -1] / "
        "weekdays are 0 (Monday) … 6 (Sunday), not [7, 9, -1]"]
    site["hours"]["days"] = [3, 3]
    assert site_errors(site) == ["hours.days: có ngày ghi hai lần: [3] / a day is named twice: [3]"]
    site["hours"]["days"] = [0, 1]
    assert site_errors(site) == ["hours.close (07:30) phải sau hours.open (17:00) / "
                                 "hours.close (07:30) must be after hours.open (17:00)"]
    site["hours"] = {"days": []}
    assert site_errors(site) == ["hours.days: cần ít nhất 1 mục / Tuple should have at least 1 item after validation, not 0"]


def test_a_board_blinks_steady_or_as_an_eye_follows():
    from displayd.config import BoardConfig

    assert BoardConfig(blink_period_s=0).blink_period_s == 0 and BoardConfig(blink_period_s=0.2).blink_period_s == 0.2
    with pytest.raises(ValueError, match="0 \\(không nhấp nháy\\) hoặc ít nhất 0.2 giây / 0 \\(steady\\) or at least 0.2 s"):
        BoardConfig(blink_period_s=0.0001)


def test_the_site_history_says_what_changed_in_each_service_and_section(site):
    """A removed service, a band change and a new target all read "services: đổi" in the head's record
    of who changed what (a newcomer's walk)."""
    from xephang.site import Site, changes_between

    d = site.model_dump()
    d["services"] = [{**x, "band": (1001, 1500), "target_wait_min": 12} if x["id"] == "ho-tich" else x
                     for x in d["services"] if x["id"] != "van-hoa-xa-hoi"]
    d["counters"] = [{**c, "services": [v for v in c["services"] if v != "van-hoa-xa-hoi"]} for c in d["counters"]]
    d["hours"] = {**d["hours"], "close": "16:30"}
    d["rating_window_s"] = 60
    assert changes_between(site, Site.model_validate(d)) == [
        "quầy 4: van-hoa-xa-hoi, dat-dai → dat-dai",
        "lĩnh vực ho-tich: band: [1001, 1999] → [1001, 1500]",
        "lĩnh vực ho-tich: target_wait_min: 15.0 → 12.0",
        "lĩnh vực van-hoa-xa-hoi: bỏ",
        "hours.close: 17:00:00 → 16:30:00",
        "rating_window_s: 120.0 → 60.0",
    ]
    assert changes_between(site, site) == []
