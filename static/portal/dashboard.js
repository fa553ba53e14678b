// Dashboard controls: switching the account or a preset period reloads the page at once;
// "Custom" shows the start and end dates, sent with the Apply button.
(function () {
  "use strict";
  var form = document.querySelector("[data-testid='dashboard-controls']");
  if (!form) return;
  var period = form.querySelector("[data-period-select]");
  var customFields = form.querySelectorAll("[data-custom-period]");
  var apply = form.querySelector("[data-testid='period-apply']");
  function showCustom() {
    var custom = period.value === "custom";
    customFields.forEach(function (field) { field.hidden = !custom; });
    apply.hidden = !custom;
  }
  form.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { form.submit(); });
  });
  period.addEventListener("change", function () {
    showCustom();
    if (period.value !== "custom") form.submit();
  });
  showCustom();
})();
