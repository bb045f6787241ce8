// Gatehouse UI helpers: local times, countdowns, copy buttons and a fetch
// wrapper that carries the CSRF token. Loaded on every page.
"use strict";
(function () {
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

  // left renders a positive duration in seconds as "3h 12m" / "4m 05s".
  function left(s) {
    s = Math.max(0, Math.round(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m " + String(sec).padStart(2, "0") + "s";
    return sec + "s";
  }

  function ago(seconds) {
    const a = Math.abs(seconds);
    if (a < 60) return rtf.format(Math.round(seconds), "second");
    if (a < 3600) return rtf.format(Math.round(seconds / 60), "minute");
    if (a < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
    return rtf.format(Math.round(seconds / 86400), "day");
  }

  function render(root) {
    const now = Date.now();
    root.querySelectorAll("time[datetime]").forEach((el) => {
      const t = new Date(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      el.title = t.toLocaleString() + " (" + Intl.DateTimeFormat().resolvedOptions().timeZone + ")";
      const diff = (t - now) / 1000;
      if (el.hasAttribute("data-countdown")) {
        el.textContent = diff > 0 ? "in " + left(diff) + " (" + t.toLocaleTimeString() + ")" : "now (" + t.toLocaleTimeString() + ")";
      } else {
        el.textContent = t.toLocaleString() + " · " + ago(diff);
      }
    });
    root.querySelectorAll("[data-span-from]").forEach((el) => {
      const from = new Date(el.getAttribute("data-span-from"));
      const to = el.hasAttribute("data-span-to") ? new Date(el.getAttribute("data-span-to")) : new Date(now);
      el.textContent = left((to - from) / 1000) + (el.hasAttribute("data-span-to") ? "" : " so far");
    });
  }

  // gatehouse.fetch is fetch with the session's CSRF token on every request.
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  window.gatehouse = {
    csrf: csrf,
    render: render,
    fetch: (url, opts) => {
      opts = opts || {};
      opts.headers = Object.assign({ "X-CSRF-Token": csrf }, opts.headers || {});
      opts.credentials = "same-origin";
      return fetch(url, opts);
    },
  };

  document.addEventListener("DOMContentLoaded", () => {
    render(document);
    setInterval(() => render(document), 1000);
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("button.copy");
      if (!b || !navigator.clipboard) return;
      navigator.clipboard.writeText(b.dataset.copy).then(() => {
        b.textContent = "Copied";
        setTimeout(() => (b.textContent = "Copy"), 1500);
      });
    });
  });
})();
