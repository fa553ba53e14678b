// Risk page: the account switcher, and the running VaR job's progress bar; once the job
// finishes the page reloads on the run, which the server renders with its figures.
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  var method = document.getElementById("id_method");
  var paths = document.getElementById("id_paths");
  var seed = document.getElementById("id_seed");
  function showSimulationFields() {
    var monteCarlo = method && method.value === "monte_carlo";
    [paths, seed].forEach(function (input) {
      if (input) input.closest(".field").hidden = !monteCarlo;
    });
  }
  if (method) {
    method.addEventListener("change", showSimulationFields);
    showSimulationFields();
  }
  var progress = document.querySelector("[data-testid=job-progress]");
  if (progress && window.TradeportJobs) {
    window.TradeportJobs.follow(progress, function () { location.reload(); });
  }
})();
