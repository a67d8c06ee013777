"""The centre's procedure catalogue (thủ tục hành chính): a site-editable TOML file, checked at
load with every error listed at once, rendered as the guide pages behind the counters' QR
posters, and the posters themselves (``xephang web posters``: A4 PNG, Vietnamese, big type).

File format (``config/catalogue.example.toml``, docs/web.md)::

    [[procedures]]
    service = "ho-tich"              # a service id of the site
    name_vi = "Đăng ký khai sinh"
    name_en = "Birth registration"   # optional
    documents = ["Tờ khai …", "Giấy chứng sinh …"]
    fee = "Miễn lệ phí"
    fee_free = "Đăng ký đúng hạn; …"  # optional
    processing_time = "Trong ngày"
    portal_url = "https://dichvucong.gov.vn/…"  # optional, https only
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xephang.settings import SettingsError, format_validation_errors, read_toml
from xephang.site import SLUG_RE, Site
from xephang.terminal import NOT_IN_A_LINE_CLASS

log = logging.getLogger(__name__)

# one line a citizen reads on the phone: no control character, C1 included, and no text-direction
# override (it would turn the rest of the line around; see xephang.terminal.one_line)
Line = Annotated[str, Field(max_length=300, pattern=f"^[^{NOT_IN_A_LINE_CLASS}]*$")]


class Procedure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    service: str = Field(pattern=SLUG_RE, max_length=40, description="the site's service id")
    name_vi: Line = Field(min_length=1)
    name_en: Line = ""
    documents: tuple[Line, ...] = ()
    fee: Line = ""
    fee_free: Line = ""
    processing_time: Line = ""
    portal_url: str = Field(default="", max_length=300, pattern=r"^(https://[^\s\"'<>]+)?$")


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(default=1, ge=1, le=1)
    procedures: tuple[Procedure, ...] = ()

    def for_service(self, sid: str) -> list[Procedure]:
        return [p for p in self.procedures if p.service == sid]


def load_catalogue(path: Path, site: Site | None = None) -> Catalogue:
    """Load and check the catalogue; raises SettingsError listing every problem."""
    data = read_toml(path, "catalogue")
    errors: list[str] = []
    cat: Catalogue | None = None
    try:
        cat = Catalogue.model_validate(data)
    except ValidationError as exc:
        errors += format_validation_errors(exc, Catalogue)
    if site is not None:  # unknown services, checked on whatever is readable
        ids = set(site.service_ids())
        for i, p in enumerate(data.get("procedures") or []):
            sid = p.get("service") if isinstance(p, dict) else None
            if isinstance(sid, str) and sid not in ids:
                errors.append(f"procedures.{i}.service: {sid!r} is not a service of the site ({', '.join(sorted(ids))})")
    if errors or cat is None:  # no readable catalogue without an error saying why
        raise SettingsError(errors, str(path))
    return cat


def load_catalogue_or_none(path: Path | None, site: Site | None = None) -> Catalogue | None:
    if path is None:
        return None
    try:
        return load_catalogue(path, site)
    except SettingsError as exc:
        log.error("%s", exc)
        return None


e = html.escape


def index_html(cat: Catalogue | None, site: Site, lang: str, counter: int | None = None) -> str:
    """The services' guides; with ``counter``, only the services that counter calls today (the site the
    hub runs: a roster change moves them), under the counter's name (its poster's QR opens this)."""
    from webd.pages import t

    c = next((x for x in site.counters if x.number == counter), None) if counter is not None else None
    services = [s for s in site.services if c is None or s.id in c.services]
    items = "".join(f'<li><a href="/guide/{e(s.id)}">{e(s.label(lang))}</a>'
                    f' ({len(cat.for_service(s.id)) if cat else 0})</li>' for s in services)
    note = "" if cat else f'<p class="banner warn">{e(t("no_catalogue", lang))}</p>'
    if counter is not None and c is None:  # it silently showed every service
        note = f'<p class="banner warn">{e(t("no_such_counter", lang, n=counter))}</p>' + note
    title = f'{c.label(lang)} — {t("guides", lang)}' if c is not None else t("guides", lang)
    return f'<h1>{e(title)}</h1>{note}<ul class="menu">{items}</ul>'


def service_html(cat: Catalogue | None, site: Site, sid: str, lang: str) -> str | None:
    from webd.pages import t

    try:
        svc = site.service(sid)
    except KeyError:
        return None
    out = [f'<div class="guide"><h1>{e(t("guide_for", lang, s=svc.label(lang)))}</h1>']
    procs = cat.for_service(sid) if cat else []
    if not procs:  # "the centre has no catalogue" was untrue when it has one without this service
        out.append(f'<p class="banner warn">{e(t("no_catalogue" if cat is None else "no_procedures", lang))}</p>')
    for p in procs:
        name = p.name_en if lang == "en" and p.name_en else p.name_vi
        out.append(f"<h2>{e(name)}</h2><dl>")
        if p.documents:
            out.append(f'<dt>{e(t("documents", lang))}</dt><dd><ul>'
                       + "".join(f"<li>{e(d)}</li>" for d in p.documents) + "</ul></dd>")
        for key, val in (("fee", p.fee), ("fee_free", p.fee_free), ("time", p.processing_time)):
            if val:
                out.append(f"<dt>{e(t(key, lang))}</dt><dd>{e(val)}</dd>")
        out.append("</dl>")
        if p.portal_url:
            out.append(f'<p><a href="{e(p.portal_url)}" rel="noreferrer">{e(t("portal", lang))}</a></p>')
    out.append("</div>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------- posters

A4_PX = (2480, 3508)  # 300 dpi


def poster(title: str, subtitle: str, url: str, footer: str) -> Any:
    """An A4 poster (300 dpi PNG image): big title, the QR code, the link written out."""
    import qrcode
    from PIL import Image, ImageDraw, ImageFont

    from xephang.fonts import font_path

    img = Image.new("L", A4_PX, 255)
    d = ImageDraw.Draw(img)
    w, _ = A4_PX

    def centred(text: str, y: int, size: int, weight: str = "bold") -> int:
        font = ImageFont.truetype(str(font_path(weight)), size)
        from xephang.fonts import wrap_text

        for line in wrap_text(text, font, w - 300, balance=True):
            tw = font.getlength(line)
            d.text(((w - tw) / 2, y), line, font=font, fill=0)
            y += int(size * 1.25)
        return y

    y = centred(title, 220, 150)
    y = centred(subtitle, y + 40, 90, "regular")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2, box_size=1)
    qr.add_data(url)
    qr.make(fit=True)
    q = qr.make_image(fill_color="black", back_color="white").get_image().convert("L")
    side = 1500
    q = q.resize((side, side), Image.NEAREST)
    img.paste(q, ((w - side) // 2, y + 80))
    y = y + 80 + side + 60
    y = centred(url, y, 60, "regular")
    centred(footer, y + 60, 70, "semibold")
    return img


def write_posters(site: Site, public_url: str, out_dir: Path, wifi: str = "") -> list[Path]:
    """One poster per service (its guide) and per counter (the guides of its services)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    foot = f"Kết nối Wi-Fi «{wifi}» rồi quét mã QR" if wifi else "Quét mã QR bằng điện thoại"
    written: list[Path] = []
    for s in site.services:
        p = out_dir / f"poster-linh-vuc-{s.id}.png"
        poster("HƯỚNG DẪN THỦ TỤC", s.name_vi, f"{public_url}/guide/{s.id}", foot).save(p, dpi=(300, 300))
        written.append(p)
    for c in site.counters:
        p = out_dir / f"poster-quay-{c.number}.png"
        names = ", ".join(site.service(x).name_vi for x in c.services)
        # the counter's page lists every service it calls (the first one's guide alone before), and
        # follows the roster: the poster stays right when the head moves a service to another counter
        poster(c.label("vi").upper(), f"Hướng dẫn thủ tục: {names}", f"{public_url}/guide?counter={c.number}",
               foot).save(p, dpi=(300, 300))
        written.append(p)
    return written
