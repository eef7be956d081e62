// The fmcapd page: the stored span, a timeline of the chosen range drawn
// on a canvas (no library: one bar chart needs none, and the page must work
// with no network but fmcapd), a range chosen by dragging across it, a
// tcpdump filter with libpcap's error when it has one, the top talkers,
// and a download of exactly what fmslice would write.
"use strict";
const $ = (id) => document.getElementById(id);
let buckets = [], lo = 0, hi = 0; // the drawn range, ns (as decimal strings' numbers)

// ns ↔ the "seconds.nanoseconds" form fmslice takes, without float loss.
function nsToArg(ns) { const s = BigInt(ns); return (s / 1000000000n) + "." + String(s % 1000000000n).padStart(9, "0"); }
function argToNs(a) {
  const [s, f = ""] = a.trim().split(".");
  return BigInt(s) * 1000000000n + BigInt((f + "000000000").slice(0, 9));
}

function headers() {
  const t = $("token").value || sessionStorage.getItem("fmcap-token") || "";
  if ($("token").value) sessionStorage.setItem("fmcap-token", $("token").value);
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path, params) {
  const q = new URLSearchParams(params);
  if ($("store").value) q.set("store", $("store").value);
  const r = await fetch("api/v1/" + path + "?" + q, { headers: headers() });
  if (!r.ok) throw new Error((await r.text()).trim() || r.statusText);
  return r;
}

function rangeParams() {
  const p = { from: $("from").value.trim(), to: $("to").value.trim() };
  const f = $("filter").value.trim();
  if (f) p.filter = f;
  return p;
}

function stepFor(fromNs, toNs) {
  // About 200 bars, at a round step.
  const want = Number(toNs - fromNs) / 200 / 1e6; // ms
  const steps = [1, 10, 100, 1000, 10000, 60000, 600000, 3600000, 86400000];
  for (const s of steps) if (s >= want) return s < 1000 ? s + "ms" : (s / 1000) + "s";
  return "86400s";
}

async function refresh() {
  $("error").textContent = "";
  const p = rangeParams();
  let fromNs, toNs;
  try { fromNs = argToNs(p.from); toNs = argToNs(p.to); } catch (e) { $("error").textContent = "from and to: Unix seconds, e.g. 1764064800.5"; return; }
  p.step = stepFor(fromNs, toNs);
  $("step").textContent = "one bar: " + p.step;
  lo = fromNs; hi = toNs; // the axis, even when the counts cannot be had
  document.body.dataset.busy = "1";
  try {
    // One after the other: the error shown is the timeline's (libpcap's
    // words for a bad filter), whichever would have come back first.
    const t = await (await api("timeline", p)).json();
    const fl = await api("flows", { ...rangeParams(), by: $("unit").value });
    buckets = Array.isArray(t) ? t : (t.buckets || []);
    draw();
    talkers(await fl.json());
  } catch (e) {
    $("error").textContent = e.message;
    buckets = []; draw();
  } finally {
    delete document.body.dataset.busy;
  }
}

function draw() {
  const c = $("timeline"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!buckets.length || hi <= lo) return;
  const unit = $("unit").value;
  const max = Math.max(1, ...buckets.map((b) => b[unit]));
  const span = Number(hi - lo);
  g.fillStyle = "#3465a4";
  for (const b of buckets) {
    const s = Number(BigInt(b.start_ns) - lo), w = Math.max(1, (c.width * Number(b.step_ns || span / buckets.length)) / span);
    const x = (c.width * s) / span, h = ((c.height - 20) * b[unit]) / max;
    g.fillRect(x, c.height - 20 - h, Math.max(1, w - 1), h);
  }
  g.fillStyle = "#666";
  g.fillText(new Date(Number(lo / 1000000n)).toISOString(), 2, c.height - 5);
  const end = new Date(Number(hi / 1000000n)).toISOString();
  g.fillText(end, c.width - g.measureText(end).width - 2, c.height - 5);
  g.fillText(max + " " + unit, 2, 12);
}

