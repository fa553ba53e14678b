// Order ticket: show only the fields the chosen order type uses, and flag prices and
// quantities that are off the instrument's tick / lot before the form is sent.
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  var form = document.getElementById("order-ticket");
  if (!form) return;
  var needs = {
    LIMIT: ["price", "quantity", "time_in_force"],
    MARKET: ["quantity", "quote_quantity", "time_in_force"],
    LIMIT_MAKER: ["price", "quantity"],
    STOP_LOSS: ["quantity", "stop_price"],
    STOP_LOSS_LIMIT: ["price", "quantity", "stop_price", "time_in_force"],
    TAKE_PROFIT: ["quantity", "stop_price"],
    TAKE_PROFIT_LIMIT: ["price", "quantity", "stop_price", "time_in_force"]
  };
  var optional = ["price", "quantity", "quote_quantity", "stop_price", "time_in_force"];
  function fieldBox(name) {
    var input = form.elements[name];
    return input ? input.closest(".field") : null;
  }
  function showFields() {
    var used = needs[form.elements.type.value] || optional;
    optional.forEach(function (name) {
      var box = fieldBox(name);
      if (box) box.hidden = used.indexOf(name) === -1;
    });
  }
  function decimals(text) {
    var dot = text.indexOf(".");
    return dot === -1 ? 0 : text.length - dot - 1;
  }
  function isMultiple(value, step) {
    if (!value) return true;
    var scale = Math.pow(10, Math.max(decimals(value), decimals(step)));
    return Math.round(parseFloat(value) * scale) % Math.round(parseFloat(step) * scale) === 0;
  }
  function check(name, step, label) {
    var input = form.elements[name];
    if (!input) return;
    input.setCustomValidity(isMultiple(input.value.trim(), step) ? "" : label + " must be a multiple of " + step);
  }
  function validate() {
    check("price", form.dataset.tick, "Price");
    check("stop_price", form.dataset.tick, "Stop price");
    check("quantity", form.dataset.lot, "Quantity");
  }
  form.elements.type.addEventListener("change", showFields);
  form.addEventListener("input", validate);
  form.addEventListener("submit", function (event) {
    validate();
    if (!form.reportValidity()) event.preventDefault();
  });
  showFields();
})();
