"use strict";

// ---------------------------------------------------------------- constants
const KEY_STORAGE = "rippy.apiKey";
const KNOWN_SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"];
const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 10_000;
const STABLE_CONNECTION_MS = 10_000; // the backoff only resets after a connection this long
const PING_INTERVAL_MS = 2_000, PING_GIVE_UP_MS = 10_000;
const TOKEN_FETCH_TIMEOUT_MS = 10_000, TOKEN_REFRESH_MARGIN_MS = 60_000;
const CHART_WINDOW_MS = 60_000, CHART_BUCKET_MS = 100;
const CHART_CAPACITY = CHART_WINDOW_MS / CHART_BUCKET_MS; // 600 points
const CHART_MIN_INTERVAL_MS = 100; // at most ~10 redraws per second

const STATUS_LABELS = {
  disconnected: "Disconnected", connecting: "Connecting…",
  connected: "Connected", reconnecting: "Reconnecting…",
};
const CLOSE_REASONS = {
  1000: "closed by server", 1001: "server shutting down", 1006: "connection lost",
  1008: "policy violation (too slow or flooding)", 1009: "message too big", 1011: "server error",
};

const $ = (id) => document.getElementById(id);
const el = {
  form: $("auth-form"), key: $("api-key"), connect: $("connect"), disconnect: $("disconnect"),
  error: $("error"), status: $("status"), statusDetail: $("status-detail"), user: $("user"),
  pricesBody: $("prices").tBodies[0], charts: $("charts"), rowTemplate: $("row-template"),
  chartTemplate: $("chart-template"), seq: $("seq"), lastUpdate: $("last-update"),
  rate: $("rate"), rtt: $("rtt"),
};

const fmt2 = { minimumFractionDigits: 2, maximumFractionDigits: 2 };
const priceFmt = new Intl.NumberFormat("en-US", fmt2);
const changeFmt = new Intl.NumberFormat("en-US", { ...fmt2, signDisplay: "exceptZero" });
const pctFmt = new Intl.NumberFormat("en-US",
  { style: "percent", minimumFractionDigits: 3, maximumFractionDigits: 3, signDisplay: "exceptZero" });

// -------------------------------------------------------------------- state
const conn = {
  apiKey: "", token: null, tokenExpiresAt: 0, ws: null,
  session: 0, // bumped on every user connect/disconnect; stale async work checks it
  attempt: 0, reconnectTimer: 0, pingTimer: 0, pingSentAt: null,
};
const view = {
  user: null, seq: null, lastUpdateMs: null, rate: 0, rtt: null, resets: 0,
  ticksInWindow: 0, windowStart: performance.now(),
};
const symbols = new Map(); // symbol -> entry (see ensureSymbol)
const dirty = { table: false, stats: false, charts: false };
const colors = { up: "#2ecc71", down: "#ff5c5c" };

/** Fixed-size ring of (time, price), one point per time bucket (last price wins). */
class PriceRing {
  constructor(capacity, bucketMs) {
    this.cap = capacity;
    this.bucketMs = bucketMs;
    this.times = new Float64Array(capacity);
    this.prices = new Float64Array(capacity);
    this.clear();
  }

  clear() { this.start = 0; this.len = 0; this.lastBucket = -Infinity; }
  index(k) { return (this.start + k) % this.cap; }
  time(k) { return this.times[this.index(k)]; }
  price(k) { return this.prices[this.index(k)]; }

  push(timeMs, price) {
    const bucket = Math.floor(timeMs / this.bucketMs);
    if (bucket < this.lastBucket) this.clear(); // clock went backwards: start over
    if (bucket === this.lastBucket) {
      this.prices[this.index(this.len - 1)] = price;
      return;
    }
    if (this.len < this.cap) this.len++;
    else this.start = (this.start + 1) % this.cap;
    const i = this.index(this.len - 1);
    this.times[i] = timeMs;
    this.prices[i] = price;
    this.lastBucket = bucket;
  }
}

// ---------------------------------------------------------------- UI helpers
function ensureSymbol(symbol) {
  let entry = symbols.get(symbol);
  if (entry) return entry;

  const row = el.rowTemplate.content.firstElementChild.cloneNode(true);
  row.dataset.symbol = symbol;
  row.querySelector(".symbol").textContent = symbol;
  el.pricesBody.append(row);

  const tile = el.chartTemplate.content.firstElementChild.cloneNode(true);
  const canvas = tile.querySelector("canvas");
  canvas.dataset.symbol = symbol;
  canvas.setAttribute("aria-label", `${symbol} price over the last 60 seconds`);
  tile.querySelector(".chart-name").textContent = symbol;
  el.charts.append(tile);

  entry = {
    price: null, prev: null, change: 0, dir: "", changed: false,
    ring: new PriceRing(CHART_CAPACITY, CHART_BUCKET_MS),
    row, priceCell: row.querySelector(".price"), changeCell: row.querySelector(".change"),
    pctCell: row.querySelector(".pct"), rangeEl: tile.querySelector(".chart-range"),
    canvas, ctx: canvas.getContext("2d"),
  };
  symbols.set(symbol, entry);
  return entry;
}

