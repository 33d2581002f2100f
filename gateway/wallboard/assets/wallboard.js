// The wallboard page: one JSON snapshot per interval over Server-Sent Events, rendered
// with DOM nodes (textContent only: names never become markup).
import { drawDecisions } from "./chart.js";

const $ = (id) => document.getElementById(id);
let lastSnapshotAt = 0;
let lastInterval = 1;
let lastMinutes = [];
let snapshots = 0;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function level(inUse, limit) {
  if (limit === null) return "none";
  if (limit === 0 ? inUse > 0 : inUse / limit >= 1) return "full";
  return inUse / limit >= 0.8 ? "warn" : "ok";
}

function bar(inUse, limit) {
  const fill = el("div", { class: "fill level-" + level(inUse, limit) });
  const share = limit === null ? (inUse > 0 ? 0.04 : 0) : limit === 0 ? (inUse > 0 ? 1 : 0) : inUse / limit;
  fill.style.width = Math.min(100, share * 100).toFixed(1) + "%";
  return el("div", { class: "bar" }, fill);
}

function figure(c) {
  const extra = c.surcharged > 0 ? el("span", { class: "extra", title: "calls at a surcharge" }, "+" + c.surcharged + " surcharged") : null;
  return el("span", { class: "figure" },
    el("span", { class: "used" }, c.in_use), " / ",
    el("span", { class: "limit" }, c.limit === null ? "∞" : c.limit), extra);
}

function counterRow(name, c, attrs) {
  return el("div", { class: "counter", ...attrs, "data-level": level(c.in_use, c.limit) },
    el("span", { class: "name", title: name }, name), bar(c.in_use, c.limit), figure(c));
}

function renderTenants(body) {
  const section = $("tenants-section");
  section.hidden = body.tenants === null;
  if (body.tenants === null) return;
  const rows = body.tenants.map((t) => {
    const card = el("article", { class: "tenant", "data-tenant": t.tenant, "data-at-limit": String(t.at_limit) },
      el("header", {}, el("h3", {}, t.tenant), el("span", { class: "load" }, Math.round(t.load * 100) + "% of limit")));
    for (const name of ["total", "outbound", "inbound"]) {
      const c = t.counters[name];
      if (name === "total" || c.limit !== null || c.in_use > 0) {
        card.append(counterRow(name, c, { "data-counter": name }));
      }
    }
    return card;
  });
  $("tenants").replaceChildren(...(rows.length ? rows : [el("p", { class: "empty" }, "No tenant has a limit or a call up.")]));
  more("tenants-more", body.tenants_more, "more tenants not shown");
}

function renderTrunks(body) {
  $("trunks-section").hidden = body.trunks === null;
  if (body.trunks === null) return;
  const rows = body.trunks.map((t) => counterRow(t.trunk, t, { "data-trunk": t.trunk }));
  $("trunks").replaceChildren(...(rows.length ? rows : [el("p", { class: "empty" }, "No trunk has a limit or a call up.")]));
  more("trunks-more", body.trunks_more, "more trunks not shown");
}

function renderDecisions(body) {
  const d = body.decisions;
  $("decisions-section").hidden = d === null;
  for (const id of ["allowed-now", "denied-now", "allowed-total", "denied-total"]) {
    $(id).textContent = d === null ? "–" : String(d[id.replace("-now", "_this_minute").replace("-total", "_total")]);
  }
  if (d === null) return;
  $("chart-span").textContent = String(d.minutes.length);
  lastMinutes = d.minutes;
  drawDecisions($("decisions-chart"), lastMinutes);
  const reasons = Object.entries(d.denied_by_reason).map(([reason, n]) =>
    el("li", { "data-reason": reason }, reason + " " + n));
  $("deny-reasons").replaceChildren(...reasons);
}

function percent(x) { return (x * 100).toFixed(1) + "%"; }

