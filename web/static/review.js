// Keeps the review queue current: polls /api/review every 2 s and, when the
// set of waiting requests changes, swaps in the server-drawn queue. A queue
// with a reason half typed is left alone until the reviewer moves on.
"use strict";
(function () {
  const queue = document.getElementById("queue");
  if (!queue) return;
  const ids = () => Array.from(queue.querySelectorAll("[data-id]")).map((e) => e.dataset.id).sort().join(",");
  async function tick() {
    try {
      const res = await gatehouse.fetch("/api/review");
      if (!res.ok) return;
      const body = await res.json();
      const now = body.requests.map((r) => r.id).sort().join(",");
      if (now === ids()) return;
      const active = document.activeElement;
      if (active && queue.contains(active) && active.value) return;
      const html = await gatehouse.fetch("/review?fragment=1");
      if (!html.ok) return;
      queue.innerHTML = await html.text();
      gatehouse.render(queue);
    } catch (e) {
      // The bastion restarting is not the reviewer's problem; try again.
    }
  }
  setInterval(tick, 2000);
})();