function setStatus(state, detail = "") {
  el.status.dataset.state = state;
  el.status.textContent = STATUS_LABELS[state];
  el.statusDetail.textContent = detail;
  document.body.dataset.state = state;
  el.connect.disabled = state === "connecting" || state === "connected";
  el.disconnect.disabled = state === "disconnected";
}

function showError(message) {
  el.error.textContent = message;
  el.error.hidden = !message;
}

// localStorage throws when storage is disabled; the key is then simply not remembered.
const loadKey = () => { try { return localStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; } };
const saveKey = (key) => { try { localStorage.setItem(KEY_STORAGE, key); } catch { /* ignore */ } };

// -------------------------------------------------------------------- auth
class AuthError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** POST /auth/token; stores the token or throws an AuthError with the server's message. */
async function fetchToken(apiKey) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TOKEN_FETCH_TIMEOUT_MS);
  let res, body;
  try {
    res = await fetch("/auth/token", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: apiKey }), cache: "no-store", signal: abort.signal,
    });
    body = await res.json().catch(() => ({}));
  } catch {
    throw new AuthError(0, "could not reach the server");
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok) {
    const fallback = res.status === 429 ? "too many attempts, try again later" : `HTTP ${res.status}`;
    throw new AuthError(res.status, `${body?.error || fallback} (${res.status})`);
  }
  if (typeof body?.token !== "string") throw new AuthError(res.status, "malformed token response");
  conn.token = body.token;
  conn.tokenExpiresAt = Date.now() + (Number(body.expires_in) || 3600) * 1000;
}

// Retrying will not fix a rejected key; rate limits and outages may clear up.
const isFatalAuthError = (err) => err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
const tokenIsStale = () => !conn.token || Date.now() > conn.tokenExpiresAt - TOKEN_REFRESH_MARGIN_MS;

// -------------------------------------------------------------- connection
async function connect() {
  const apiKey = el.key.value.trim();
  if (!apiKey) {
    showError("Enter an API key.");
    return el.key.focus();
  }
  teardown();
  saveKey(apiKey);
  Object.assign(conn, { apiKey, token: null, attempt: 0 });
  showError("");
  setStatus("connecting", "Requesting token…");
  const session = conn.session;
  try {
    await fetchToken(apiKey);
  } catch (err) {
    if (session !== conn.session) return;
    showError(`Authentication failed: ${err.message}`);
    setStatus("disconnected");
    return;
  }
  if (session === conn.session) openSocket(session);
}

function disconnect() {
  teardown();
  view.user = view.rtt = null;
  setStatus("disconnected", "Disconnected by user");
  markDirty("stats");
}

/** Drops the socket and all timers without triggering a reconnect. */
function teardown() {
  conn.session++;
  clearTimeout(conn.reconnectTimer);
  stopPing();
  const ws = conn.ws;
  conn.ws = null;
  if (!ws) return;
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  try { ws.close(1000, "client disconnect"); } catch { /* already closed */ }
}

function openSocket(session, resume = false) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  // After a drop, ask for the ticks missed meanwhile (any node has them);
  // a server that no longer has them answers with a "reset" first.
  const since = resume && view.seq !== null ? `&since=${view.seq}` : "";
  const url = `${proto}//${location.host}/ws/ticker?x-auth-token=${encodeURIComponent(conn.token)}${since}`;
  let ws;
  try { ws = new WebSocket(url); } catch { return scheduleReconnect(session, true, "Could not open socket"); }
  conn.ws = ws;
  let openedAt = null;

  ws.onopen = () => {
    openedAt = performance.now();
    showError("");
    setStatus("connected");
    startPing(ws);
  };
  ws.onmessage = (event) => handleMessage(event.data);
  ws.onclose = (event) => {
    if (conn.ws !== ws) return;
    conn.ws = null;
    stopPing();
    // Refused before "open": most likely a 401 for an expired or revoked token.
    if (openedAt === null) return scheduleReconnect(session, true, "Connection refused");
    if (performance.now() - openedAt > STABLE_CONNECTION_MS) conn.attempt = 0;
    const why = CLOSE_REASONS[event.code] || `code ${event.code}`;
    scheduleReconnect(session, false, `Closed: ${why}${event.reason ? ` (${event.reason})` : ""}`);
  };
}

