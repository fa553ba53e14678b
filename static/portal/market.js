// The trade page's order book (a depth ladder: size and cumulative size per level, and the
// spread) and trade tape, pushed by the WebSocket streams book.<SYMBOL>@100ms (a snapshot,
// then merged diffs) and trades.<SYMBOL>. While the socket is down they are fetched from the
// REST API every second instead. Its own orders, fills, balances and positions are rendered by
// the server: a message on the private streams fetches the page again and swaps those panels.
(function () {
  "use strict";
  var panel = document.getElementById("market-panel");
  if (!panel || !window.TradeportLive) return;
  var live = window.TradeportLive;
  var api = panel.dataset.api;
  var symbol = panel.dataset.symbol;
  var levels = panel.querySelector("[data-testid=book-levels]");
  var tape = panel.querySelector("[data-testid=tape]");
  var DEPTH = 10, TAPE = 15, POLL_MS = 1000;
  var book = { bids: {}, asks: {} };

  var plain = live.plain;
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
  function best(side) {
    var prices = Object.keys(book[side]).sort(function (a, b) { return side === "bids" ? b - a : a - b; });
    return prices.slice(0, DEPTH).map(function (p) { return [p, book[side][p]]; });
  }
  function ladder(side, className) {
    var total = 0;
    return best(side).map(function (level) {
      total += parseFloat(level[1]);
      return row(className, [plain(level[0]), plain(level[1]), plain(total.toFixed(8))]);
    });
  }
  function drawBook() {
    var asks = ladder("asks", "ask").reverse(), bids = ladder("bids", "bid");
    var bestAsk = best("asks")[0], bestBid = best("bids")[0];
    var spread = bestAsk && bestBid ? "spread " + plain((bestAsk[0] - bestBid[0]).toFixed(8)) : "—";
    levels.replaceChildren.apply(levels, asks.concat([row("spread", [spread])], bids));
  }
  function setLevels(side, pairs, replace) {
    if (replace) book[side] = {};
    pairs.forEach(function (level) {
      if (parseFloat(level[1]) === 0) delete book[side][level[0]];
      else book[side][level[0]] = level[1];
    });
  }
  function tradeRow(t) {
    return row(t.aggressor_side === "BUY" ? "bid" : "ask",
      [new Date(t.executed_at).toISOString().substring(11, 19), plain(t.price), plain(t.quantity)]);
  }
  function drawTape(trades) {
    var rows = trades.map(tradeRow);
    if (!rows.length) rows.push(row("", ["No trades yet."]));
    tape.replaceChildren.apply(tape, rows);
  }
  function loadTape() { return get("trades?limit=" + TAPE).then(drawTape); }
  function loadBook() {
    return get("depth?limit=100").then(function (depth) {
      var pairs = function (side) { return depth[side].map(function (l) { return [l.price, l.quantity]; }); };
      setLevels("bids", pairs("bids"), true);
      setLevels("asks", pairs("asks"), true);
      drawBook();
    });
  }

  live.subscribe("book." + symbol + "@100ms", {
    message: function (m) {
      setLevels("bids", m.data.bids, m.data.snapshot);
      setLevels("asks", m.data.asks, m.data.snapshot);
      drawBook();
      panel.dataset.bookSeq = String(m.seq);
    },
    resync: function (reason) {  // a new subscription starts with a fresh snapshot
      if (reason !== "gap") return;  // after a reconnect the subscription is new already
      live.unsubscribe("book." + symbol + "@100ms");
      live.subscribe("book." + symbol + "@100ms", this);
    }
  });
  live.subscribe("trades." + symbol, {
    message: function (m) {
      if (tape.querySelector("td[colspan]")) tape.replaceChildren();
      m.data.slice().reverse().forEach(function (t) { tape.insertBefore(tradeRow(t), tape.firstChild); });
      while (tape.children.length > TAPE) tape.removeChild(tape.lastChild);
    },
    resync: function () { loadTape().catch(function () {}); }
  });
  setInterval(function () {
    if (!live.isOpen()) Promise.all([loadBook(), loadTape()]).catch(function () {});
  }, POLL_MS);

  // The account's own panels, swapped from a fresh render of this page.
  var account = panel.dataset.account;
  if (!account) return;
  var pending = null;
  function refreshOwn() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      fetch(location.href, { headers: { Accept: "text/html" } }).then(function (r) { return r.text(); }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["open-orders", "balances", "positions", "fills"].forEach(function (id) {
          var now = document.querySelector("[data-testid=" + id + "] tbody");
          var next = fresh.querySelector("[data-testid=" + id + "] tbody");
          if (now && next) now.replaceWith(next);
        });
      }).catch(function () {});
    }, 150);
  }
  ["orders", "fills", "balances"].forEach(function (stream) {
    live.subscribe(stream + "." + account, { account: +account, message: refreshOwn, resync: refreshOwn });
  });
})();
