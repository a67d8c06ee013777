"""A config error reads Vietnamese first, then English: every line a technician gets from a bad
config (``--check``, the journal, a push's reply) is ``where: <vi> / <en>``."""

from __future__ import annotations

from datetime import time
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from counterd.config import PLAIN_ACTIONS, BoxConfig
from displayd.config import BoardConfig
from ticketd.config import TicketdConfig
from xephang.checktext import VI_BY_TYPE, error_text
from xephang.settings import format_validation_errors, site_errors


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=5)
    code: str = Field(default="", pattern=r"^[A-Z]$")
    port: int = Field(default=80, ge=1, le=65535)
    ratio: float = Field(default=0.5, gt=0, lt=1)
    on: bool = False
    mode: Literal["usb", "network", "file"] = "usb"
    items: list[int] = Field(default_factory=list, max_length=2)
    at: time = time(7, 30)


ACTIONS = f"{', '.join(PLAIN_ACTIONS)}, rate-1…rate-5, transfer:<service id>"


def lines(model: type[BaseModel], data: dict) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return format_validation_errors(exc.value, model)


def test_pydantics_own_errors_are_said_in_vietnamese_with_their_limits():
    got = lines(Sample, {"name": "x", "code": "ab", "port": 0, "ratio": 1, "on": "maybe", "mode": "serial",
                         "items": [1, 2, 3], "at": "7h", "colour": 1})
    assert sorted(got) == sorted([
        "name = 'x': cần ít nhất 2 ký tự / String should have at least 2 characters",
        "code = 'ab': không đúng dạng ^[A-Z]$ / String should match pattern '^[A-Z]$'",
        "port = 0: phải từ 1 trở lên / Input should be greater than or equal to 1",
        "ratio = 1: phải nhỏ hơn 1 / Input should be less than 1",
        "on = 'maybe': phải là true hoặc false / Input should be a valid boolean, unable to interpret input",
        "mode = 'serial': phải là một trong: 'usb', 'network' hoặc 'file' / Input should be 'usb', 'network' or 'file'",
        "items: tối đa 2 mục / List should have at most 2 items after validation, not 3",
        "at = '7h': phải là giờ dạng HH:MM / Input should be in a valid time format, input is too short",
        "colour: khóa không có trong cấu hình / unknown key",
    ])
    assert lines(Sample, {"name": "abcdef", "port": "tám"}) == [
        "name = 'abcdef': tối đa 5 ký tự / String should have at most 5 characters",
        "port = 'tám': phải là một số nguyên / Input should be a valid integer, unable to parse string as an integer",
    ]
    assert lines(Sample, {}) == ["name: thiếu, phải có / Field required"]


def test_a_type_the_table_does_not_know_still_says_so_in_vietnamese_and_hides_nothing():
    e = {"type": "uuid_parsing", "msg": "Input should be a valid UUID", "loc": ("x",), "input": "1"}
    assert error_text(e) == "giá trị không hợp lệ / Input should be a valid UUID"
    # a ctx without the field the table names: the plain Vietnamese, never a KeyError
    assert error_text({"type": "greater_than", "msg": "Input should be greater than 3", "ctx": {}}) == \
        "giá trị không hợp lệ / Input should be greater than 3"
    assert all(isinstance(v, str) and v for v in VI_BY_TYPE.values())


def test_every_line_of_a_bad_site_and_of_bad_device_configs_is_vietnamese_first(site_file):
    import tomllib

    site = tomllib.loads(site_file.read_text())
    site["services"][0]["band"] = [1500, 1400]
    site["services"][1]["band"] = [1001, 2999]
    site["services"][1]["prefixx"] = "A"
    site["counters"][0]["services"] = ["khong-co"]
    site["counters"][1]["number"] = site["counters"][2]["number"]
    site["counters"][0]["officer_id"] = "ai-do"
    site["rating_scale"] = 4
    site["site"]["name_vi"] = "Trung tâm\u202e"
    said = site_errors(site)
    assert len(said) == 7 and any(x.startswith("site.name_vi = ") and "U+202E" in x for x in said), said
    ticket = lines(TicketdConfig, {"printer": {"backend": "usb", "serial_baud": 11520, "nv_digits": True},
                                   "ticket": {"texts": {"footer": "x" * 400}},
                                   "hardware": {"buttons": [{"service": "a", "pin": 5}, {"service": "b", "pin": 5}]}})
    assert len(ticket) == 3 and "hardware: chân dùng hai lần: ['5'] / pins used twice: ['5']" in ticket, ticket
    assert lines(BoxConfig, {"keys": [{"name": "a", "pin": 5, "short": "nxt"}]}) == [
        "keys.0.short = 'nxt': thao tác không có 'nxt', một trong: " + ACTIONS + " / unknown action 'nxt': one of " + ACTIONS]
    # a model validator's several problems: a line each, each naming its place
    box = lines(BoxConfig, {"number": 2, "keys": [{"name": "a", "pin": 5, "short": "next"},
                                                  {"name": "a", "pin": 5, "short": "recall"}]})
    assert box == ["keys: tên phím bị trùng ['a'] / duplicate key names ['a']",
                   "keys/LEDs: chân dùng hai lần ['5'] / a pin is used twice ['5']"]
    board = lines(BoardConfig, {"layout": "counter", "colours": {"nen": "#12345"}})
    for line in [*said, *ticket, *box, *board]:
        where, _, text = line.partition(": ")
        vi, sep, en = text.partition(" / ")
        assert sep and vi and en, line
        assert "Value error" not in line and "Input should" not in vi, line


def test_a_refusal_fits_one_message_whatever_its_lines_hold():
    """The ack's lines are budgeted as its JSON writes them: 20 unknown keys of 1,500 control
    characters (6 bytes each in JSON) made an ack of 66 KB, over the broker's limit: no answer."""
    from xephang.contract import MAX_PAYLOAD_BYTES, ConfigAck
    from xephang.nodeconfig import capped_errors

    errors = site_errors({"\x01" * 1500 + str(i): 1 for i in range(20)})
    capped = capped_errors(errors)
    ack = ConfigAck(request_id="tech-0001", node="hub", status="rejected", rev=0, errors=capped)
    assert len(ack.to_json()) < MAX_PAYLOAD_BYTES and any(len(c) == 1000 and c.endswith("…") for c in capped)
    assert capped[-1].startswith("… và ") and capped[-1].endswith("more (fix the ones above and push again)")
    assert capped_errors(["ngắn"] * 3) == ["ngắn"] * 3


def test_the_patterns_of_ids_and_of_one_line_texts_are_said_in_words():
    """`counters.3.officer_id = 'tuân': không đúng dạng ^[a-z0-9]+(-[a-z0-9]+)*$` meant nothing to
    the technician who typed the officer's name with its accent (a newcomer's walk)."""
    from xephang.contract import NodeId, PlainText

    class M(BaseModel):
        officer_id: NodeId
        reason: PlainText = ""

    assert lines(M, {"officer_id": "tuân", "reason": "họp\ngiao ban"}) == [
        "officer_id = 'tuân': chỉ gồm chữ thường không dấu, chữ số và dấu gạch ngang giữa các phần (vd. ho-tich, "
        "quay-3) / String should match pattern '^[a-z0-9]+(-[a-z0-9]+)*$'",
        "reason = 'họp\\ngiao ban': phải là một dòng chữ, không có ký tự điều khiển hay ký tự đảo chiều / String "
        "should match pattern '^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$'",
    ]