function scheduleReconnect(session, needToken, reason) {
  if (session !== conn.session) return;
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** conn.attempt);
  const delay = Math.round(Math.min(BACKOFF_MAX_MS, base * (0.75 + Math.random() * 0.5)));
  conn.attempt++;
  setStatus("reconnecting", `${reason} — retry ${conn.attempt} in ${(delay / 1000).toFixed(1)} s`);
  conn.reconnectTimer = setTimeout(() => reconnect(session, needToken), delay);
}

async function reconnect(session, needToken) {
  if (session !== conn.session) return;
  if (needToken || tokenIsStale()) {
    setStatus("reconnecting", "Refreshing token…");
    try {
      await fetchToken(conn.apiKey);
    } catch (err) {
      if (session !== conn.session) return;
      if (!isFatalAuthError(err)) return scheduleReconnect(session, true, `Token request failed: ${err.message}`);
      conn.token = null;
      showError(`Authentication failed: ${err.message}. Reconnecting stopped.`);
      setStatus("disconnected", "Stopped reconnecting");
      return;
    }
    if (session !== conn.session) return;
  }
  setStatus("reconnecting", "Opening socket…");
  openSocket(session, true);
}

function startPing(ws) {
  stopPing();
  const ping = () => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const now = performance.now();
    // One ping in flight at a time, so each pong matches the last ping.
    if (conn.pingSentAt !== null && now - conn.pingSentAt < PING_GIVE_UP_MS) return;
    conn.pingSentAt = now;
    ws.send('{"type":"ping"}');
  };
  ping();
  conn.pingTimer = setInterval(ping, PING_INTERVAL_MS);
}

function stopPing() {
  clearInterval(conn.pingTimer);
  conn.pingSentAt = null;
}

// ---------------------------------------------------------------- messages
function handleMessage(raw) {
  let msg;
  try { msg = JSON.parse(raw); } catch { return; }
  if (msg?.type === "ticker") {
    onTicker(msg);
  } else if (msg?.type === "pong" && conn.pingSentAt !== null) {
    view.rtt = performance.now() - conn.pingSentAt;
    conn.pingSentAt = null;
    markDirty("stats");
  } else if (msg?.type === "reset") {
    // The ticks since our last one are gone: the charts start over here.
    view.resets++;
    showError(`Stream reset (${msg.reason}): some ticks were missed`);
    markDirty("stats");
  } else if (msg?.type === "welcome") {
    view.user = msg.user_id == null ? null : String(msg.user_id);
    markDirty("stats");
  }
}

function onTicker(msg) {
  // Server time keeps the chart evenly spaced even when frames arrive in bursts.
  const time = Number.isFinite(msg.sent_at_ms) ? msg.sent_at_ms : Date.now();
  if (Number.isFinite(msg.seq)) view.seq = msg.seq;
  view.lastUpdateMs = Date.now();
  view.ticksInWindow++;
  for (const item of Array.isArray(msg.data) ? msg.data : []) {
    if (typeof item?.symbol === "string") applyTick(ensureSymbol(item.symbol), Number(item.price), time);
  }
  markDirty("table", "stats", "charts");
}

function applyTick(entry, price, time) {
  if (!Number.isFinite(price)) return;
  if (entry.price !== null) {
    entry.prev = entry.price;
    entry.change = price - entry.price;
    // An unchanged price keeps the previous colour instead of flickering.
    if (entry.change !== 0) entry.dir = entry.change > 0 ? "up" : "down";
  }
  entry.price = price;
  entry.changed = true;
  entry.ring.push(time, price);
}

function sampleRate() {
  const now = performance.now();
  view.rate = (view.ticksInWindow * 1000) / Math.max(1, now - view.windowStart);
  view.ticksInWindow = 0;
  view.windowStart = now;
  markDirty("stats");
}

// --------------------------------------------------------------- rendering
let frameRequested = false;
let lastChartDraw = -Infinity;

function markDirty(...parts) {
  for (const part of parts) dirty[part] = true;
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(render);
}

function render(now) {
  frameRequested = false;
  if (dirty.table) { dirty.table = false; renderTable(); }
  if (dirty.stats) { dirty.stats = false; renderStats(); }
  if (!dirty.charts) return;
  if (now - lastChartDraw < CHART_MIN_INTERVAL_MS) return markDirty("charts"); // retry next frame
  dirty.charts = false;
  lastChartDraw = now;
  const dpr = window.devicePixelRatio || 1;
  for (const entry of symbols.values()) drawChart(entry, dpr);
}

