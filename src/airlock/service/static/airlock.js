// Airlock's review page: the only script. It follows a running apply or rollback job by polling
// the page's own job route (/ui/jobs/ID: the API takes bearer tokens, never the page's cookie)
// every half second, shows its progress, and reloads the page when the job is done (the server
// then shows the result and the plan's new state). Everything else works without it.
"use strict";
(function () {
  function follow(panel) {
    var url = panel.getAttribute("data-job-poll");
    var bar = panel.querySelector("progress");
    var text = panel.querySelector("[data-job-text]");
    var failures = 0;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (job) {
          failures = 0;
          if (job.steps_total) {
            bar.max = job.steps_total;
            bar.value = job.steps_done;
          }
          if (job.state === "succeeded" || job.state === "failed") {
            text.textContent = "Finished; loading the result…";
            window.location.reload();
            return;
          }
          if (job.state === "queued") {
            text.textContent = "Waiting for another job on this folder to finish…";
          } else if (!job.steps_total) {
            text.textContent = "Starting…";
          } else {
            text.textContent = "Working: step " + job.steps_done + " of " + job.steps_total + "…";
          }
          window.setTimeout(tick, 500);
        })
        .catch(function () {
          failures += 1;
          text.textContent = "Lost contact with the service; retrying…";
          window.setTimeout(tick, Math.min(5000, 500 * failures));
        });
    }
    window.setTimeout(tick, 500);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var panels = document.querySelectorAll("[data-job-poll]");
    for (var i = 0; i < panels.length; i++) follow(panels[i]);
  });
})();
