"""ticketd against a real mosquitto and the real hub (in a thread): the whole path, for real."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest

from ticketd.main import TicketDaemon, TicketdSettings
from ticketd.printer import FakePrinter
from xephang.bus import Bus
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import SimPress, Topics
from xephang.settings import BrokerSettings

hubd_testing = pytest.importorskip("hubd.testing")

pytestmark = pytest.mark.broker
SITE = "tuong-linh"
T = Topics(SITE)


def run_until(daemon, cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        daemon.step(timeout=0.02)
        if cond():
            return
    raise AssertionError("condition not reached")


@pytest.fixture
def clock():
    return ManualClock(start=datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp())


def test_press_to_printed_ticket_and_paper_out_void_with_real_broker_and_hub(mosquitto, tmp_path, site_file, clock):
    (tmp_path / "hub").mkdir()
    (tmp_path / "tk").mkdir()
    printer = FakePrinter()
    settings = TicketdSettings(site=SITE, node="dispenser-1", site_file=site_file, state_dir=tmp_path / "tk",
                               sim=True, broker=BrokerSettings(port=mosquitto.port))
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file, clock=clock):
        tk = TicketDaemon(settings, clock=clock, printer=printer)
        tk.start()
        tech = Bus(site=SITE, node="tech-1", role="tech", broker=BrokerSettings(port=mosquitto.port))
        seen: list[tuple[str, bytes]] = []
        tech.subscribe(f"{T.root}/node/dispenser-1/alert/+", lambda m: seen.append((m.topic, m.payload)))
        tech.start()
        try:
            assert tech.wait_connected(10)
            run_until(tk, lambda: tk.hub_online)
            tech.publish(T.sim_press("dispenser-1"), SimPress(button="ho-tich"))
            run_until(tk, lambda: len(printer.jobs) == 1)
            assert tk.printed_tickets[0].number == 1001

            printer.fail_next_job("paper-out")
            tech.publish(T.sim_press("dispenser-1"), SimPress(button="dat-dai"))
            run_until(tk, lambda: tk.core.stats.failed == 1)
            run_until(tk, lambda: tk.bus.pending_requests() == 0)  # the void got its reply
            tech.process(timeout=0.5)
            assert any(t.endswith("/alert/paper-out") and p for t, p in seen)
            assert json.loads([p for t, p in seen if p][-1])["severity"] == "critical"
        finally:
            tk.teardown()
            tk.bus.stop()
            tech.stop()


def test_presses_during_a_slow_print_are_all_answered_in_order(mosquitto, tmp_path, site_file, clock):
    """The real owner loop in its thread, gpiozero callbacks from this thread, a 0.5 s print."""
    (tmp_path / "hub").mkdir()
    (tmp_path / "tk").mkdir()
    printer = FakePrinter(send_delay_s=0.5)
    settings = TicketdSettings(site=SITE, node="dispenser-1", site_file=site_file, state_dir=tmp_path / "tk",
                               sim=True, broker=BrokerSettings(port=mosquitto.port))
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file, clock=clock):
        tk = TicketDaemon(settings, clock=clock, printer=printer)
        loop = threading.Thread(target=tk.run, name="ticketd", daemon=True)
        loop.start()
        try:
            assert tk.bus.connected.wait(10)
            end = time.monotonic() + 10
            while not tk.hub_online and time.monotonic() < end:
                time.sleep(0.01)
            keys = tk.board.keys
            keys["ho-tich"].pin.drive_low()
            assert printer.printing.wait(10)  # ticket 1 is on the printer now
            keys["ho-tich"].pin.drive_high()
            keys["dat-dai"].pin.drive_low()
            keys["dat-dai"].pin.drive_high()
            time.sleep(0.35)  # a person's second press of the same button, beyond the double-press guard
            keys["ho-tich"].pin.drive_low()
            keys["ho-tich"].pin.drive_high()
            assert printer.wait_jobs(3, timeout=15)
            assert not printer.wait_jobs(4, timeout=1.0)  # and nothing doubled
            assert printer.labels == ["1001", "2001", "1002"]
        finally:
            tk.stop_event.set()
            loop.join(10)


def test_console_script_checks_its_settings(tmp_path, site_file):
    cfg = tmp_path / "ticketd.toml"
    cfg.write_text(f'site_file = "{site_file}"\nsim = true\n[printer]\nbackend = "sim"\nbogus = 1\n')
    r = subprocess.run([sys.executable, "-m", "ticketd.main", "--config", str(cfg), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78 and "printer.bogus" in r.stderr
    cfg.write_text(f'site_file = "{site_file}"\n[printer]\nprofile = "POS-5890"\n'
                   '[hardware]\nbuttons = [{ service = "ho-tic", pin = 5 }]\n')
    r = subprocess.run([sys.executable, "-m", "ticketd.main", "--config", str(cfg), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78  # both mistakes reported at once
    assert "'ho-tic' is not a service" in r.stderr and "384 px wide" in r.stderr
    # a field error elsewhere does not hide the cross-checks: pins used twice, a service the
    # site lacks and a bad number are all listed in one run
    cfg.write_text(f'site_file = "{site_file}"\nrequest_attempts = 99\n'
                   '[hardware]\nbuttons = [{ service = "ho-tic", pin = 5 }, { service = "dat-dai", pin = 5 }]\n'
                   'buzzer_pin = "x"\ntech_hold_s = 0\n')
    r = subprocess.run([sys.executable, "-m", "ticketd.main", "--config", str(cfg), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78
    for want in ("request_attempts", "hardware.tech_hold_s", "pins used twice: ['5']",
                 "'ho-tic' is not a service of the site (did you mean 'ho-tich'?)"):
        assert want in r.stderr, (want, r.stderr)
    assert r.stderr.count("pins used twice") == 1
    cfg.write_text(f'site_file = "{site_file}"\nsim = true\n[printer]\nbackend = "sim"\n')
    r = subprocess.run([sys.executable, "-m", "ticketd.main", "--config", str(cfg), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
