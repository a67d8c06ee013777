"""Words a person reads stay as written: a name or a reason cannot carry a newline that forges a
table row, an escape sequence, or a text-direction override (U+202E) that turns a line around —
in a site file, in a board's request, or on a technician's terminal."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from xephang.contract import BadPayload, Pause, decode
from xephang.site import Site
from xephang.terminal import one_line, shown, shown_json

REPO = Path(__file__).resolve().parent.parent
RLO, LRI, PDI = "\u202e", "\u2066", "\u2069"


def _site_data() -> dict:
    return tomllib.loads((REPO / "config" / "site.example.toml").read_text(encoding="utf-8"))


def test_the_terminal_neutralises_direction_overrides_and_the_json_keeps_the_value():
    evil = f"counter-1 {RLO}enilffo{PDI} online"
    assert shown(evil) == "counter-1 ?enilffo? online"
    out = shown_json({"node": evil})
    assert RLO not in out and "\\u202e" in out and json.loads(out) == {"node": evil}
    assert shown("Bảo hiểm xã hội — Quầy 3") == "Bảo hiểm xã hội — Quầy 3"  # Vietnamese untouched


@pytest.mark.parametrize("bad", ["Hộ tịch\nTổng cộng,999", "Hộ\ttịch", f"Hộ {RLO}hcịt", f"{LRI}Hộ tịch",
                                 "Hộ \x1b[2J", "Hộ \x9b31m"])
def test_one_line_refuses_each_control_and_override_and_says_which(bad):
    with pytest.raises(ValueError, match=r"U\+[0-9A-F]{4} at character \d+"):
        one_line(bad)


def test_a_site_file_with_a_forged_name_is_refused_with_every_error_listed():
    data = _site_data()
    data["services"][0]["name_vi"] = "Hộ tịch\nTổng cộng"
    data["counters"][0]["label_vi"] = f"Quầy {RLO}1"
    data["site"]["name_vi"] = "UBND\x1b[2J"
    with pytest.raises(ValidationError) as exc:
        Site.model_validate(data)
    errs = {".".join(map(str, e["loc"])) for e in exc.value.errors()}
    assert {"services.0.name_vi", "counters.0.label_vi", "site.name_vi"} <= errs
    assert "U+000A at character 8" in str(exc.value) and "U+202E" in str(exc.value)
    assert Site.model_validate(_site_data()).services[0].name_vi  # the shipped example still loads


def test_a_board_reason_with_an_override_or_c1_is_a_bad_payload():
    ok = {"request_id": "req-00000001", "source": "counter-1", "counter": 1, "reason": "nghỉ trưa"}
    assert decode(Pause, json.dumps(ok)).reason == "nghỉ trưa"
    for bad in (f"nghỉ {RLO}aưrt", "nghỉ\x9b2J", "nghỉ\ntrưa"):
        with pytest.raises(BadPayload):
            decode(Pause, json.dumps({**ok, "reason": bad}))


def test_a_site_qr_template_with_a_format_or_unknown_field_is_refused_at_load():
    """guide_url and queue_url are str.format templates ticketd fills per ticket: `{number:>9999}`
    made a QR code too long to print (every ticket voided, now printed without its QR)."""
    data = _site_data()
    data["site"]["queue_url"] = "http://xephang.local/q/{site}/{number:>9999}"
    data["services"][0]["guide_url"] = "http://x/{secret}"
    data["services"][1]["guide_url"] = "http://x/{number.__class__}"
    data["services"][2]["guide_url"] = "http://x/{"
    with pytest.raises(ValidationError) as exc:
        Site.model_validate(data)
    errs = {".".join(map(str, e["loc"])) for e in exc.value.errors()}
    assert errs == {"site.queue_url", "services.0.guide_url", "services.1.guide_url", "services.2.guide_url"}
    assert "{number:>9999} is not one of its fields" in str(exc.value)
    data = _site_data()
    data["site"]["queue_url"] = "https://xephang.local/q/{site}/{day}/{id}?t={token}&n={number}&s={service}"
    assert Site.model_validate(data).site.queue_url.endswith("&s={service}")
