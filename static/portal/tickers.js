// Live 24 h tickers (the markets page's rows, the trade page's strip): every element with
// data-ticker-symbol follows that ticker.<SYMBOL> stream (a full 24 h ticker at most once a
// second after a trade) and redraws its last price, change, range, volume and trade count.
// Tickers are full states, so a missed one needs no resync.
(function () {
  "use strict";
  var live = window.TradeportLive;
  if (!live) return;
  var plain = live.plain;
  document.querySelectorAll("[data-ticker-symbol]").forEach(function (row) {
    function cell(name) { return row.querySelector("[data-cell=" + name + "]"); }
    live.subscribe("ticker." + row.dataset.tickerSymbol, {
      message: function (m) {
        var t = m.data;
        cell("last").textContent = t.last === null ? "—" : plain(t.last);
        var change = cell("change");
        change.textContent = t.change_percent === null ? "—" : t.change_percent + " %";
        change.className = t.change_percent === null ? "" : (parseFloat(t.change_percent) >= 0 ? "bid" : "ask");
        cell("range").textContent = t.high === null ? "—" : plain(t.high) + " / " + plain(t.low);
        var volume = cell("volume");
        volume.textContent = parseFloat(t.quote_volume).toFixed(2) + " " + volume.dataset.quote;
        cell("trades").textContent = String(t.trade_count);
        row.dataset.tickerSeq = String(m.seq);
      }
    });
  });
})();
