/* Tradebot control panel: overview page.
 *
 * Renders the server snapshot (json_script "overview-snapshot"), then applies the
 * events pushed on ws(s)://host/ws/panel/ (see docs/domain-contract.md "Realtime
 * events"): {"type": "<event>", "payload": {...}}. Decimals arrive as strings and
 * are formatted with exact string/BigInt arithmetic; only the charts use Number.
 * After every (re)connect the page re-reads its own snapshot so that nothing sent
 * while the socket was down is lost; applying an event twice is harmless.
 */
(function () {
  "use strict";

  var WS_PATH = "/ws/panel/";
  var MAX_POINTS = 2000;        // points kept per chart
  var MAX_ROWS = 20;            // rows in the orders, decisions and fills tables
  var FEED_WARN_S = 120;        // feed age (seconds) shown amber from here
  var FEED_STALE_S = 600;       // and red from here
  var CLOSE_UNAUTHENTICATED = 4401;
  var CLOSE_FORBIDDEN = 4403;
  var RISK_URL = "/api/risk";     // today's P&L (daily_pnl_pct) comes from the risk overview
  var DAILY_REFRESH_MS = 2000;    // at most one risk read per this interval, after equity events
  var MAX_ALERTS = 50;
  var TERMINAL = { denied: 1, rejected: 1, filled: 1, canceled: 1, expired: 1 };

  // ---------------------------------------------------------------- decimals
  // A decimal is {neg, digits: BigInt, scale}: value = (-1)^neg * digits / 10^scale.
  function parseDec(s) {
    if (s === null || s === undefined) return null;
    var m = /^\s*([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(String(s));
    if (!m || (!m[2] && !m[3])) return null;
    var frac = m[3] || "";
    var digits = BigInt((m[2] || "0") + frac);
    var scale = frac.length - parseInt(m[4] || "0", 10);
    if (scale < 0) {
      digits = digits * (10n ** BigInt(-scale));
      scale = 0;
    }
    return { neg: m[1] === "-", digits: digits, scale: scale };
  }

  function roundDec(d, places) {  // half away from zero
    if (d.scale <= places) {
      return { neg: d.neg, digits: d.digits * (10n ** BigInt(places - d.scale)), scale: places };
    }
    var div = 10n ** BigInt(d.scale - places);
    var q = d.digits / div;
    if ((d.digits % div) * 2n >= div) q += 1n;
    return { neg: d.neg, digits: q, scale: places };
  }

  function decToString(d, group, trim) {
    var s = d.digits.toString();
    if (s.length <= d.scale) s = "0".repeat(d.scale - s.length + 1) + s;
    var intPart = s.slice(0, s.length - d.scale);
    var frac = d.scale ? s.slice(s.length - d.scale) : "";
    if (trim) frac = frac.replace(/0+$/, "");
    if (group) intPart = intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var sign = d.neg && d.digits !== 0n ? "-" : "";
    return sign + intPart + (frac ? "." + frac : "");
  }

  function decSign(s) {
    var d = parseDec(s);
    if (!d || d.digits === 0n) return 0;
    return d.neg ? -1 : 1;
  }

  function blank(s) { return s === null || s === undefined || s === ""; }

  // Money: 2 decimals, thousands separators; signed adds "+" to positives.
  function fmtMoney(s, signed) {
    if (blank(s)) return "—";
    var d = parseDec(s);
    if (!d) return String(s);
    d = roundDec(d, 2);
    var out = decToString(d, true, false);
    return signed && !d.neg && d.digits !== 0n ? "+" + out : out;
  }

  // Prices and quantities: exact up to 8 decimals, trailing zeros dropped.
  function fmtNum(s) {
    if (blank(s)) return "—";
    var d = parseDec(s);
    if (!d) return String(s);
    return decToString(roundDec(d, 8), true, true);
  }

  // A fraction (0.0123) as a percentage ("1.23%"): multiplying by 100 is a scale shift.
  function fmtPct(s, signed) {
    if (blank(s)) return "—";
    var d = parseDec(s);
    if (!d) return String(s);
    var shifted = d.scale >= 2
      ? { neg: d.neg, digits: d.digits, scale: d.scale - 2 }
      : { neg: d.neg, digits: d.digits * (10n ** BigInt(2 - d.scale)), scale: 0 };
    var r = roundDec(shifted, 2);
    var out = decToString(r, true, false) + "%";
    return signed && !r.neg && r.digits !== 0n ? "+" + out : out;
  }

  function signClass(s) {
    var n = decSign(s);
    return n > 0 ? "pos" : n < 0 ? "neg" : "";
  }

  // ------------------------------------------------------------------- times
  function parseTs(s) {
    if (blank(s)) return null;
    var t = Date.parse(s);
    return isNaN(t) ? null : t;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function fmtTime(s, withDate) {
    var t = parseTs(s);
    if (t === null) return blank(s) ? "—" : String(s);
    var d = new Date(t);
    var hms = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    var md = pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return withDate === "full" ? d.getUTCFullYear() + "-" + md + " " + hms : md + " " + hms;
  }

  function fmtAge(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + pad(Math.floor((s % 3600) / 60)) + "m";
    return Math.floor(s / 86400) + "d";
  }

  // --------------------------------------------------------------------- DOM
  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls, title) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    if (title) e.title = title;
    return e;
  }

  function td(text, cls, title) { return el("td", text, cls, title); }

  function pillTd(text, cls, title) {
    var c = td(null, null, title);
    c.appendChild(el("span", text, "pill " + (cls || "")));
    return c;
  }

  function setText(id, text, cls) {
    var e = $(id);
    if (!e) return;
    if (e.textContent !== text) {
      e.textContent = text;
      flash(e);
    }
    if (cls !== undefined) {
      e.classList.remove("pos", "neg");
      if (cls) e.classList.add(cls);
    }
  }

  function flash(e) {
    e.classList.remove("flash");
    void e.offsetWidth;  // restart the animation
    e.classList.add("flash");
  }

  function fillBody(id, rows, cols, emptyText, flashKeys) {
    var body = $(id);
    if (!body) return;
    var frag = document.createDocumentFragment();
    if (!rows.length) {
      var tr = el("tr");
      var c = td(emptyText, "empty");
      c.colSpan = cols;
      tr.appendChild(c);
      frag.appendChild(tr);
    }
    rows.forEach(function (r) {
      if (flashKeys && r.dataset.key && flashKeys[r.dataset.key]) r.classList.add("flash");
      frag.appendChild(r);
    });
    body.replaceChildren(frag);
  }

  // -------------------------------------------------------------------- state
  var state = {
    account: null,
    mode: null,
    modeDetail: "",
    equity: null,
    positions: [],
    orders: new Map(),      // client_order_id -> payload
    decisions: new Map(),   // id -> payload
    fills: new Map(),       // trade_id -> payload
    feeds: new Map(),       // feed -> {payload, updatedAt (ms) | null}
    alerts: new Map(),      // id -> payload (open alerts)
    dailyPnlPct: null,      // today's P&L as a fraction (string)
    fresh: {}               // keys of rows to flash on the next render
  };

  function acceptAccount(account) {
    if (!account) return true;
    if (!state.account) {
      state.account = account;
      setText("account-name", account);
      return true;
    }
    return account === state.account;
  }

  // ------------------------------------------------------------------- charts
  var charts = { equity: null, drawdown: null };
  var series = { x: [], equity: [], drawdown: [] };

  function chartOpts(el, label, stroke, fill, fmt) {
    var axis = {
      stroke: "#8593a3",
      grid: { stroke: "rgba(133,147,163,.12)", width: 1 },
      ticks: { stroke: "rgba(133,147,163,.25)", width: 1 },
      font: "11px system-ui, sans-serif"
    };
    return {
      width: Math.max(200, el.clientWidth - 8),
      height: 200,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true } },
      cursor: { drag: { x: true, y: false } },
      legend: { show: true, live: true },
      series: [
        { label: "Time (UTC)", value: function (u, v) { return v === null || v === undefined ? "—" : fmtTime(new Date(v * 1000).toISOString(), "full"); } },
        {
          label: label, stroke: stroke, fill: fill, width: 1.5, points: { show: false },
          value: function (u, v) { return v === null || v === undefined ? "—" : fmt(v); }
        }
      ],
      axes: [
        Object.assign({}, axis),
        Object.assign({}, axis, {
          size: 64,
          values: function (u, vals) { return vals.map(fmt); }
        })
      ]
    };
  }

  function fmtAxisMoney(v) {
    return Number(v).toLocaleString("en-US", { maximumFractionDigits: Math.abs(v) >= 1000 ? 0 : 2 });
  }

  function fmtAxisPct(v) { return Number(v).toFixed(Math.abs(v) < 1 ? 2 : 1) + "%"; }

  function initCharts() {
    if (typeof uPlot === "undefined") return;
    var ee = $("chart-equity");
    var de = $("chart-drawdown");
    if (ee) {
      charts.equity = new uPlot(chartOpts(ee, "Equity", "#5aa9ff", "rgba(90,169,255,.10)", fmtAxisMoney),
        [series.x, series.equity], ee);
    }
    if (de) {
      charts.drawdown = new uPlot(chartOpts(de, "Drawdown", "#ff6b6b", "rgba(255,107,107,.15)", fmtAxisPct),
        [series.x, series.drawdown], de);
    }
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        if (charts.equity) charts.equity.setSize({ width: Math.max(200, ee.clientWidth - 8), height: 200 });
        if (charts.drawdown) charts.drawdown.setSize({ width: Math.max(200, de.clientWidth - 8), height: 200 });
      }, 100);
    });
  }

  function redrawCharts() {
    if (charts.equity) charts.equity.setData([series.x, series.equity]);
    if (charts.drawdown) charts.drawdown.setData([series.x, series.drawdown]);
    var n = series.x.length;
    $("equity-points").textContent = n ? n + " points" : "no data yet";
  }

  // Returns false when the point is older than the last one (out of order: ignored).
  function addPoint(p) {
    var t = parseTs(p.ts);
    if (t === null) return false;
    var x = t / 1000;
    var eq = p.equity === null || p.equity === undefined ? null : Number(p.equity);
    var dd = p.drawdown === null || p.drawdown === undefined ? null : -Number(p.drawdown) * 100;
    var n = series.x.length;
    if (n && x < series.x[n - 1]) return false;
    if (n && x === series.x[n - 1]) {
      series.equity[n - 1] = eq;
      series.drawdown[n - 1] = dd;
      return true;
    }
    series.x.push(x);
    series.equity.push(eq);
    series.drawdown.push(dd);
    if (series.x.length > MAX_POINTS) {
      series.x.shift();
      series.equity.shift();
      series.drawdown.shift();
    }
    return true;
  }

  // ----------------------------------------------------------------- renders
  function renderMode() {
    var banner = $("mode-banner");
    var mode = (state.mode || "unknown").toLowerCase();
    banner.className = "mode-banner mode-" + mode;
    banner.dataset.mode = mode;
    setText("mode-name", mode.toUpperCase());
    $("mode-detail").textContent = state.modeDetail;
  }

  function renderEquity() {
    var p = state.equity || {};
    setText("kpi-equity", fmtMoney(p.equity));
    setText("kpi-pnl", fmtMoney(p.pnl, true), signClass(p.pnl));
    setText("kpi-pnl-pct", blank(p.pnl_pct) ? "" : fmtPct(p.pnl_pct, true), signClass(p.pnl_pct));
    setText("kpi-drawdown", blank(p.drawdown) ? "—" : fmtPct(p.drawdown), decSign(p.drawdown) > 0 ? "neg" : "");
    setText("kpi-cash", fmtMoney(p.cash));
    setText("kpi-realized", fmtMoney(p.realized_pnl, true), signClass(p.realized_pnl));
    setText("kpi-unrealized", fmtMoney(p.unrealized_pnl, true), signClass(p.unrealized_pnl));
    setText("kpi-fees", fmtMoney(p.fees));
    setText("kpi-ts", fmtTime(p.ts, "full"));
  }

  function renderPositions() {
    var rows = state.positions.slice().sort(function (a, b) {
      return String(a.instrument).localeCompare(String(b.instrument));
    }).map(function (p) {
      var tr = el("tr", null, decSign(p.quantity) === 0 ? "flat" : "");
      tr.dataset.key = "pos:" + p.instrument;
      tr.appendChild(td(p.instrument, "mono"));
      tr.appendChild(td(fmtNum(p.quantity), "r num " + signClass(p.quantity)));
      tr.appendChild(td(fmtNum(p.avg_price), "r num"));
      tr.appendChild(td(fmtNum(p.last_price), "r num"));
      tr.appendChild(td(fmtMoney(p.unrealized_pnl, true), "r num " + signClass(p.unrealized_pnl)));
      tr.appendChild(td(fmtMoney(p.realized_pnl, true), "r num " + signClass(p.realized_pnl)));
      return tr;
    });
    var open = state.positions.filter(function (p) { return decSign(p.quantity) !== 0; }).length;
    $("positions-count").textContent = open + " open";
    fillBody("positions-body", rows, 6, "No positions", state.fresh);
  }

  function byCreatedDesc(a, b) {
    var ta = parseTs(a.created_at) || 0;
    var tb = parseTs(b.created_at) || 0;
    if (tb !== ta) return tb - ta;
    return String(b.id || b.client_order_id || "").localeCompare(String(a.id || a.client_order_id || ""),
      undefined, { numeric: true });
  }

  function sideTd(side) { return td(side ? String(side).toUpperCase() : "—", "side-" + side); }

  function statusTd(o) {
    return pillTd(String(o.status || "?").replace(/_/g, " "), "st-" + o.status, o.status_reason || "");
  }

  function renderOrders() {
    var all = Array.from(state.orders.values()).sort(byCreatedDesc);
    var working = all.filter(function (o) { return !TERMINAL[o.status]; });
    var wrows = working.map(function (o) {
      var tr = el("tr");
      tr.dataset.key = "ord:" + o.client_order_id;
      tr.appendChild(td(fmtTime(o.created_at), "mono"));
      tr.appendChild(td(o.instrument, "mono", o.client_order_id));
      tr.appendChild(sideTd(o.side));
      tr.appendChild(td(o.order_type || "—"));
      tr.appendChild(td(fmtNum(o.quantity), "r num"));
      tr.appendChild(td(fmtNum(o.filled_quantity), "r num"));
      tr.appendChild(td(fmtNum(o.avg_fill_price), "r num"));
      tr.appendChild(statusTd(o));
      return tr;
    });
    $("working-count").textContent = working.length + " working";
    fillBody("working-body", wrows, 8, "No working orders", state.fresh);

    var rrows = all.slice(0, MAX_ROWS).map(function (o) {
      var tr = el("tr");
      tr.dataset.key = "ord:" + o.client_order_id;
      tr.appendChild(td(fmtTime(o.created_at), "mono"));
      tr.appendChild(td(o.client_order_id, "mono"));
      tr.appendChild(td(o.instrument, "mono"));
      tr.appendChild(sideTd(o.side));
      tr.appendChild(td(o.order_type || "—"));
      tr.appendChild(td(fmtNum(o.quantity), "r num"));
      tr.appendChild(td(fmtNum(o.filled_quantity), "r num"));
      tr.appendChild(td(fmtNum(o.avg_fill_price), "r num"));
      tr.appendChild(statusTd(o));
      tr.appendChild(td(o.status_reason || "", "wrap muted"));
      return tr;
    });
    fillBody("orders-body", rrows, 10, "No orders yet", state.fresh);
  }

  function checkNames(list) {
    return (list || []).map(function (c) {
      return typeof c === "string" ? c : (c && (c.name || c.check)) || JSON.stringify(c);
    });
  }

  function renderDecisions() {
    var rows = Array.from(state.decisions.values()).sort(function (a, b) {
      var ta = parseTs(a.created_at) || parseTs(a.bar_ts) || 0;
      var tb = parseTs(b.created_at) || parseTs(b.bar_ts) || 0;
      if (tb !== ta) return tb - ta;
      return String(b.id).localeCompare(String(a.id), undefined, { numeric: true });
    }).slice(0, MAX_ROWS).map(function (d) {
      var tr = el("tr");
      tr.dataset.key = "dec:" + d.id;
      tr.appendChild(td(fmtTime(d.bar_ts), "mono", "decided " + fmtTime(d.created_at, "full")));
      tr.appendChild(td(d.instrument, "mono"));
      tr.appendChild(td(d.strategy || "—"));
      tr.appendChild(pillTd(String(d.signal || "—").replace(/_/g, " "), "sig-" + d.signal));
      tr.appendChild(td(fmtNum(d.price), "r num"));
      tr.appendChild(td(d.mode ? String(d.mode).toUpperCase() : "—", "m-" + String(d.mode || "").toLowerCase()));
      var failed = checkNames(d.failed_checks);
      var detail = typeof d.check_result === "string" ? d.check_result
        : d.check_result ? JSON.stringify(d.check_result) : "";
      tr.appendChild(failed.length
        ? pillTd("failed: " + failed.join(", "), "chk-fail", detail)
        : d.check_result === "passed" ? pillTd("passed", "chk-pass", detail)
        : pillTd(d.check_result || "—", "chk-none", detail));
      tr.appendChild(td(d.action || "—"));
      var ids = d.order_ids || [];
      tr.appendChild(td(ids.length ? ids.join(", ") : "—", "mono muted"));
      return tr;
    });
    fillBody("decisions-body", rows, 9, "No decisions yet", state.fresh);
  }

  function renderFills() {
    var rows = Array.from(state.fills.values()).sort(function (a, b) {
      return (parseTs(b.ts) || 0) - (parseTs(a.ts) || 0);
    }).slice(0, MAX_ROWS).map(function (f) {
      var tr = el("tr");
      tr.dataset.key = "fill:" + f.trade_id;
      tr.appendChild(td(fmtTime(f.ts), "mono", f.trade_id));
      tr.appendChild(td(f.instrument, "mono", f.client_order_id));
      tr.appendChild(sideTd(f.side));
      tr.appendChild(td(fmtNum(f.quantity), "r num"));
      tr.appendChild(td(fmtNum(f.price), "r num"));
      tr.appendChild(td(fmtMoney(f.fee), "r num"));
      return tr;
    });
    fillBody("fills-body", rows, 6, "No fills yet", state.fresh);
  }

  function freshnessClass(ageS) {
    return ageS >= FEED_STALE_S ? "fresh-stale" : ageS >= FEED_WARN_S ? "fresh-warn" : "fresh-ok";
  }

  function renderFeeds() {
    var rows = Array.from(state.feeds.values()).sort(function (a, b) {
      return String(a.payload.feed).localeCompare(String(b.payload.feed));
    }).map(function (f) {
      var p = f.payload;
      var tr = el("tr");
      tr.dataset.key = "feed:" + p.feed;
      tr.appendChild(td(p.feed, "mono"));
      tr.appendChild(td(fmtTime(p.last_bar_ts, "full"), "mono"));
      var age = td("—", "r num feed-age");
      age.dataset.updatedAt = f.updatedAt === null ? "" : String(f.updatedAt);
      tr.appendChild(age);
      tr.appendChild(td(fmtNum(p.bars_accepted), "r num"));
      tr.appendChild(td(fmtNum(p.bars_rejected), "r num " + (decSign(p.bars_rejected) > 0 ? "neg" : "")));
      return tr;
    });
    fillBody("feeds-body", rows, 5, "No data feeds", state.fresh);
    tickFeedAges();
  }

  function tickFeedAges() {
    var now = Date.now();
    document.querySelectorAll("#feeds-body td.feed-age").forEach(function (c) {
      if (!c.dataset.updatedAt) return;
      var ms = now - Number(c.dataset.updatedAt);
      c.textContent = fmtAge(ms);
      c.className = "r num feed-age " + freshnessClass(ms / 1000);
      c.title = "last update " + new Date(Number(c.dataset.updatedAt)).toISOString();
    });
  }

  function renderDaily() {
    var v = state.dailyPnlPct;
    setText("kpi-daily-pnl", blank(v) ? "—" : fmtPct(v, true), signClass(v));
  }

  function renderAlerts() {
    var rows = Array.from(state.alerts.values()).sort(byCreatedDesc).slice(0, MAX_ALERTS).map(function (a) {
      var tr = el("tr");
      tr.dataset.key = "alert:" + a.id;
      tr.appendChild(td(fmtTime(a.created_at), "mono"));
      tr.appendChild(pillTd(a.severity || "?", "sev-" + a.severity));
      tr.appendChild(td(a.code || "—", "mono"));
      tr.appendChild(td(a.message || "", "wrap"));
      return tr;
    });
    $("alerts-count").textContent = state.alerts.size + " open";
    fillBody("alerts-body", rows, 4, "No open alerts", state.fresh);
  }

  // Today's P&L is computed by the risk backend (one definition for panel, API and rules):
  // after equity events, re-read it, at most once per DAILY_REFRESH_MS.
  var daily = { timer: null, last: 0, inflight: false };

  function scheduleDailyRefresh() {
    if (daily.timer || daily.inflight) return;
    var wait = Math.max(0, daily.last + DAILY_REFRESH_MS - Date.now());
    daily.timer = setTimeout(refreshDaily, wait);
  }

  function refreshDaily() {
    daily.timer = null;
    daily.inflight = true;
    daily.last = Date.now();
    fetch(RISK_URL, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (risk) {
        if (risk && "daily_pnl_pct" in risk) {
          state.dailyPnlPct = risk.daily_pnl_pct;
          renderDaily();
        }
      })
      .catch(function () { /* next equity event retries */ })
      .then(function () { daily.inflight = false; });
  }

  function renderAll() {
    setText("account-name", state.account || "—");
    renderMode();
    renderEquity();
    renderDaily();
    renderAlerts();
    renderPositions();
    renderOrders();
    renderDecisions();
    renderFills();
    renderFeeds();
    redrawCharts();
  }

  // ---------------------------------------------------------------- snapshot
  function feedEntry(p, live) {
    // The feed's own wall-clock time of its last good bar when the server sends it;
    // otherwise the time this browser received a live update (unknown for the snapshot).
    var t = parseTs(p.last_update);
    return { payload: p, updatedAt: t !== null ? t : live ? Date.now() : null };
  }

  function loadSnapshot(snap) {
    snap = snap || {};
    state.account = snap.account || null;
    state.mode = snap.mode || null;
    state.equity = snap.equity || null;
    state.positions = snap.positions || [];
    state.orders = new Map();
    (snap.orders || []).forEach(function (o) { state.orders.set(o.client_order_id, o); });
    state.decisions = new Map();
    (snap.decisions || []).forEach(function (d) { state.decisions.set(String(d.id), d); });
    (snap.fills || []).forEach(function (f) { state.fills.set(f.trade_id, f); });
    state.alerts = new Map();
    (snap.alerts || []).forEach(function (a) { state.alerts.set(String(a.id), a); });
    if ("daily_pnl_pct" in snap) state.dailyPnlPct = snap.daily_pnl_pct;
    var oldFeeds = state.feeds;
    state.feeds = new Map();
    (snap.feeds || []).forEach(function (p) {
      var e = feedEntry(p, false);
      var prev = oldFeeds.get(p.feed);  // keep what we saw live when the snapshot has no time
      if (e.updatedAt === null && prev && prev.payload.last_bar_ts === p.last_bar_ts) e.updatedAt = prev.updatedAt;
      state.feeds.set(p.feed, e);
    });
    series.x = []; series.equity = []; series.drawdown = [];
    (snap.equity_history || []).forEach(addPoint);
    if (snap.equity) addPoint(snap.equity);
    state.fresh = {};
    renderAll();
  }

  // ------------------------------------------------------------------ events
  var handlers = {
    "equity.updated": function (p) {
      if (!acceptAccount(p.account)) return;
      var prev = state.equity && parseTs(state.equity.ts);
      var t = parseTs(p.ts);
      if (prev !== null && prev !== undefined && t !== null && t < prev) return;  // stale, out of order
      state.equity = p;
      renderEquity();
      addPoint(p);
      redrawCharts();
      scheduleDailyRefresh();
    },
    "alert.raised": function (p) {
      state.alerts.set(String(p.id), p);
      state.fresh = {};
      state.fresh["alert:" + p.id] = 1;
      renderAlerts();
    },
    "positions.updated": function (p) {
      if (!acceptAccount(p.account)) return;
      state.positions = p.positions || [];
      state.fresh = {};
      state.positions.forEach(function (x) { state.fresh["pos:" + x.instrument] = 1; });
      renderPositions();
    },
    "decision.created": function (p) {
      state.decisions.set(String(p.id), p);
      state.fresh = {};
      state.fresh["dec:" + p.id] = 1;
      renderDecisions();
    },
    "order.updated": function (p) {
      var prev = state.orders.get(p.client_order_id);
      state.orders.set(p.client_order_id, Object.assign({}, prev || {}, p));
      state.fresh = {};
      state.fresh["ord:" + p.client_order_id] = 1;
      renderOrders();
    },
    "fill.created": function (p) {
      state.fills.set(p.trade_id, p);
      state.fresh = {};
      state.fresh["fill:" + p.trade_id] = 1;
      renderFills();
    },
    "mode.changed": function (p) {
      state.mode = p.mode;
      var parts = [];
      if (p.previous) parts.push("from " + String(p.previous).toUpperCase());
      if (p.actor) parts.push("by " + p.actor);
      if (p.source) parts.push("via " + p.source);
      var now = new Date().toISOString();
      state.modeDetail = parts.join(" ") + " at " + fmtTime(now) + " UTC" + (p.reason ? " — " + p.reason : "");
      renderMode();
    },
    "feed.updated": function (p) {
      state.feeds.set(p.feed, feedEntry(p, true));
      state.fresh = {};
      state.fresh["feed:" + p.feed] = 1;
      renderFeeds();
    }
  };

  function apply(msg) {
    if (!msg || typeof msg !== "object") return;
    var h = handlers[msg.type];
    if (!h || !msg.payload || typeof msg.payload !== "object") return;
    try {
      h(msg.payload);
    } catch (err) {
      if (window.console) console.error("panel: could not apply", msg.type, err);
    }
  }

  // --------------------------------------------------------------- websocket
  var conn = { ws: null, attempt: 0, timer: null, countdown: null, syncing: false, buffer: [], stopped: false };

  function setConn(kind, label) {
    var e = $("conn");
    e.className = "conn conn-" + kind;
    e.dataset.state = kind;
    $("conn-label").textContent = label;
  }

  function connect() {
    if (conn.stopped) return;
    clearTimeout(conn.timer);
    clearInterval(conn.countdown);
    setConn("connecting", conn.attempt ? "reconnecting…" : "connecting…");
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + WS_PATH;
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (err) {
      scheduleReconnect(0);
      return;
    }
    conn.ws = socket;
    socket.onopen = function () {
      if (conn.ws === socket) resync(socket);
    };
    socket.onmessage = function (ev) {
      if (conn.ws !== socket) return;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (err) { return; }
      if (conn.syncing) conn.buffer.push(msg); else apply(msg);
    };
    socket.onclose = function (ev) {
      if (conn.ws !== socket) return;
      conn.ws = null;
      conn.syncing = false;
      scheduleReconnect(ev.code);
    };
  }

  function stop(label) {
    conn.stopped = true;
    clearTimeout(conn.timer);
    clearInterval(conn.countdown);
    if (conn.ws) { var s = conn.ws; conn.ws = null; s.close(); }
    setConn("disconnected", label);
  }

  // Subscribed first, then re-read the snapshot; events that arrive meanwhile are
  // applied after it (they are idempotent, so overlap with the snapshot is fine).
  function resync(socket) {
    conn.syncing = true;
    conn.buffer = [];
    setConn("connecting", "syncing…");
    fetch(location.pathname, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var node = doc.getElementById("overview-snapshot");
        if (!node) { var e = new Error("signed out"); e.signedOut = true; throw e; }
        if (conn.ws === socket) loadSnapshot(JSON.parse(node.textContent));
      })
      .catch(function (err) {
        if (err && err.signedOut) { stop("signed out — reload to log in"); return; }
        if (window.console) console.warn("panel: snapshot refresh failed", err);
      })
      .then(function () {
        if (conn.ws !== socket) return;
        conn.syncing = false;
        var queued = conn.buffer;
        conn.buffer = [];
        queued.forEach(apply);
        conn.attempt = 0;
        setConn("live", "live");
      });
  }

  function scheduleReconnect(code) {
    if (conn.stopped) return;
    if (code === CLOSE_UNAUTHENTICATED || code === CLOSE_FORBIDDEN) {
      stop(code === CLOSE_FORBIDDEN ? "not allowed" : "signed out — reload to log in");
      return;
    }
    // A refused handshake looks like any network error in the browser: after a few
    // failures, check whether the session is still valid before retrying forever.
    if (conn.attempt >= 3 && conn.attempt % 3 === 0) checkSession();
    var base = Math.min(30000, 1000 * Math.pow(2, conn.attempt));
    var delay = Math.round(base * (0.5 + Math.random() * 0.5));
    conn.attempt += 1;
    var due = Date.now() + delay;
    var show = function () {
      setConn("disconnected", "disconnected — retrying in " + Math.max(0, Math.ceil((due - Date.now()) / 1000)) + "s");
    };
    show();
    clearInterval(conn.countdown);
    conn.countdown = setInterval(show, 1000);
    conn.timer = setTimeout(connect, delay);
  }

  function checkSession() {
    fetch(location.pathname, { credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (r) {
        if (r.type === "opaqueredirect" || r.status === 302 || r.status === 403) stop("signed out — reload to log in");
      })
      .catch(function () { /* still offline: keep retrying */ });
  }

  // -------------------------------------------------------------------- boot
  function boot() {
    var node = $("overview-snapshot");
    var snap = {};
    try { snap = node ? JSON.parse(node.textContent) : {}; } catch (err) { snap = {}; }
    initCharts();
    loadSnapshot(snap);
    setInterval(tickFeedAges, 1000);
    window.addEventListener("online", function () {
      if (!conn.ws && !conn.stopped) { conn.attempt = 0; connect(); }
    });
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
