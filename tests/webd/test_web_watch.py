"""webd's `web-watch` connection (web.watch_password_file, xephang/reader.py) on a broker with the
site's accounts and ACL, as `xephang broker-config` makes them: it reads the boards' statuses and
alerts (and the hall speaker's config state) again after the broker restarts, and when the broker
refuses it the main connection reads them instead, said once (the hub's inbox has the same two tests in tests/tools/test_hub_lane.py)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webd.webharness import SITE, wait_for
from webd.config import WebConfig, WebSettings
from webd.main import WebDaemon
from xephang.contract import Alert, ConfigState, NodeStatus, Topics, new_request_id
from xephang.settings import BrokerSettings
from xephang.ticketlink import write_secret
from xephang_ops.brokerconf import BrokerFiles
from xephang_ops.mosquitto import Mosquitto, free_port
from xephang_ops.tools import BrokerTarget, ToolClient

pytestmark = [pytest.mark.broker, pytest.mark.slow]
T = Topics(SITE)


@contextlib.contextmanager
def _webd(tmp_path: Path, site_file: Path, broker: Mosquitto, files: BrokerFiles,
          watch_pw: Path) -> Iterator[WebDaemon]:
    """webd under its own account `web`, its watcher under `web-watch` with ``watch_pw``; no hub
    (what the boards say of themselves comes without one)."""
    (tmp_path / "web").mkdir()
    key = tmp_path / "ticket-link.key"
    write_secret(key)
    settings = WebSettings(site=SITE, node="web", site_file=site_file, state_dir=tmp_path / "web",
                           broker=BrokerSettings(port=broker.port, password_file=files.passwords_dir / "web.pw",
                                                 reconnect_max_s=1),
                           web=WebConfig(listen="127.0.0.1", port=free_port(), link_secret_file=key,
                                         accounts_file=tmp_path / "web" / "accounts.json", watch_password_file=watch_pw))
    web = WebDaemon(settings, serve=False)
    t = threading.Thread(target=web.run, name="webd", daemon=True)
    t.start()
    try:
        assert web.bus.wait_connected(10)
        yield web
    finally:
        web.stop_event.set()
        t.join(10)


def _say(broker: Mosquitto, files: BrokerFiles, node: str, session: int, *, online: bool = True,
         alert: str | None = None) -> None:
    """``node``'s own password writes its status (and an alert), retained, as the board does."""
    with ToolClient(BrokerTarget(site=SITE, port=broker.tech_port or broker.port, username=node,
                                 password=files.passwords[node])).connect() as c:
        st = NodeStatus(node=node, online=online, session=session)
        assert c.publish(T.status(node), st.to_json(), retain=True) == 0
        if alert is not None:
            a = Alert(node=node, id=alert, severity="warning", message_vi="Cảnh báo thử", message_en="Test alert")
            assert c.publish(T.alert(node, alert), a.to_json(), retain=True) == 0


def _speaker_runs(broker: Mosquitto, files: BrokerFiles, pack: str) -> None:
    """The hall speaker's own password writes its config state (the pack it runs), retained."""
    with ToolClient(BrokerTarget(site=SITE, port=broker.tech_port or broker.port, username="announcer-hall",
                                 password=files.passwords["announcer-hall"])).connect() as c:
        st = ConfigState(node="announcer-hall", rev=1, config={"voice_pack": pack})
        assert c.publish(T.config_state("announcer-hall"), st.to_json(), retain=True) == 0


def _pack(web: WebDaemon) -> str | None:
    return (web.web.announcer_config or {}).get("voice_pack")


