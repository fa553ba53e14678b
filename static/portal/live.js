// One WebSocket to /ws/v1/ per page (DESIGN §8): the portal's session cookie authenticates it.
// Pages call TradeportLive.subscribe(name, handler); the handler gets each message of that
// stream in order. After a dropped socket it reconnects (1 s, 2 s, … up to 15 s), subscribes
// again and calls each handler's `resync` (the book gets a fresh snapshot by itself). A gap in
// `seq` also calls `resync`: the page then reloads that panel from REST, which is the truth.
(function () {
  "use strict";
  var handlers = {};  // subscribed name → { message: fn, resync: fn, last: {key: seq} }
  var socket = null;
  var delay = 1000;
  var listeners = [];

  function url() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/v1/";
  }
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }
  function handlerFor(message) {
    var name = message.stream;
    if (handlers[name]) return handlers[name];
    var found = null;  // orders / fills / balances subscribed per account: "orders.42"
    Object.keys(handlers).forEach(function (key) {
      if (key.split(".")[0] === name && handlers[key].account === message.account) found = handlers[key];
    });
    return found;
  }
  function onMessage(event) {
    var message = JSON.parse(event.data);
    if (message.op) return;  // subscribed, pong, error frames
    var handler = handlerFor(message);
    if (!handler) return;
    var key = message.account === undefined ? "" : String(message.account);
    var last = handler.last[key];
    var first = message.first_seq !== undefined ? message.first_seq : message.seq;
    var snapshot = message.data && message.data.snapshot === true;
    if (!snapshot && last !== undefined && message.seq <= last) return;  // already applied
    if (!snapshot && handler.checksGaps && last !== undefined && first !== last + 1) {
      handler.last[key] = message.seq;
      if (handler.resync) handler.resync("gap");
      return;
    }
    handler.last[key] = message.seq;
    handler.message(message);
  }
  function connect() {
    socket = new WebSocket(url());
    socket.addEventListener("open", function () {
      delay = 1000;
      var names = Object.keys(handlers);
      names.forEach(function (name) { handlers[name].last = {}; });
      if (names.length) send({ op: "subscribe", streams: names });
      names.forEach(function (name) { if (handlers[name].resync) handlers[name].resync("reconnect"); });
      listeners.forEach(function (fn) { fn(true); });
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function () {
      listeners.forEach(function (fn) { fn(false); });
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    });
  }
  window.TradeportLive = {
    // handler: { message: fn(message), resync: fn(reason), account: id for a private stream }
    subscribe: function (name, handler) {
      handler.last = {};
      handler.checksGaps = name.indexOf("ticker.") !== 0;  // a ticker is a full state each time
      handlers[name] = handler;
      send({ op: "subscribe", streams: [name] });
    },
    unsubscribe: function (name) {
      delete handlers[name];
      send({ op: "unsubscribe", streams: [name] });
    },
    // fn(open): told when the socket opens or drops (pages poll REST while it is down).
    onStatus: function (fn) { listeners.push(fn); },
    isOpen: function () { return !!socket && socket.readyState === WebSocket.OPEN; },
    // "64000.12000000" → "64000.12": an amount of a stream message as the server renders amounts.
    plain: function (text) {
      text = String(text);
      return text.indexOf(".") === -1 ? text : text.replace(/0+$/, "").replace(/\.$/, "");
    }
  };
  connect();
})();
