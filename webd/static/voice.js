// xephang webd: the head's recording page. Captures the microphone as plain PCM (Web Audio),
// or decodes a chosen recording in the browser, and uploads one mono 16-bit WAV per take; the
// server trims, checks and keeps it (or says why not). Without this file the page still works:
// each clip's form uploads a WAV file.
"use strict";
(function () {
  var list = document.getElementById("voice-clips");
  if (!list) return;
  var csrf = list.getAttribute("data-csrf");
  var progress = document.getElementById("voice-progress");
  var installBtn = document.getElementById("voice-install-btn");
  var canMic = !!(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  var AC = window.AudioContext || window.webkitAudioContext;
  if (!canMic) document.getElementById("voice-nomic").hidden = false;

  function wav(chunks, rate) {
    var n = 0, i, j, off = 44;
    chunks.forEach(function (c) { n += c.length; });
    var buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);
    function str(o, s) { for (var k = 0; k < s.length; k++) v.setUint8(o + k, s.charCodeAt(k)); }
    str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
    v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
    v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, 2 * n, true);
    for (i = 0; i < chunks.length; i++) {
      for (j = 0; j < chunks[i].length; j++, off += 2) {
        var x = Math.max(-1, Math.min(1, chunks[i][j]));
        v.setInt16(off, x < 0 ? x * 32768 : x * 32767, true);
      }
    }
    return new Blob([buf], { type: "audio/wav" });
  }

  function show(li, text, ok) {
    var st = li.querySelector(".status");
    st.textContent = text;
    st.className = "status " + (ok === true ? "ok" : ok === false ? "bad" : "");
  }

  function upload(li, blob) {
    var clip = li.getAttribute("data-clip");
    var st = li.querySelector(".status");
    show(li, st.getAttribute("data-sending"));
    return fetch("/head/voice/take?clip=" + encodeURIComponent(clip), {
      method: "POST", body: blob, credentials: "same-origin",
      headers: { "content-type": "audio/wav", "x-csrf": csrf, "x-requested-with": "xephang" }
    }).then(function (r) { return r.json(); }).then(function (d) {
      show(li, d.text, d.ok);
      li.setAttribute("data-result", d.ok ? "kept" : "refused:" + (d.problem || "error"));
      if (d.ok) {
        li.classList.add("done");
        li.querySelector(".play").innerHTML = "";
        var a = document.createElement("audio");
        a.controls = true; a.src = d.url; a.preload = "none";
        li.querySelector(".play").appendChild(a);
        var b = li.querySelector("button.rec");
        b.textContent = b.getAttribute("data-redo");
      }
      if (progress) progress.textContent = d.progress;
      if (installBtn) installBtn.disabled = d.done !== d.total;
    }).catch(function (e) { show(li, String(e), false); li.setAttribute("data-result", "error"); });
  }

  var active = null;
  function record(li, btn) {
    if (active) { active.stop(); return; }
    var seconds = parseFloat(li.getAttribute("data-seconds") || "3");
    navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false,
                                                   autoGainControl: false, channelCount: 1 } })
      .then(function (stream) {
        var ctx = new AC(), src = ctx.createMediaStreamSource(stream);
        var node = ctx.createScriptProcessor(4096, 1, 1), chunks = [], timer = null, done = false;
        node.onaudioprocess = function (ev) { chunks.push(new Float32Array(ev.inputBuffer.getChannelData(0))); };
        src.connect(node); node.connect(ctx.destination);
        function stop() {
          if (done) return;
          done = true; active = null; clearTimeout(timer);
          src.disconnect(); node.disconnect();
          stream.getTracks().forEach(function (t) { t.stop(); });
          btn.textContent = btn.getAttribute("data-rec");
          var rate = ctx.sampleRate;
          ctx.close();
          upload(li, wav(chunks, rate));
        }
        active = { stop: stop };
        btn.textContent = btn.getAttribute("data-stop");
        show(li, li.querySelector(".status").getAttribute("data-recording"));
        li.setAttribute("data-result", "recording");
        timer = setTimeout(stop, seconds * 1000);
      })
      .catch(function (e) {
        show(li, String(e && e.name ? e.name + ": " + e.message : e), false);
        li.setAttribute("data-result", "error");
      });
  }

  function fromFile(li, file) {
    // any format the browser can play (a phone's m4a, a webm, a WAV) → mono PCM → WAV
    file.arrayBuffer().then(function (data) {
      var ctx = new AC();
      return ctx.decodeAudioData(data).then(function (audio) {
        var ch = [], n = audio.length, mono = new Float32Array(n), c, i;
        for (c = 0; c < audio.numberOfChannels; c++) ch.push(audio.getChannelData(c));
        for (i = 0; i < n; i++) {
          var s = 0;
          for (c = 0; c < ch.length; c++) s += ch[c][i];
          mono[i] = s / ch.length;
        }
        ctx.close();
        return upload(li, wav([mono], audio.sampleRate));
      });
    }).catch(function () { li.querySelector("form.upload").submit(); });  // let the server say what it is
  }

  Array.prototype.forEach.call(list.querySelectorAll("li.clip"), function (li) {
    var btn = li.querySelector("button.rec");
    if (canMic) {
      btn.hidden = false;
      btn.addEventListener("click", function () { record(li, btn); });
    }
    var input = li.querySelector("input[type=file]");
    li.querySelector("button.send").hidden = true;
    input.addEventListener("change", function () { if (input.files.length) fromFile(li, input.files[0]); });
  });
  list.setAttribute("data-ready", "1");
})();
