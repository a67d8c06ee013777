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
  var pending = null;
  function typing() {
    var a = document.activeElement;
    return kind === "console" && a && live.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT");
  }
  function swap(html) {
    // the officer typing a reason keeps the field: the new picture waits until they leave it
    if (typing()) { pending = html; return; }
    pending = null;
    live.innerHTML = html;
  }
  live.addEventListener("focusout", function () {
    setTimeout(function () { if (pending !== null && !typing()) swap(pending); }, 0);
  });
  function onData(ev) {
    var d;
    seen = Date.now();
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    swap(d.html);
    live.setAttribute("data-updated", String(Date.now()));
    if (kind === "ticket") {
      if (d.state === "called" && (state !== "called" || (recalls >= 0 && d.recalls !== recalls))) beep();
      state = d.state; recalls = d.recalls;
      var sound = document.getElementById("sound");  // no call to come (pages.FINAL_STATES): nothing to sound for
      if (sound) sound.hidden = (sound.getAttribute("data-final") || "").split(" ").indexOf(d.state) >= 0;
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

// The officer's console: one click, one action. Each click gets its own request id; a retry of
// that click (the network blinked) sends the same id, so the hub acts once; while a click is on
// its way every other click is ignored (a double click does nothing twice).
(function () {
  var live = document.getElementById("live");
  var msg = document.getElementById("act-msg");
  if (!live || live.getAttribute("data-kind") !== "console" || !window.fetch || !window.FormData) return;
  var busy = false;
  function rid() {
    var b = new Uint8Array(16), s = "";
    window.crypto.getRandomValues(b);
    for (var i = 0; i < b.length; i++) s += ("0" + b[i].toString(16)).slice(-2);
    return s;
  }
  function say(text, ok) {
    if (!msg) return;
    msg.textContent = text;
    msg.className = "act-msg " + (ok ? "ok" : "warn");
  }
  function send(form, body, tries) {
    // getAttribute: the form has an input named "action", which hides the form's own .action
    return fetch(form.getAttribute("action"), {method: "POST", body: body, credentials: "same-origin",
                                               headers: {"x-requested-with": "xephang"}})
      .then(function (r) {
        // an answer from the server, even a refusal, is final: only a lost connection is retried
        return r.json().catch(function () { return {ok: false, text: "HTTP " + r.status}; });
      }, function (err) {
        if (tries > 1) return new Promise(function (ok) { setTimeout(ok, 1000); })
          .then(function () { return send(form, body, tries - 1); });
        throw err;
      });
  }
  // the browser's own "Please fill out this field" is in the browser's language: the page's words instead
  live.addEventListener("invalid", function (ev) {
    var f = ev.target;
    if (f.getAttribute && f.getAttribute("data-missing") && f.validity.valueMissing) {
      f.setCustomValidity(f.getAttribute("data-missing"));
    }
  }, true);
  live.addEventListener("input", function (ev) {
    if (ev.target.setCustomValidity) ev.target.setCustomValidity("");
  });
  live.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("act")) return;
    ev.preventDefault();
    if (busy) return;
    busy = true;
    live.setAttribute("data-busy", "1");
    var body = new URLSearchParams(new FormData(form));
    body.set("rid", rid());
    say("…", true);
    send(form, body, 3).then(function (d) { say(d.text, d.ok); })
      .catch(function () { say(msg ? msg.getAttribute("data-unreachable") : "?", false); })
      .then(function () { busy = false; live.removeAttribute("data-busy"); });
  });
})();
