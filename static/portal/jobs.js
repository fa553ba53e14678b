// A job's progress bar (ADR 0007): follows the `jobs` stream while the socket is open, and polls
// GET /api/v1/jobs/<id> once a second while it is not. TradeportJobs.follow(element, done) reads
// the job id from element.dataset.job, updates its <progress> and cells, and calls done(job) once
// the job has finished (succeeded, failed or canceled).
(function () {
  "use strict";
  var FINISHED = { succeeded: true, failed: true, canceled: true };

  function render(element, job) {
    var bar = element.querySelector("progress");
    if (bar) bar.value = job.progress;
    var percent = element.querySelector("[data-cell=progress]");
    if (percent) percent.textContent = job.progress + " %";
    var message = element.querySelector("[data-cell=message]");
    if (message) message.textContent = job.error || job.message || job.status;
    element.dataset.status = job.status;
  }

  function follow(element, done) {
    var id = element.dataset.job;
    var finished = false;
    var timer = null;
    function update(job) {
      if (finished || job.id !== id) return;
      render(element, job);
      if (FINISHED[job.status]) {
        finished = true;
        if (timer) clearInterval(timer);
        done(job);
      }
    }
    function poll() {
      if (window.TradeportLive && window.TradeportLive.isOpen()) return;
      fetch("/api/v1/jobs/" + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) { if (job) update(job); })
        .catch(function () {});
    }
    if (window.TradeportLive) {
      window.TradeportLive.subscribe("jobs", {
        message: function (message) { update(message.data); },
        resync: function () { window.TradeportLive.isOpen() ? fetchOnce() : poll(); },
      });
    }
    function fetchOnce() {
      fetch("/api/v1/jobs/" + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) { if (job) update(job); })
        .catch(function () {});
    }
    timer = setInterval(poll, 1000);
    fetchOnce();
  }

  window.TradeportJobs = { follow: follow };
})();
