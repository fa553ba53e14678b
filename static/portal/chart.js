// The trade page's price chart: candles and volume from the REST API, optional overlays
// (SMA, EMA, Bollinger bands) and a lower pane (RSI or MACD) from the indicators endpoint,
// drawn with TradingView's Lightweight Charts (static/vendor/lightweight-charts). The current
// candle comes live from the candles.<SYMBOL>.<interval> stream (TradeportLive); while the
// socket is down the last candles are fetched again every few seconds.
(function () {
  "use strict";
  var box = document.getElementById("price-chart");
  if (!box || !window.LightweightCharts) return;
  var LWC = window.LightweightCharts;
  var api = box.dataset.api;
  var status = document.querySelector("[data-testid=chart-status]");
  var state = { interval: box.dataset.interval, overlays: {}, pane: "", ticks: 0, generation: 0 };
  var REFRESH_MS = 5000;
  var LIMIT = 500;
  var COLORS = ["#2962ff", "#ff6d00", "#8e24aa", "#00897b", "#6d4c41"];

  var chart = LWC.createChart(box, {
    autoSize: true,
    // The library's own logo injects a <style> element, which the portal's CSP refuses; the
    // template links TradingView under the chart instead, as the licence asks.
    layout: { attributionLogo: false, background: { color: "transparent" }, textColor: "#c9d1d9" },
    grid: { vertLines: { color: "#30363d" }, horzLines: { color: "#30363d" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { scaleMargins: { top: 0.1, bottom: 0.25 } }
  });
  var candles = chart.addSeries(LWC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
    wickUpColor: "#26a69a", wickDownColor: "#ef5350"
  });
  var volume = chart.addSeries(LWC.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "volume" });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  var indicatorSeries = [];

  function seconds(iso) { return Math.floor(Date.parse(iso) / 1000); }
  function bar(c) {
    return { time: seconds(c.open_time), open: +c.open, high: +c.high, low: +c.low, close: +c.close };
  }
  function volumeBar(c) {
    return { time: seconds(c.open_time), value: +c.volume, color: +c.close >= +c.open ? "#26a69a80" : "#ef535080" };
  }
  function get(path, params) {
    var query = new URLSearchParams(params);
    return fetch(api + path + "?" + query.toString(), { headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.detail || r.statusText);
        return body;
      });
    });
  }
  function say(text) { if (status) status.textContent = text; }

  function loadCandles() {
    var interval = state.interval;
    return get("candles", { interval: interval, limit: LIMIT }).then(function (rows) {
      if (interval !== state.interval) return;  // the user switched meanwhile
      candles.setData(rows.map(bar));
      volume.setData(rows.map(volumeBar));
      chart.timeScale().fitContent();
      box.dataset.candles = String(rows.length);
      say(rows.length + " candles of " + state.interval + (rows.length ? "" : " — nothing traded yet"));
    });
  }

  function refreshLast() {
    var interval = state.interval;
    return get("candles", { interval: interval, limit: 2 }).then(function (rows) {
      if (interval !== state.interval) return;
      rows.forEach(function (c) { candles.update(bar(c)); volume.update(volumeBar(c)); });
    });
  }

  function wanted() {
    var names = Object.keys(state.overlays).filter(function (k) { return state.overlays[k]; });
    if (state.pane) names.push(state.pane);
    return names;
  }

  function clearIndicators() {
    indicatorSeries.forEach(function (s) { chart.removeSeries(s); });
    indicatorSeries = [];
  }

  function loadIndicators() {
    var generation = ++state.generation;  // a later request supersedes this one
    var names = wanted();
    if (!names.length) { clearIndicators(); return Promise.resolve(); }
    var params = new URLSearchParams({ interval: state.interval, limit: LIMIT });
    names.forEach(function (n) { params.append("indicator", n); });
    return get("indicators", params).then(function (body) {
      if (generation !== state.generation) return;
      clearIndicators();
      var times = body.open_times.map(seconds);
      var color = 0;
      body.indicators.forEach(function (item) {
        var pane = item.key === state.pane ? 1 : 0;
        Object.keys(item.outputs).forEach(function (output) {
          var values = item.outputs[output];
          var kind = output === "histogram" ? LWC.HistogramSeries : LWC.LineSeries;
          var series = chart.addSeries(kind, {
            color: COLORS[color++ % COLORS.length], lineWidth: 1, priceLineVisible: false,
            lastValueVisible: false, title: item.key + (output === "value" ? "" : " " + output)
          }, pane);
          series.setData(times.map(function (t, i) {
            return values[i] === null ? { time: t } : { time: t, value: values[i] };
          }));
          indicatorSeries.push(series);
        });
      });
    });
  }

  function reload() {
    return loadCandles().then(loadIndicators).catch(function (error) { say("Chart: " + error.message); });
  }

  var live = window.TradeportLive;
  var symbol = api.split("/").filter(Boolean).pop();
  function follow(interval) {
    if (!live) return;
    live.subscribe("candles." + symbol + "." + interval, {
      message: function (m) {
        if (interval !== state.interval) return;
        candles.update(bar(m.data));
        volume.update(volumeBar(m.data));
      },
      resync: function () { refreshLast().catch(function () {}); }
    });
  }

  document.querySelectorAll("[data-interval]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (live) live.unsubscribe("candles." + symbol + "." + state.interval);
      state.interval = button.dataset.interval;
      follow(state.interval);
      document.querySelectorAll("[data-interval]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === button));
      });
      reload();
    });
  });
  document.querySelectorAll("[data-overlay]").forEach(function (input) {
    input.addEventListener("change", function () {
      state.overlays[input.dataset.overlay] = input.checked;
      loadIndicators();
    });
  });
  var paneSelect = document.querySelector("[data-pane]");
  if (paneSelect) {
    paneSelect.addEventListener("change", function () { state.pane = paneSelect.value; loadIndicators(); });
  }

  reload();
  follow(state.interval);
  setInterval(function () {
    state.ticks += 1;
    if (!live || !live.isOpen()) refreshLast().catch(function () {});
    if (state.ticks % 6 === 0 && wanted().length) loadIndicators().catch(function () {});
  }, REFRESH_MS);
})();
