// Strategies pages: a running backtest's progress bar (the `jobs` stream, or polling while the
// socket is down) reloads the page once the job finishes; a strategy's page follows the
// `strategies` stream and updates its status, position and P&L as the runner moves it.
(function () {
  "use strict";
  var progress = document.querySelector("[data-testid=job-progress]");
  if (progress && window.TradeportJobs) {
    window.TradeportJobs.follow(progress, function () { location.reload(); });
  }
  var status = document.querySelector("[data-testid=strategy-status]");
  if (status && window.TradeportLive) {
    var id = Number(status.dataset.strategy);
    window.TradeportLive.subscribe("strategies", {
      message: function (message) {
        var strategy = message.data;
        if (strategy.id !== id) return;
        ["position", "average_price", "realized_pnl", "fees_paid"].forEach(function (name) {
          var cell = status.querySelector("[data-cell=" + name + "]");
          if (cell) cell.textContent = strategy[name];
        });
        var cell = status.querySelector("[data-cell=status]");
        if (cell) { cell.textContent = strategy.status; cell.className = "status-" + strategy.status; }
      },
      resync: function () {}
    });
  }
})();
