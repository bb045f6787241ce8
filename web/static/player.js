// Mounts asciinema-player on #player, fed from the permission-checked
// recording endpoint.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) return;
  window.gatehousePlayer = AsciinemaPlayer.create(el.dataset.src, el, {
    idleTimeLimit: 2,
    fit: "width",
    preload: true,
    controls: true,
  });
});
