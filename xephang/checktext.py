"""A configuration error in Vietnamese first, English after: ``"<vi> / <en>"``.

The technician reads these lines at the box (``--check``, the journal) and in the reply to a
config push. pydantic's own messages are English only and it ships no translations, so each error
*type* a config can meet gets its Vietnamese here, filled from the error's ``ctx`` (the limit, the
allowed values); the English stays pydantic's own words. Messages the project writes itself (a
validator's ``ValueError``, the cross-checks) are written in both languages where they are raised,
with :func:`both`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VI_BY_TYPE", "both", "error_text", "plain_message", "vi_text"]


def both(vi: str, en: str) -> str:
    """One line, Vietnamese first: the project's form for a bilingual message."""
    return f"{vi} / {en}"


def _ctx_value(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():  # a float field's limit: 1, as pydantic's English says, not 1.0
        return str(int(x))
    # pydantic lists allowed values as "'a', 'b' or 'c'"
    return str(x).replace(" or ", " hoặc ")


# pydantic error type → Vietnamese, formatted with the error's ctx
VI_BY_TYPE: dict[str, str] = {
    "missing": "thiếu, phải có",
    "string_type": "phải là một chuỗi chữ",
    "string_too_short": "cần ít nhất {min_length} ký tự",
    "string_too_long": "tối đa {max_length} ký tự",
    "string_pattern_mismatch": "không đúng dạng {pattern}",
    "string_unicode": "phải là chữ Unicode hợp lệ",
    "int_type": "phải là một số nguyên",
    "int_parsing": "phải là một số nguyên",
    "int_from_float": "phải là một số nguyên, không có phần lẻ",
    "int_parsing_size": "số quá lớn",
    "float_type": "phải là một số",
    "float_parsing": "phải là một số",
    "finite_number": "phải là một số hữu hạn",
    "bool_type": "phải là true hoặc false",
    "bool_parsing": "phải là true hoặc false",
    "greater_than": "phải lớn hơn {gt}",
    "greater_than_equal": "phải từ {ge} trở lên",
    "less_than": "phải nhỏ hơn {lt}",
    "less_than_equal": "không được quá {le}",
    "multiple_of": "phải là bội số của {multiple_of}",
    "literal_error": "phải là một trong: {expected}",
    "enum": "phải là một trong: {expected}",
    "too_short": "cần ít nhất {min_length} mục",
    "too_long": "tối đa {max_length} mục",
    "list_type": "phải là một danh sách [ … ]",
    "tuple_type": "phải là một danh sách [ … ]",
    "set_type": "phải là một danh sách [ … ]",
    "frozen_set_type": "phải là một danh sách [ … ]",
    "dict_type": "phải là một bảng (khóa = giá trị)",
    "model_type": "phải là một bảng (khóa = giá trị)",
    "model_attributes_type": "phải là một bảng (khóa = giá trị)",
    "time_type": "phải là giờ dạng HH:MM",
    "time_parsing": "phải là giờ dạng HH:MM",
    "date_type": "phải là ngày dạng YYYY-MM-DD",
    "date_parsing": "phải là ngày dạng YYYY-MM-DD",
    "date_from_datetime_parsing": "phải là ngày dạng YYYY-MM-DD",
    "datetime_type": "phải là ngày giờ dạng YYYY-MM-DDTHH:MM",
    "datetime_parsing": "phải là ngày giờ dạng YYYY-MM-DDTHH:MM",
    "url_type": "phải là một địa chỉ URL",
    "url_parsing": "không phải một địa chỉ URL hợp lệ",
    "url_scheme": "địa chỉ phải bắt đầu bằng {expected_schemes}",
    "url_too_long": "địa chỉ tối đa {max_length} ký tự",
    "ip_any_address": "không phải một địa chỉ IP hợp lệ",
    "union_tag_invalid": "loại {tag!r} không có; phải là một trong: {expected_tags}",
    "union_tag_not_found": "thiếu khóa {discriminator} để biết loại",
    "frozen_field": "không được đổi",
    "json_invalid": "không phải JSON hợp lệ",
    "recursion_loop": "lồng nhau quá sâu",
}


def plain_message(e: Any) -> str:
    """pydantic's English message without its "Value error, " / "Assertion failed, " prefix."""
    msg = str(e.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


# patterns the configs use, said as a technician reads them (the regex itself means nothing to most)
VI_BY_PATTERN: dict[str, str] = {
    r"^[a-z0-9]+(-[a-z0-9]+)*$": "chỉ gồm chữ thường không dấu, chữ số và dấu gạch ngang giữa các phần (vd. ho-tich, quay-3)",
    r"^[A-Z]?$": "một chữ in hoa không dấu, hoặc để trống",
}


def vi_text(e: Any) -> str | None:
    """The Vietnamese of one pydantic error of a type this table knows (None: a validator's own
    message, written in both languages where it is raised, or a type not in the table)."""
    if e.get("type") == "string_pattern_mismatch":
        pattern = str((e.get("ctx") or {}).get("pattern", ""))
        if pattern in VI_BY_PATTERN:
            return VI_BY_PATTERN[pattern]
        if pattern.startswith("^[^\\x00-\\x1f"):  # one line of text (contract.PlainText, the catalogue's lines)
            return "phải là một dòng chữ, không có ký tự điều khiển hay ký tự đảo chiều"
    template = VI_BY_TYPE.get(str(e.get("type", "")))
    if template is None:
        return None
    ctx = {k: _ctx_value(v) for k, v in (e.get("ctx") or {}).items()}
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):  # a ctx without the field this pydantic version named
        return "giá trị không hợp lệ"


def error_text(e: Any) -> str:
    """One pydantic error (an ``ErrorDetails``) as "<vi> / <en>", without where it is.

    A validator's own message is returned as written: the project writes those in both languages.
    A type this table does not know says in Vietnamese that the value is not valid, then pydantic's
    English, so nothing is ever hidden."""
    en = plain_message(e)
    kind = str(e.get("type", ""))
    if kind in ("value_error", "assertion_error"):
        return en
    return both(vi_text(e) or "giá trị không hợp lệ", en)
