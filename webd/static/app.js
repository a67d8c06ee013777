// xephang webd: live pages. The server renders every fragment; this file only swaps them in,
// reconnects, and rings when a ticket is called. No framework, no build step.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var conn = document.getElementById("conn");
  var kind = live.getAttribute("data-kind");
  var url = live.getAttribute("data-stream");
  var first = live.querySelector("[data-state]");
  var state = first ? first.getAttribute("data-state") : "";
  var recalls = -1, audio = null, es = null, timer = null, seen = Date.now();
  var hb = parseFloat(live.getAttribute("data-hb") || "15") * 1000;

  function setConn(ok) {
    if (!conn) return;
    conn.textContent = conn.getAttribute(ok ? "data-live" : "data-off");
    conn.className = ok ? "conn ok" : "conn off";
    // while we cannot hear the server, what is shown may be old: say so, never keep a "called"
    live.className = ok ? "" : "stale";
  }
  function beep() {
    if (navigator.vibrate) navigator.vibrate([400, 200, 400, 200, 400]);
    if (!audio) return;
    [0, 0.35, 0.7].forEach(function (t) {
      var o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; o.connect(g); g.connect(audio.destination);
      g.gain.setValueAtTime(0.4, audio.currentTime + t);
      g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + t + 0.3);
      o.start(audio.currentTime + t); o.stop(audio.currentTime + t + 0.3);
    });
  }
  function onData(ev) {
    var d;
    seen = Date.now();
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    live.innerHTML = d.html;
    live.setAttribute("data-updated", String(Date.now()));
    if (kind === "ticket") {
      if (d.state === "called" && (state !== "called" || (recalls >= 0 && d.recalls !== recalls))) beep();
      state = d.state; recalls = d.recalls;
    }
  }
  function connect() {
    if (es) es.close();
    es = new EventSource(url);
    seen = Date.now();
    es.onopen = function () { seen = Date.now(); setConn(true); };
    es.onmessage = onData;
    es.addEventListener("ping", function () { seen = Date.now(); setConn(true); });
    es.onerror = function () {
      setConn(false);
      if (es.readyState === 2) { clearTimeout(timer); timer = setTimeout(connect, 2000); }
    };
  }
  // a phone that slept may hold a dead connection: open a fresh one when the page is seen again
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") connect();
  });
  window.addEventListener("online", connect);
  // Wi-Fi that vanished without a word leaves a silent connection: no ping for 2.5 beats, reconnect
  setInterval(function () {
    if (Date.now() - seen > 2.5 * hb) { setConn(false); connect(); }
  }, 1000);
  var btn = document.getElementById("sound");
  if (btn) btn.addEventListener("click", function () {
    try { audio = audio || new (window.AudioContext || window.webkitAudioContext)(); audio.resume(); } catch (e) {}
    btn.textContent = btn.getAttribute("data-on"); btn.disabled = true;
  });
  connect();
})();