function talkers(flows) {
  const tb = $("flows").querySelector("tbody");
  tb.textContent = "";
  for (const f of (flows || []).slice(0, 10)) {
    const tr = document.createElement("tr");
    const cells = [f.proto, f.a + (f.a_port ? ":" + f.a_port : ""), f.b + (f.b_port ? ":" + f.b_port : ""), f.packets, f.bytes];
    cells.forEach((v, i) => { const td = document.createElement("td"); td.textContent = v; if (i >= 3) td.className = "n"; tr.appendChild(td); });
    tb.appendChild(tr);
  }
}

// Dragging across the timeline selects [from, to).
let dragFrom = null;
function xToNs(ev) {
  const c = $("timeline"), r = c.getBoundingClientRect();
  const frac = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  return lo + BigInt(Math.round(Number(hi - lo) * frac));
}
$("timeline").addEventListener("mousedown", (ev) => { if (hi > lo) dragFrom = xToNs(ev); });
$("timeline").addEventListener("mouseup", (ev) => {
  if (dragFrom === null) return;
  let a = dragFrom, b = xToNs(ev);
  dragFrom = null;
  if (a > b) [a, b] = [b, a];
  if (b - a < 1000n) return; // a click, not a drag
  $("from").value = nsToArg(a);
  $("to").value = nsToArg(b);
  refresh();
});

async function download() {
  $("dlstatus").textContent = "…";
  $("error").textContent = "";
  let got = 0, started = false, id = "";
  try {
    const fmt = $("format").value;
    // Completeness comes as a trailer, which fetch does not expose: with
    // incomplete=abort, fmcapd breaks off an answer it finds incomplete
    // after it started (damaged frames, max_bytes, query_timeout, a stop),
    // so reading it fails here and nothing short is saved; the query's id
    // then gets its outcome, the reason with it.
    id = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
    const r = await api("pcap", { ...rangeParams(), format: fmt, incomplete: "abort", id });
    started = true;
    const parts = [], rd = r.body.getReader();
    for (;;) {
      const { done, value } = await rd.read();
      if (done) break;
      parts.push(value);
      got += value.length;
      $("dlstatus").textContent = got + " bytes…";
    }
    const blob = new Blob(parts);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "fmcap." + fmt;
    document.body.appendChild(a);
    a.click();
    a.remove();
    $("dlstatus").textContent = blob.size + " bytes";
  } catch (e) {
    $("dlstatus").textContent = "";
    if (!started) { $("error").textContent = e.message; return; }
    let why = e.message;
    try {
      const o = await (await api("outcome", { id })).json();
      if (o.error) why = o.error;
    } catch (e2) { why += "; its reason could not be had: " + e2.message; }
    $("error").textContent = "download failed: the answer was broken off after " + got + " bytes, so it is incomplete and was not saved: " + why;
  }
}

async function start() {
  try {
    const r = await fetch("api/v1/stores", { headers: headers() });
    if (r.ok) for (const s of await r.json()) { const o = document.createElement("option"); o.value = o.textContent = s; $("store").appendChild(o); }
    // The nanosecond times are beyond a JavaScript number's exact
    // integers (2^53): read them from the text, as BigInts.
    const text = await (await api("info", {})).text();
    const info = JSON.parse(text);
    info.first_ns = BigInt(/"first_ns":\s*(-?\d+)/.exec(text)[1]);
    info.last_ns = BigInt(/"last_ns":\s*(-?\d+)/.exec(text)[1]);
    $("span").textContent = "stored: " + info.first + " – " + info.last + " (" + info.packets + " packets)";
    window.fmcapInfo = info;
    $("from").value = nsToArg(info.first_ns);
    $("to").value = nsToArg(info.last_ns + 1n);
    await refresh();
    document.body.dataset.ready = "1";
  } catch (e) {
    $("error").textContent = e.message;
  }
}
$("apply").addEventListener("click", refresh);
$("whole").addEventListener("click", () => { if (window.fmcapInfo) { $("from").value = nsToArg(window.fmcapInfo.first_ns); $("to").value = nsToArg(window.fmcapInfo.last_ns + 1n); refresh(); } });
$("filter").addEventListener("keydown", (e) => { if (e.key === "Enter") refresh(); });
$("unit").addEventListener("change", draw);
$("get").addEventListener("click", download);
start();
