// Asks /api/sandbox/accounts/password-verdict when the form on /sandbox/accounts is sent, and
// shows the verdict without a reload (the password stays typed, to try a variation).
// The page works without it: the form posts to the page, which shows the same verdict.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("verdict-form");
  const out = document.getElementById("verdict");
  if (!form || !out) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      password: document.getElementById("verdict-password").value,
      email: document.getElementById("verdict-email").value,
    };
    let verdict;
    try {
      const response = await fetch("/api/sandbox/accounts/password-verdict", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
      verdict = await response.json();
      if (!response.ok) verdict = { ok: false, reason: "", error: verdict.error || "refused" };
    } catch (error) {
      form.submit(); // the API is out of reach: let the page answer instead
      return;
    }
    out.hidden = false;
    out.className = verdict.ok ? "notice ok" : "notice";
    out.dataset.ok = String(verdict.ok);
    out.dataset.reason = verdict.reason || "";
    out.replaceChildren();
    if (verdict.ok) {
      out.textContent = "Accepted: this password may be set.";
    } else {
      const code = document.createElement("code");
      code.textContent = verdict.reason;
      out.append("Refused (", code, "): " + verdict.error);
    }
  });
});
