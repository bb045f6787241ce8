// Streams a running session into a read-only xterm.js terminal. Chunks come
// as server-sent events, base64 encoded because terminal output is bytes.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("term");
  const status = document.getElementById("live-status");
  if (!el || !window.Terminal) return;
  const term = new Terminal({ disableStdin: true, cursorBlink: false, convertEol: false, rows: 24, cols: 100, scrollback: 5000 });
  term.open(el);
  window.gatehouseTerm = term;
  const es = new EventSource(el.dataset.src);
  es.onopen = () => { status.textContent = "● live"; };
  es.onmessage = (ev) => {
    const bin = atob(ev.data);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    term.write(bytes);
  };
  es.addEventListener("end", () => {
    es.close();
    status.textContent = "session ended";
    status.className = "badge st-ended";
    term.write("\r\n\x1b[2m[session ended]\x1b[0m\r\n");
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      status.textContent = "disconnected";
      status.className = "badge st-terminated";
    }
  };
});
