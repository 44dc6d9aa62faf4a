// Counts a read-back TTL down once per second, so the sandbox shows expiry happening.
// The page works without it: the server-rendered number is the truth at render time.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const ttl = document.getElementById("result-ttl");
  if (!ttl || ttl.dataset.ttl === "") return;
  let left = Number(ttl.dataset.ttl);
  const timer = setInterval(() => {
    left -= 1;
    if (left <= 0) {
      ttl.textContent = "expired";
      clearInterval(timer);
      return;
    }
    ttl.textContent = String(left);
  }, 1000);
});