def test_web_watch_reads_the_boards_again_after_a_broker_restart(tmp_path, site_file, secured):
    """The broker restarts (an update, a power cut): webd's watcher logs in again and subscribes, and
    a board's status and alert written after the restart reach webd's pages; the main connection
    never took over (no fallback: the watcher was not refused)."""
    broker, files = secured
    with _webd(tmp_path, site_file, broker, files, files.passwords_dir / "web-watch.pw") as web:
        w = web.watcher
        assert w is not None
        wait_for(lambda: w.connected, 10, "web-watch subscribed")
        _say(broker, files, "counter-1", 1)
        wait_for(lambda: web.model.nodes.get("counter-1") == (True, 1), 10, "counter 1's status via web-watch")
        received = w.stats.received
        assert received >= 1
        broker.restart()  # persistence false: the retained statuses are gone with it
        wait_for(lambda: w.stats.connects >= 2 and w.connected, 20, "web-watch back after the restart")
        _say(broker, files, "counter-1", 2, online=False)
        _say(broker, files, "display-hall", 7, alert="display-missing")
        _speaker_runs(broker, files, "giong-trung-tam")
        wait_for(lambda: web.model.nodes.get("counter-1") == (False, 2)
                 and web.model.nodes.get("display-hall") == (True, 7)
                 and ("display-hall", "display-missing") in web.model.alerts
                 and _pack(web) == "giong-trung-tam", 10, "the statuses and the speaker's pack after the restart")
        assert w.stats.received >= received + 4 and not w.gave_up and w.stats.refused == 0
        health = web.health_details()["watch"]
        assert health["connected"] and not health["gave_up"]


def test_a_refused_web_watch_gives_up_once_and_the_main_connection_reads_the_boards(tmp_path, site_file,
                                                                                    secured, caplog):
    """A centre that sets `watch_password_file` before installing the new broker config (or with a
    wrong password): the broker refuses `web-watch`; webd says so once, stops trying, and its main
    connection reads the boards' statuses and alerts, so the head's dashboard still shows them."""
    broker, files = secured
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    with caplog.at_level(logging.WARNING), _webd(tmp_path, site_file, broker, files, wrong) as web:
        w = web.watcher
        assert w is not None
        wait_for(lambda: "main connection reads the boards' statuses" in caplog.text, 15, "the fallback")
        _say(broker, files, "counter-2", 3, alert="counter-config")
        _speaker_runs(broker, files, "giong-trung-tam")
        wait_for(lambda: web.model.nodes.get("counter-2") == (True, 3)
                 and ("counter-2", "counter-config") in web.model.alerts
                 and _pack(web) == "giong-trung-tam", 10, "counter 2 and the speaker read on the main connection")
        assert w.gave_up and w.stats.connects == 0 and w.stats.received == 0
        assert w.stats.refused == 1  # said once: no login every reconnect_max_s
        assert caplog.text.count("main connection reads the boards' statuses") == 1
        assert web.health_details()["watch"]["gave_up"] is True


def test_an_alert_cleared_while_web_watch_did_not_hear_it_goes_at_the_next_reading(tmp_path, site_file, secured):
    """web-watch is a clean session: a retained clear the broker dropped on its way (its queue full
    behind a board's flood) is never sent again, and the dashboard showed the alert for good. When
    it reads the retained alerts again (``Reader.refresh``, after a flood), an alert nobody holds
    any more is dropped, one still held stays. Here the watcher does not hear the clear because it
    is unsubscribed meanwhile, as the broker's drop would have it."""
    broker, files = secured
    with _webd(tmp_path, site_file, broker, files, files.passwords_dir / "web-watch.pw") as web:
        w = web.watcher
        assert w is not None
        wait_for(lambda: w.connected and web._reread_from is None, 10, "web-watch subscribed, first reading done")
        _say(broker, files, "dispenser-1", 1, alert="paper-out")
        _say(broker, files, "counter-2", 1, alert="counter-config")
        wait_for(lambda: {("dispenser-1", "paper-out"), ("counter-2", "counter-config")} <= set(web.model.alerts), 10,
                 "both alerts shown")
        w._client.unsubscribe(w.filters)  # the broker's drop, without a flood
        with ToolClient(BrokerTarget(site=SITE, port=broker.tech_port or broker.port, username="dispenser-1",
                                     password=files.passwords["dispenser-1"])).connect() as c:
            assert c.publish(T.alert("dispenser-1", "paper-out"), b"", retain=True) in (0, 16)  # 16: nobody reads it
        assert ("dispenser-1", "paper-out") in web.model.alerts  # not heard
        before = web.rereads
        web._flooded, web._paced_changed = True, 0.0  # as after a flood that ended long ago
        wait_for(lambda: web.rereads > before and web._reread_from is None, 15, "read again")
        assert ("dispenser-1", "paper-out") not in web.model.alerts
        assert ("counter-2", "counter-config") in web.model.alerts


