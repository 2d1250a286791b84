/* Northstar admin, reports: while a large report runs as a background job, poll its status and move
   the progress bar; reload the page (which then shows the result) when it is done. Without this
   script the page refreshes itself every few seconds (<noscript> meta refresh) and offers a link. */
(function () {
  "use strict";
  var box = document.querySelector("[data-report-job]");
  if (!box) return;
  var url = box.getAttribute("data-status-url");
  var bar = box.querySelector("[data-job-progress]");
  var state = box.querySelector("[data-job-state]");
  var delay = 700;
  function show(job) {
    var pct = Math.max(0, Math.min(100, Math.round((job.progress || 0) * 100)));
    if (bar) { bar.value = pct; bar.textContent = pct + "%"; }
    if (state) state.textContent = (job.state.charAt(0).toUpperCase() + job.state.slice(1)) + " · " + pct + "%";
  }
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (job) {
        show(job);
        if (job.state === "finished" || job.state === "failed" || job.state === "missing") {
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.3, 4000);
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        if (state) state.textContent = "Lost contact with the server; retrying…";
        window.setTimeout(poll, 4000);
      });
  }
  window.setTimeout(poll, delay);
})();
