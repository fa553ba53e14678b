// The trade page's order book and trade tape, fetched again every second from the REST API
// (depth and trades) and redrawn in place. The WebSocket streams (ADR 0006) will push them.
(function () {
  "use strict";
  var panel = document.getElementById("market-panel");
  if (!panel) return;
  var api = panel.dataset.api;
  var levels = panel.querySelector("[data-testid=book-levels]");
  var tape = panel.querySelector("[data-testid=tape]");
  var REFRESH_MS = 1000;

  function plain(text) {  // "64000.12000000" → "64000.12", as the server renders amounts
    return text.indexOf(".") === -1 ? text : text.replace(/0+$/, "").replace(/\.$/, "");
  }
  function row(className, cells) {
    var tr = document.createElement("tr");
    if (className) tr.className = className;
    cells.forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text;
      if (cells.length === 1) td.colSpan = 3;
      tr.appendChild(td);
    });
    return tr;
  }
  function get(path) {
    return fetch(api + path, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(r.statusText);
      return r.json();
    });
  }
  function drawBook(depth) {
    var rows = depth.asks.slice().reverse().map(function (l) {
      return row("ask", [plain(l.price), plain(l.quantity), String(l.orders)]);
    });
    rows.push(row("spread", ["—"]));
    depth.bids.forEach(function (l) { rows.push(row("bid", [plain(l.price), plain(l.quantity), String(l.orders)])); });
    levels.replaceChildren.apply(levels, rows);
  }
  function drawTape(trades) {
    var rows = trades.map(function (t) {
      return row(t.aggressor_side === "BUY" ? "bid" : "ask",
        [new Date(t.executed_at).toISOString().substring(11, 19), plain(t.price), plain(t.quantity)]);
    });
    if (!rows.length) rows.push(row("", ["No trades yet."]));
    tape.replaceChildren.apply(tape, rows);
  }
  function refresh() {
    Promise.all([get("depth?limit=10"), get("trades?limit=15")]).then(function (answers) {
      drawBook(answers[0]);
      drawTape(answers[1]);
    }).catch(function () {});  // a missed refresh is retried a second later
  }
  setInterval(refresh, REFRESH_MS);
})();
