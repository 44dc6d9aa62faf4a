// Polls the job shown on /sandbox/jobs, so its status and attempts change before your eyes.
// The page works without it: reload to see the same numbers.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const job = document.getElementById("job");
  if (!job) return;
  const show = (id, value) => { document.getElementById(id).textContent = String(value); };
  const timer = setInterval(async () => {
    try {
      const response = await fetch(`/api/sandbox/jobs/${job.dataset.id}`, { cache: "no-store" });
      if (!response.ok) return;
      const state = await response.json();
      show("job-status", state.status);
      show("job-attempts", state.attempts);
      show("job-completed", state.completed_runs);
      job.dataset.status = state.status;
      if (state.status === "succeeded" || state.status === "failed") clearInterval(timer);
    } catch (error) {
      // the app is restarting: the next tick tries again
    }
  }, 500);
});
