// Reports page: every unfinished job's progress bar follows the `jobs` stream; when one finishes
// the page reloads, so its download link (signed for this user) appears.
(function () {
  "use strict";
  document.querySelectorAll("[data-testid=job-progress]").forEach(function (element) {
    if (window.TradeportJobs) window.TradeportJobs.follow(element, function () { location.reload(); });
  });
  var cadence = document.getElementById("id_schedule-cadence");
  function showCadenceFields() {
    var value = cadence.value;
    var show = { "schedule-hour": value !== "cron", "schedule-minute": value !== "cron",
                 "schedule-weekday": value === "weekly", "schedule-cron": value === "cron" };
    Object.keys(show).forEach(function (name) {
      var input = document.getElementById("id_" + name);
      if (input) input.closest(".field").hidden = !show[name];
    });
  }
  if (cadence) {
    cadence.addEventListener("change", showCadenceFields);
    showCadenceFields();
  }
})();
