"""The dispenser's local configuration: ticket layout and texts, printer, buttons and lights.

These models are the ``[ticket]``, ``[printer]`` and ``[hardware]`` sections of the
dispenser's TOML (the broker, node id and site come from the shared daemon settings).
Strict like the site model: an unknown key is an error, so a typo is caught at start-up.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ticketd.escpos_job import JobOptions
from xephang.checktext import both
from xephang.site import QR_FIELDS, check_template
from xephang.terminal import one_line

Lang = Literal["vi", "en"]

TEXT_MAX = 300  # characters of one printed text: the longest default is ~70; 64 KiB printed 5.7 m of paper
# the {fields} each text is filled with (render.py); a text not listed is printed as it is
TEXT_FIELDS: dict[str, frozenset[str]] = {
    "issued_at": frozenset({"datetime"}), "people_ahead": frozenset({"n"}), "wait_estimate": frozenset({"minutes"}),
    "wait_range": frozenset({"low", "high"}), "wait_under": frozenset({"high"}), "wait_over": frozenset({"low"}),
    "qr_caption": frozenset({"wifi"}), "qr_caption_live": frozenset({"wifi"}), "qr_caption_live_wifi": frozenset({"wifi"}),
}

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TicketTexts(Strict):
    """Every fixed text printed on a ticket. ``{…}`` fields are filled per ticket."""

    title: str = "SỐ THỨ TỰ"
    priority: str = "ƯU TIÊN"
    reprint: str = "(IN LẠI)"
    test_title: str = "IN THỬ — MÁY IN HOẠT ĐỘNG TỐT"
    issued_at: str = "Giờ lấy số: {datetime}"
    people_ahead: str = "Số người đang chờ trước bạn: {n}"
    wait_estimate: str = "Thời gian chờ dự kiến: khoảng {minutes} phút"
    wait_range: str = "Thời gian chờ dự kiến: khoảng {low}–{high} phút"
    wait_under: str = "Thời gian chờ dự kiến: dưới {high} phút"
    wait_over: str = "Thời gian chờ dự kiến: hơn {low} phút"
    wait_unknown: str = "Thời gian chờ dự kiến: chưa ước tính được"
    wait_none: str = "Bạn sẽ được mời ngay"
    qr_caption: str = Field(default="Quét mã QR để xem hướng dẫn thủ tục",
                            description="under a QR code that opens the service's guide or the queue page")
    qr_caption_live: str = Field(
        default="Quét mã QR để theo dõi lượt gọi và xem hướng dẫn thủ tục",
        description="under a QR code that opens the ticket's live page (`qr_url` with `{token}`) when `wifi_name` "
                    "is empty (a custom `qr_caption` is printed instead while this and the next are the defaults)")
    qr_caption_live_wifi: str = Field(
        default="Kết nối Wi-Fi «{wifi}» rồi quét mã QR để theo dõi lượt gọi",
        description="the same with `wifi_name` set: the live page is on the centre's LAN, which a phone on mobile "
                    "data does not reach")
    footer: str = "Vui lòng chờ gọi số và đến quầy khi được mời. Xin trân trọng cảm ơn!"

    @field_validator("*")
    @classmethod
    def _printable(cls, v: str, info: ValidationInfo) -> str:
        if len(v) > TEXT_MAX:
            raise ValueError(both(f"tối đa {TEXT_MAX} ký tự, đây là {len(v)}", f"at most {TEXT_MAX} characters, not {len(v)}"))
        fields = TEXT_FIELDS.get(info.field_name)
        return one_line(v) if fields is None else check_template(v, fields)  # the others print as they are

    def all_strings(self) -> list[str]:
        """The texts as they could be printed (placeholders filled with typical values)."""
        fill = {"datetime": "Thứ Năm, 31/12/2026 23:59", "n": 128, "minutes": 45, "low": 120, "high": 185,
                "wifi": "TTPVHCC-Tuong-Linh"}
        return [v.format(**fill) if k in TEXT_FIELDS else v for k, v in self.model_dump().items()]


TEXTS_VI = TicketTexts()
TEXTS_EN = TicketTexts(
    title="QUEUE NUMBER",
    priority="PRIORITY",
    reprint="(REPRINT)",
    test_title="TEST PRINT — PRINTER OK",
    issued_at="Issued: {datetime}",
    people_ahead="People ahead of you: {n}",
    wait_estimate="Estimated wait: about {minutes} min",
    wait_range="Estimated wait: about {low}–{high} min",
    wait_under="Estimated wait: under {high} min",
    wait_over="Estimated wait: more than {low} min",
    wait_unknown="Estimated wait: not known yet",
    wait_none="You will be called shortly",
    qr_caption="Scan the QR code for the procedure guide",
    qr_caption_live="Scan the QR code to follow your turn and read the procedure guide",
    qr_caption_live_wifi="Join the Wi-Fi «{wifi}», then scan the QR code to follow your turn",
    footer="Please wait for your number to be called. Thank you!",
)


class TicketLayout(Strict):
    """How a ticket looks: width, language, texts, QR code."""

    width_px: Literal[384, 576] = Field(default=576, description="printer dots per line: 576 = 80 mm, 384 = 58 mm")
    lang: Lang = Field(default="vi", description="language of the printed texts and names")
    texts: TicketTexts | None = Field(default=None, description="override the built-in texts for `lang`")
    qr_url: str = Field(
        default="",
        max_length=300,
        description="QR target, fields {site} {service} {number} {day} {id} {token} ({token}: the live page's "
                    "signed link, needs link_secret_file); empty: the service's guide_url, else the site's queue_url",
    )
    wifi_name: str = Field(default="", max_length=40, description="the hall's Wi-Fi name: printed under a live page's QR "
                           "(texts.qr_caption_live_wifi); `{wifi}` in the captions")
    show_qr: bool = Field(default=True, description="print the QR code")

    @field_validator("qr_url")
    @classmethod
    def _qr_template(cls, v: str) -> str:
        return check_template(v, QR_FIELDS)

    @field_validator("wifi_name")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return one_line(v)
    threshold: int = Field(default=160, ge=1, le=254, description="grey level at or above which a dot stays white")
    margin_px: int = Field(default=12, ge=0, le=64, description="white margin left and right, dots")

    def resolved_texts(self) -> TicketTexts:
        """The texts to print: the override, or the built-in set for ``lang``."""
        if self.texts is not None:
            return self.texts
        return TEXTS_EN if self.lang == "en" else TEXTS_VI


PrinterBackend = Literal["usb", "serial", "network", "file", "fake", "sim"]
SerialFlow = Literal["dtr-dsr", "rts-cts", "xon-xoff", "none"]
# what thermal printers offer on their self-test page (DIP switches or a utility set them)
SERIAL_BAUDS = (2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)

# profiles that know their width and can cut; never mutate a profile (escpos shares them)
DEFAULT_PROFILES = {576: "TM-T20II", 384: "RP-F10-58mm"}
# their widths, so the usual case needs no python-escpos capability database (~6 MiB loaded)
KNOWN_PROFILE_WIDTHS = {"TM-T20II": 576, "RP-F10-58mm": 432}


def profile_width(name: str) -> int | None:
    """Dots per line of a python-escpos profile (``None``: it does not say); raises for an unknown name."""
    if name in KNOWN_PROFILE_WIDTHS:
        return KNOWN_PROFILE_WIDTHS[name]
    from escpos.capabilities import get_profile  # only for a profile we do not know

    width = get_profile(name).profile_data["media"]["width"].get("pixels", "Unknown")
    return width if isinstance(width, int) else None


class PrinterConfig(Strict):
    """Which printer, and how to reach it."""

    backend: PrinterBackend = Field(default="sim", description="usb, serial, network, file, fake or sim")
    profile: str = Field(default="", description="python-escpos profile; empty: a known one for the width")
    usb_vendor: int = Field(default=0, ge=0, le=0xFFFF, description="USB vendor id (e.g. 0x0416), `usb` backend")
    usb_product: int = Field(default=0, ge=0, le=0xFFFF, description="USB product id, `usb` backend")
    serial_device: str = Field(default="/dev/ttyUSB0", description="`serial` backend device")
    serial_baud: int = Field(default=115200, description="`serial` backend speed, as the printer's self-test page says "
                             f"(one of {', '.join(map(str, SERIAL_BAUDS))})")
    serial_flow: SerialFlow = Field(default="dtr-dsr", description="`serial` backend flow control, as the self-test page "
                                    "says: dtr-dsr, rts-cts, xon-xoff or none")
    host: str = Field(default="", description="`network` backend printer address")
    port: int = Field(default=9100, ge=1, le=65535, description="`network` backend TCP port")
    device: str = Field(default="/dev/usb/lp0", description="character device for the `file` backend")
    sim_dir: Path = Field(default=Path("sim-tickets"), description="where the sim backend writes .bin + .png")
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="device write/read timeout")
    cut: Literal["full", "part"] = Field(default="full", description="cut after each ticket")
    paper_low_alert: bool = Field(default=True, description="raise the paper-low alert when the sensor says so")
    white_bands: Literal["feed", "raster"] = Field(
        default="feed", description="white bands as paper feed (ESC J, one dot per unit after GS P 0 203); "
                                    "raster: as 1-byte-wide white rasters, for a printer whose feed unit is not a dot")
    raster_max_lines: int = Field(default=255, ge=1, le=2303, description="tallest raster block the printer takes, dot lines")
    native_qr: bool = Field(default=False, description="the printer draws the QR code itself (GS ( k, model 2); "
                                                       "false: the QR is sent as raster")
    center_bands: bool = Field(default=False, description="crop bands on both sides and centre them (ESC a 1): only "
                                                          "for printers that centre raster images")
    nv_graphics: bool = Field(default=False, description="keep the blocks every ticket shares (header, service names, "
                                                         "footer, …) in the printer's NV graphics memory (GS ( L fn 67/69) "
                                                         "and print them by key code; written only when they change")
    half_res_number: bool = Field(default=False, description="draw the big number in 2x2-dot cells and send it as "
                                                             "quadruple rasters (GS v 0 m = 3): a quarter of its bytes; "
                                                             "same size and place, coarser edges (0.25 mm steps)")
    nv_digits: bool = Field(default=False, description="print the big number from its glyphs kept in the printer's "
                                                       "NV graphics memory, placed side by side in page mode (ESC L, "
                                                       "GS ( L fn 69, FF); needs nv_graphics; the paper is the same")

    @field_validator("serial_baud")
    @classmethod
    def _standard_baud(cls, v: int) -> int:
        if v not in SERIAL_BAUDS:
            # a dropped or doubled digit (11520, 96000) looks like its speed; else the nearest one
            typo = difflib.get_close_matches(str(v), [str(b) for b in SERIAL_BAUDS], n=1, cutoff=0.8)
            close = int(typo[0]) if typo else min(SERIAL_BAUDS, key=lambda b: abs(b - v))
            raise ValueError(both(f"{v} không phải tốc độ của máy in cổng nối tiếp (có phải {close}?), một trong {list(SERIAL_BAUDS)}",
                                  f"{v} is not a serial printer speed (did you mean {close}?), one of {list(SERIAL_BAUDS)}"))
        return v

    @model_validator(mode="after")
    def _backend_needs(self) -> PrinterConfig:
        if self.nv_digits and not self.nv_graphics:
            raise ValueError(both("printer.nv_digits giữ hình chữ số trong bộ nhớ NV của máy in: cần nv_graphics = true",
                                  "printer.nv_digits keeps the number's glyphs as NV graphics: it needs nv_graphics = true"))
        if self.nv_digits and self.half_res_number:
            raise ValueError(both("printer.nv_digits và half_res_number đều đổi cách gửi số: chỉ chọn một",
                                  "printer.nv_digits and half_res_number both change how the number is sent: choose one"))
        if self.backend == "usb" and not (self.usb_vendor and self.usb_product):
            raise ValueError(both("printer.backend = 'usb' cần usb_vendor và usb_product",
                                  "printer.backend = 'usb' needs usb_vendor and usb_product"))
        if self.backend == "network" and not self.host:
            raise ValueError(both("printer.backend = 'network' cần host", "printer.backend = 'network' needs host"))
        return self

    def job_options(self) -> JobOptions:
        """How tickets are encoded for this printer."""
        return JobOptions(cut=self.cut, white_bands=self.white_bands, raster_max_lines=self.raster_max_lines,
                          center_bands=self.center_bands, native_qr=self.native_qr, nv_graphics=self.nv_graphics,
                          half_res_number=self.half_res_number, nv_digits=self.nv_digits)

    def profile_for(self, width_px: int) -> str:
        """The escpos profile name to use for a ticket ``width_px`` wide."""
        return self.profile or DEFAULT_PROFILES.get(width_px, "TM-T20II")


class ButtonSpec(Strict):
    """One big service button (and the LED under it)."""

    service: str = Field(description="service id from the site")
    pin: int | str = Field(description="BCM pin of the button (pressed = pulled to ground)")
    led_pin: int | str | None = Field(default=None, description="BCM pin of the LED under the button")
    priority_group: str | None = Field(default=None, description="a dedicated priority button for this group")
    name: str = Field(default="", description="key name; default: the service id (or service-priority)")

    def key_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.service}-priority" if self.priority_group else self.service


class PriorityKeySpec(Strict):
    """A priority key pressed before a service button (within ``window_s``)."""

    pin: int | str = Field(description="BCM pin of the priority key")
    group: str = Field(default="", description="priority group id; empty: a general priority")
    led_pin: int | str | None = Field(default=None, description="BCM pin of its LED (blinks while armed)")
    name: str = Field(default="priority", description="key name (sim presses use it)")


class HardwareConfig(Strict):
    """Buttons, LEDs, buzzer of the dispenser, and timing rules."""

    pin_factory: str = Field(default="", description='"mock" for sim/tests; empty: gpiozero default (lgpio on a Pi 5)')
    buttons: tuple[ButtonSpec, ...] = Field(default=(), description="the service buttons, see below")
    priority_keys: tuple[PriorityKeySpec, ...] = Field(default=(), description="priority keys, see below")
    priority_window_s: float = Field(default=8.0, gt=0, le=60, description="a service press this soon after the priority key is a priority ticket")
    tech_key_pin: int | str | None = Field(default=None, description="hidden key: long press reprints the last ticket")
    test_key_pin: int | str | None = Field(default=None, description="hidden key: long press prints a test ticket")
    tech_hold_s: float = Field(default=2.0, gt=0.1, le=30, description="hold time of the technician and test keys")
    status_led_pin: int | str | None = Field(default=None, description="a status LED for the whole dispenser")
    buzzer_pin: int | str | None = Field(default=None, description="an active buzzer")
    debounce_s: float = Field(default=0.03, ge=0, le=0.5, description="edges closer than this are contact bounce")
    double_press_s: float = Field(default=0.3, ge=0, le=5, description="a press this soon after the previous one is dropped")
    max_presses: int = Field(default=4, ge=1, le=100, description="accepted presses per button per `per_s`")
    per_s: float = Field(default=20.0, gt=0, le=3600, description="the rate window, seconds")
    max_pending: int = Field(default=3, ge=1, le=20, description="tickets waiting to print per button")
    hub_wait_s: float = Field(default=10.0, ge=0, le=120, description="a press waits this long for an offline hub")

    @model_validator(mode="after")
    def _pins_unique(self) -> HardwareConfig:
        errors = hardware_clash_errors(self.model_dump())
        if errors:
            raise ValueError("\n".join(errors))  # a line each: format_validation_errors
        return self


def hardware_clash_errors(hw: Mapping[str, Any]) -> list[str]:
    """Pins and key names used twice in a ``[hardware]`` table — parsed or raw, so the check
    also runs next to other errors of the same file (every error is listed at once)."""
    def entries(key: str) -> list[Mapping[str, Any]]:
        v = hw.get(key) or ()
        return [e for e in v if isinstance(e, Mapping)] if isinstance(v, list | tuple) else []

    pins: list[str] = []
    for e in entries("buttons") + entries("priority_keys"):
        pins += [str(e[k]) for k in ("pin", "led_pin") if e.get(k) is not None]
    pins += [str(hw[k]) for k in ("tech_key_pin", "test_key_pin", "status_led_pin", "buzzer_pin") if hw.get(k) is not None]
    errors = []
    dup = sorted({p for p in pins if pins.count(p) > 1})
    if dup:
        errors.append(f"hardware: {both(f'chân dùng hai lần: {dup}', f'pins used twice: {dup}')}")

    def button_name(e: Mapping[str, Any]) -> str:
        return str(e.get("name") or (f"{e.get('service')}-priority" if e.get("priority_group") else e.get("service")))

    names = [button_name(e) for e in entries("buttons")] + [str(e.get("name") or "priority") for e in entries("priority_keys")]
    dupn = sorted({n for n in names if names.count(n) > 1})
    if dupn:
        errors.append(f"hardware: {both(f'tên phím dùng hai lần: {dupn}', f'key names used twice: {dupn}')}")
    return errors


def hardware_site_errors(hw: Mapping[str, Any], services: set[str], groups: set[str]) -> list[str]:
    """Buttons and priority keys that name a service or group the site does not have."""
    errors: list[str] = []
    buttons, keys = hw.get("buttons") or (), hw.get("priority_keys") or ()
    for i, b in enumerate(buttons if isinstance(buttons, list | tuple) else ()):
        if not isinstance(b, Mapping):
            continue
        if "service" in b and b["service"] not in services:
            close = difflib.get_close_matches(str(b["service"]), sorted(services), n=1, cutoff=0.6)
            vi_hint, en_hint = (f" (có phải {close[0]!r}?)", f" (did you mean {close[0]!r}?)") if close else ("", "")
            shown = repr(b["service"])
            errors.append(f"hardware.buttons.{i}.service: " + both(
                f"{shown} không phải lĩnh vực của trung tâm{vi_hint} {sorted(services)}",
                f"{shown} is not a service of the site{en_hint} {sorted(services)}"))
        if b.get("priority_group") is not None and b["priority_group"] not in groups:
            group = repr(b["priority_group"])
            errors.append(f"hardware.buttons.{i}.priority_group: {both(f'nhóm ưu tiên không có {group}', f'unknown group {group}')}")
    for i, k in enumerate(keys if isinstance(keys, list | tuple) else ()):
        if not isinstance(k, Mapping):
            continue
        if k.get("group") and k["group"] not in groups:
            group = repr(k["group"])
            errors.append(f"hardware.priority_keys.{i}.group: {both(f'nhóm ưu tiên không có {group}', f'unknown group {group}')}")
        if not k.get("group") and not groups:
            errors.append(f"hardware.priority_keys.{i}: {both('trung tâm không có nhóm ưu tiên nào', 'the site has no priority groups')}")
    return errors


class TicketdConfig(Strict):
    """The dispenser's own sections."""

    ticket: TicketLayout = TicketLayout()
    printer: PrinterConfig = PrinterConfig()
    hardware: HardwareConfig = HardwareConfig()
