// Jobs' progress bars (ADR 0007): one subscription to the `jobs` stream feeds every bar of the
// page; while the socket is down each unfinished job is polled at GET /api/v1/jobs/<id> once a
// second. TradeportJobs.follow(element, done) reads the job id from element.dataset.job, updates
// its <progress> and cells, and calls done(job) once the job has finished (succeeded, failed or
// canceled).
(function () {
  "use strict";
  var FINISHED = { succeeded: true, failed: true, canceled: true };
  var followers = {};  // job id → { element, done }
  var subscribed = false;
  var timer = null;

  function render(element, job) {
    var bar = element.querySelector("progress");
    if (bar) bar.value = job.progress;
    var percent = element.querySelector("[data-cell=progress]");
    if (percent) percent.textContent = job.progress + " %";
    var message = element.querySelector("[data-cell=message]");
    if (message) message.textContent = job.error || job.message || job.status;
    element.dataset.status = job.status;
  }
  function update(job) {
    var follower = followers[job.id];
    if (!follower) return;
    render(follower.element, job);
    if (FINISHED[job.status]) {
      delete followers[job.id];
      follower.done(job);
    }
  }
  function fetchJob(id) {
    fetch("/api/v1/jobs/" + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) { if (job) update(job); })
      .catch(function () {});
  }
  function fetchAll() { Object.keys(followers).forEach(fetchJob); }
  function poll() {
    if (window.TradeportLive && window.TradeportLive.isOpen()) return;
    fetchAll();
  }
  function follow(element, done) {
    followers[element.dataset.job] = { element: element, done: done };
    if (!subscribed && window.TradeportLive) {
      subscribed = true;
      // After (re)subscribing, what changed meanwhile is read once from REST.
      window.TradeportLive.subscribe("jobs", { message: function (message) { update(message.data); }, resync: fetchAll });
    }
    if (!timer) timer = setInterval(poll, 1000);
    fetchJob(element.dataset.job);
  }

  window.TradeportJobs = { follow: follow };
})();