function renderCampaigns(body) {
  $("campaigns-section").hidden = body.campaigns === null;
  if (body.campaigns === null) return;
  const rows = body.campaigns.map((c) => {
    const over = c.abandon_rate > c.abandon_target;
    const fill = el("div", { class: "fill level-" + (over ? "full" : c.abandon_rate > 0.8 * c.abandon_target ? "warn" : "ok") });
    const scale = Math.max(c.abandon_target * 2, c.abandon_rate, 0.0001);
    fill.style.width = Math.min(100, (c.abandon_rate / scale) * 100).toFixed(1) + "%";
    const target = el("div", { class: "target", title: "target " + percent(c.abandon_target) });
    target.style.left = ((c.abandon_target / scale) * 100).toFixed(1) + "%";
    return el("tr", { "data-campaign": c.campaign, "data-tenant": c.tenant },
      el("td", {}, c.tenant),
      el("td", {}, c.campaign, c.paused ? el("span", { class: "paused" }, "paused") : null),
      el("td", {}, c.mode),
      el("td", {}, el("div", { class: "cell-bar" }, el("div", { class: "bar" }, fill, target),
        el("span", { class: "abandon" }, percent(c.abandon_rate) + " / " + percent(c.abandon_target)))),
      el("td", { class: "occupancy" }, percent(c.occupancy)),
      el("td", { class: "pacing" }, c.pacing_ratio === null ? "–" : c.pacing_ratio.toFixed(2)),
      el("td", {}, c.agents),
      el("td", {}, c.calls));
  });
  $("campaigns").replaceChildren(...rows);
  more("campaigns-more", body.campaigns_more, "more campaigns not shown");
}

function money(minor, currency) {
  try {
    const fmt = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = fmt.resolvedOptions().maximumFractionDigits;
    return fmt.format(minor / 10 ** digits);
  } catch (e) {
    return minor + " " + currency;
  }
}

function renderCards(body) {
  $("cards-section").hidden = body.low_cards === null;
  if (body.low_cards === null) return;
  const rows = body.low_cards.map((c) => el("tr", { "data-card": c.card, "data-tenant": c.tenant },
    el("td", {}, c.tenant), el("td", {}, c.card),
    el("td", { class: "num balance" + (c.balance < 0 ? " negative" : "") }, money(c.balance, c.currency)),
    el("td", { class: "num" }, money(c.held, c.currency))));
  $("low-cards").replaceChildren(...rows);
  more("low-cards-more", body.low_cards_more, "more cards not shown");
}

function more(id, count, words) {
  $(id).hidden = !count;
  $(id).textContent = count ? "+" + count + " " + words : "";
}

function renderErrors(errors) {
  const lines = Object.entries(errors || {}).map(([part, text]) => el("p", { "data-part": part }, part + ": " + text));
  $("errors").hidden = lines.length === 0;
  $("errors").replaceChildren(...lines);
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function render(body) {
  $("site").textContent = body.site;
  $("viewer").textContent = body.viewer.role + " · " + (body.viewer.site_wide ? "all tenants" : body.viewer.tenant);
  const atLimit = (body.tenants || []).filter((t) => t.at_limit).length + (body.trunks || []).filter((t) => t.at_limit).length;
  $("at-limit").textContent = body.tenants === null ? "–" : String(atLimit);
  renderErrors(body.errors);
  renderTenants(body);
  renderTrunks(body);
  renderDecisions(body);
  renderCampaigns(body);
  renderCards(body);
  $("updated").textContent = "updated " + new Date(body.at * 1000).toLocaleTimeString();
  lastSnapshotAt = Date.now();
  lastInterval = body.interval || 1;
  snapshots += 1;
  document.body.dataset.snapshots = String(snapshots);
  setStatus("live", "live");
}

function connect() {
  const source = new EventSource("/wallboard/events");
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.addEventListener("unavailable", (event) => {
    renderErrors(JSON.parse(event.data).errors);
    setStatus("unavailable", "gateway database unavailable");
  });
  source.addEventListener("revoked", () => {
    source.close();
    setStatus("revoked", "signed out: the token was revoked");
    setTimeout(() => window.location.assign("/wallboard"), 3000);
  });
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) setStatus("connecting", "reconnecting…");
    else setTimeout(() => window.location.assign("/wallboard"), 3000);
  };
}

setInterval(() => {
  if (lastSnapshotAt && Date.now() - lastSnapshotAt > 5000 * lastInterval) setStatus("stale", "no update for " + Math.round((Date.now() - lastSnapshotAt) / 1000) + " s");
}, 1000);
window.addEventListener("resize", () => drawDecisions($("decisions-chart"), lastMinutes));
connect();