def test_a_broker_that_refuses_some_of_web_watchs_filters_has_webd_read_those_itself():
    """A broker that refuses some subscriptions (an ACL from before web-watch read the speaker's config
    state; mosquitto 2.0 grants them and sends nothing, other brokers say 0x87): the reader keeps the
    rest and hands the refused filters back (webd reads them on its main connection); all refused
    is a give-up, as before."""
    from types import SimpleNamespace

    from xephang.reader import Reader

    handed: list[list[str]] = []
    gave_up: list[bool] = []
    filters = [T.all_status(), T.all_alerts(), T.config_state("announcer-hall"), T.config_ack("announcer-hall")]
    r = Reader(BrokerSettings(), T, lambda m: None, password_file=None, username="web-watch", filters=filters,
               persistent=False, keep_retained=True, refused_filters=handed.append,
               given_up=lambda: gave_up.append(True))
    ok, no = SimpleNamespace(is_failure=False), SimpleNamespace(is_failure=True)
    client = SimpleNamespace(disconnect=lambda: None)
    r._on_subscribe(client, None, 1, [ok, ok, no, no], None)
    assert handed == [filters[2:]] and r.connected and not r.gave_up and not gave_up
    r._on_subscribe(client, None, 2, [no, no, no, no], None)
    assert r.gave_up and gave_up == [True]


def test_the_heads_pushes_expire_with_their_wait(tmp_path, site_file, secured):
    """A roster change or a voice pack the page said went unanswered must not be applied when the hub
    or the hall speaker comes back later (an offline node's session keeps what was sent to it): each
    push carries an MQTT 5 expiry of the page's wait, as `xephang config push` does."""
    import queue

    from webd.main import CONFIG_WAIT_S, VOICE_WAIT_S
    from xephang.bus import client_id_for, paho_client

    broker, files = secured
    got: queue.Queue[tuple[str, int | None]] = queue.Queue()
    readers = []
    for node in ("hub", "announcer-hall"):  # each reads its own config/{node}/set/+ with its password
        c = paho_client(BrokerSettings(port=broker.port, username=node, password_file=files.passwords_dir / f"{node}.pw"),
                        client_id_for(node))
        c.on_message = lambda _c, _u, m: got.put((m.topic, getattr(m.properties, "MessageExpiryInterval", None)))
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a, ev=subscribed: ev.set()
        c.on_connect = lambda cl, *_a, n=node: cl.subscribe(T.config_set(n) + "/+", qos=1)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        readers.append(c)
        assert subscribed.wait(10)
    try:
        with _webd(tmp_path, site_file, broker, files, files.passwords_dir / "web-watch.pw") as web:
            web.ask_from_web("site", {"request_id": new_request_id(), "by": "lan", "base_rev": 0, "counters": []}, lambda r: None)
            web.ask_from_web("voice", {"request_id": new_request_id(), "by": "lan", "config": {"voice_pack_url": None,
                                                                                      "voice_pack_sha256": None}},
                             lambda r: None)
            seen = dict(got.get(timeout=10) for _ in range(2))
    finally:
        for c in readers:
            c.loop_stop()
            c.disconnect()
    # the broker hands on what is left of the interval: a whole second may have gone by
    assert CONFIG_WAIT_S - 1 <= seen[T.config_set("hub", "web")] <= CONFIG_WAIT_S, seen
    assert VOICE_WAIT_S - 1 <= seen[T.config_set("announcer-hall", "web")] <= VOICE_WAIT_S, seen