function renderTable() {
  for (const entry of symbols.values()) {
    if (!entry.changed) continue;
    entry.changed = false;
    const hasPrev = entry.prev !== null;
    entry.priceCell.textContent = priceFmt.format(entry.price);
    entry.changeCell.textContent = hasPrev ? changeFmt.format(entry.change) : "—";
    entry.pctCell.textContent = hasPrev && entry.prev !== 0 ? pctFmt.format(entry.change / entry.prev) : "—";
    for (const node of [entry.row, entry.priceCell]) {
      node.classList.toggle("up", entry.dir === "up");
      node.classList.toggle("down", entry.dir === "down");
    }
  }
}

function formatClock(ms) {
  const d = new Date(ms);
  return `${d.toLocaleTimeString("en-GB", { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function renderStats() {
  el.user.textContent = view.user ?? "—";
  el.seq.textContent = view.seq === null ? "—" : String(view.seq);
  el.lastUpdate.textContent = view.lastUpdateMs === null ? "—" : formatClock(view.lastUpdateMs);
  el.rate.textContent = view.rate.toFixed(view.rate >= 10 ? 0 : 1);
  el.rtt.textContent = view.rtt === null ? "—" : view.rtt.toFixed(1);
}

/** Sizes the backing store for the device pixel ratio; returns the CSS size. */
function fitCanvas(canvas, ctx, dpr) {
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || 90;
  const bw = Math.round(w * dpr), bh = Math.round(h * dpr);
  if (canvas.width !== bw) canvas.width = bw; // assigning clears, so only on change
  if (canvas.height !== bh) canvas.height = bh;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { w, h };
}

function drawChart(entry, dpr) {
  const { canvas, ctx, ring } = entry;
  const { w, h } = fitCanvas(canvas, ctx, dpr);
  // Times in the ring ascend, so the 60 s window is a suffix of it.
  const last = ring.len - 1;
  const tEnd = ring.len ? ring.time(last) : 0;
  let first = 0;
  while (first < ring.len && ring.time(first) < tEnd - CHART_WINDOW_MS) first++;
  canvas.dataset.points = String(ring.len - first);
  if (ring.len - first < 2) {
    entry.rangeEl.textContent = "";
    return;
  }

  let min = Infinity, max = -Infinity;
  for (let k = first; k <= last; k++) {
    const p = ring.price(k);
    if (p < min) min = p;
    if (p > max) max = p;
  }
  entry.rangeEl.textContent = `L ${priceFmt.format(min)} · H ${priceFmt.format(max)}`;
  const flatPad = max === min ? Math.abs(max) * 1e-4 || 1 : 0; // keep a flat line mid-height
  min -= flatPad;
  max += flatPad;

  const t0 = ring.time(first), padY = 6, plotW = w - 4; // leave room for the end dot
  const x = (t) => ((t - t0) / (tEnd - t0 || 1)) * plotW;
  const y = (p) => padY + (1 - (p - min) / (max - min)) * (h - 2 * padY);
  const line = new Path2D();
  for (let k = first; k <= last; k++) line.lineTo(x(ring.time(k)), y(ring.price(k)));
  const color = ring.price(last) >= ring.price(first) ? colors.up : colors.down;

  const area = new Path2D(line);
  area.lineTo(x(tEnd), h);
  area.lineTo(0, h);
  area.closePath();
  ctx.fillStyle = ctx.strokeStyle = color;
  ctx.globalAlpha = 0.15;
  ctx.fill(area);
  ctx.globalAlpha = 1;
  ctx.lineWidth = 1.5;
  ctx.lineJoin = "round";
  ctx.stroke(line);
  ctx.beginPath();
  ctx.arc(x(tEnd), y(ring.price(last)), 2.5, 0, Math.PI * 2);
  ctx.fill();
}

// -------------------------------------------------------------------- init
function init() {
  const css = getComputedStyle(document.documentElement);
  colors.up = css.getPropertyValue("--up").trim() || colors.up;
  colors.down = css.getPropertyValue("--down").trim() || colors.down;
  el.key.value = loadKey();
  for (const symbol of KNOWN_SYMBOLS) ensureSymbol(symbol);
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  el.disconnect.addEventListener("click", disconnect);
  window.addEventListener("resize", () => markDirty("charts"));
  setInterval(sampleRate, 1000);
  setStatus("disconnected");
  markDirty("stats", "charts");
}

init();
