// The dev console's page: plain JavaScript, no build step. It talks only to
// the console's own API (services-mock/src/console.rs), which calls the BFFs
// and the mocks; the page never holds a token.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { clients: [], inFlight: false, timer: null, history: [] };

// The fault fields the panel edits, as the mocks' `PUT /__faults` names them.
const FAULTS = [
  ["latencyMs", "latency ms", "number"],
  ["jitterMs", "jitter ms", "number"],
  ["slowRatio", "slow share", "share"],
  ["slowMs", "slow by ms", "number"],
  ["errorRatio", "error share", "share"],
  ["errorStatus", "error status", "status"],
  ["rateLimitRatio", "429 share", "share"],
  ["dropRatio", "dropped share", "share"],
];

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = { detail: text }; }
  return { ok: response.ok, status: response.status, json };
}

// ---- clients, callers, screens ----------------------------------------------

async function loadClients() {
  const answer = await api("GET", "/api/clients");
  state.clients = answer.json.clients;
  const select = $("#client");
  for (const client of state.clients) {
    select.append(el("option", { value: client.short, text: `${client.short} (${client.name}, ${client.auth})` }));
  }
  const wanted = new URLSearchParams(location.search).get("client");
  if (wanted && state.clients.some((c) => c.short === wanted || c.name === wanted)) {
    select.value = state.clients.find((c) => c.short === wanted || c.name === wanted).short;
  }
  await clientChanged();
}

function currentClient() {
  return state.clients.find((c) => c.short === $("#client").value);
}

async function clientChanged() {
  const client = currentClient();
  const callers = $("#caller");
  callers.replaceChildren(...client.callers.map((c) => el("option", { value: c.id, text: `${c.id} · ${c.label}` })));
  const wanted = new URLSearchParams(location.search).get("caller");
  if (wanted && client.callers.some((c) => c.id === wanted)) callers.value = wanted;
  const screens = $("#screen");
  screens.replaceChildren(el("option", { value: "", text: "loading…" }));
  $("#path").value = client.defaultPath;
  const answer = await api("GET", `/api/screens/${encodeURIComponent(client.short)}`);
  if (!answer.ok) {
    screens.replaceChildren(el("option", { value: "", text: "(no OpenAPI document)" }));
    showSummary(`Could not read ${client.name}'s screens: ${answer.json && answer.json.detail}`, "failed");
    return;
  }
  screens.replaceChildren(
    ...answer.json.screens.map((s) => el("option", { value: s.path, text: `${s.path}${s.summary ? " · " + s.summary : ""}` })),
  );
  if (answer.json.screens.some((s) => s.path === client.defaultPath)) screens.value = client.defaultPath;
}

function screenChanged() {
  const template = $("#screen").value;
  if (!template) return;
  // Fill the usual seeded ids in; anything else stays `{name}` to edit.
  $("#path").value = template.replace(/\{(\w+)\}/g, (whole, name) => {
    if (/product/.test(template) && name === "id") return "p-1";
    if (/users/.test(template) && name === "id") return "u-1";
    if (/rails/.test(template) && name === "id") return "on-sale";
    return whole;
  });
}

// ---- calling a screen -----------------------------------------------------------

async function send() {
  if (state.inFlight) return; // a repeat tick while the last call is still out
  const client = currentClient();
  const path = $("#path").value.trim();
  if (/\{\w+\}/.test(path)) {
    showSummary("Fill in the path's {parameters} first.", "failed");
    return;
  }
  state.inFlight = true;
  try {
    const answer = await api("POST", "/api/call", { client: client.short, caller: $("#caller").value, path });
    render(answer);
  } catch (error) {
    showSummary(`The console did not answer: ${error}`, "failed");
  } finally {
    state.inFlight = false;
  }
}

function render(answer) {
  if (!answer.ok) {
    // The console itself could not make the call (login failed, BFF down).
    showSummary(`Not called: ${answer.json && answer.json.detail}`, "failed");
    pushHistory("failed");
    $("#problem").hidden = true;
    $("#tiles").replaceChildren();
    $("#raw").textContent = JSON.stringify(answer.json, null, 2);
    return;
  }
  const call = answer.json;
  let body = call.bodyText;
  try { body = JSON.parse(call.bodyText); } catch (_) { /* not JSON: shown as text */ }
  const contentType = call.headers["content-type"] || "";
  const isProblem = contentType.startsWith("application/problem+json");
  const composed = body && typeof body === "object" && body.components && typeof body.components === "object";
  const outcome = call.status >= 400 ? "failed" : composed && body.degraded ? "degraded" : "ok";
  pushHistory(outcome);

  const requestId = call.headers["x-request-id"] || "";
  const parts = [
    el("span", { class: "status", "data-status": String(call.status), text: `${call.status}` }),
    ` · ${call.durationMs} ms`,
  ];
  if (composed) parts.push(` · degraded: ${body.degraded}`);
  if (requestId) parts.push(` · request id ${requestId}`);
  parts.push(` · ${new Date().toLocaleTimeString()}`);
  $("#summary").replaceChildren(...parts);
  $("#summary").dataset.outcome = outcome;

  renderProblem(isProblem ? body : null, call.status, requestId);
  if (isProblem) $("#tiles").replaceChildren();
  else renderTiles(composed ? body : null, call.serverTiming || []);
  $("#raw").textContent = `HTTP ${call.status}\n${Object.entries(call.headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join("\n")}\n\n${typeof body === "string" ? body : JSON.stringify(body, null, 2)}`;
}

function renderProblem(problem, status, requestId) {
  const box = $("#problem");
  if (!problem) {
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.code;
    return;
  }
  box.hidden = false;
  box.dataset.code = problem.code || "";
  const rows = [
    ["status", problem.status || status],
    ["code", problem.code],
    ["detail", problem.detail],
    ["instance", problem.instance],
    ["request id", requestId || undefined],
  ];
  box.replaceChildren(
    el("h3", { text: `${problem.title || "Problem"} — the screen failed` }),
    el("dl", {}, ...rows.filter(([, v]) => v !== undefined && v !== null).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])),
  );
}

function renderTiles(envelope, timings) {
  const tiles = $("#tiles");
  if (!envelope) {
    tiles.replaceChildren(el("p", { class: "note", text: "Not a composed answer (no components): see the raw answer below." }));
    return;
  }
  const timing = Object.fromEntries(timings.map((t) => [t.name, t]));
  tiles.replaceChildren(
    ...Object.entries(envelope.components).map(([name, component]) => {
      const rows = [];
      if (component.reasonCode) rows.push(["reason", component.reasonCode]);
      if (component.source) rows.push(["source", component.source]);
      if (component.ageMs !== undefined) rows.push(["age", `${(component.ageMs / 1000).toFixed(1)} s`]);
      const t = timing[name];
      rows.push(["duration", t && t.durMs !== undefined && t.durMs !== null ? `${t.durMs} ms` : "—"]);
      return el(
        "article",
        { class: "tile", "data-component": name, "data-status": component.status, "data-reason": component.reasonCode || "" },
        el("h3", { text: name }),
        el("span", { class: "badge", text: component.status }),
        el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { class: k, text: v })])),
      );
    }),
  );
}

function showSummary(text, outcome) {
  $("#summary").textContent = text;
  $("#summary").dataset.outcome = outcome;
}

function pushHistory(outcome) {
  state.history.push(outcome);
  if (state.history.length > 40) state.history.shift();
  $("#history").replaceChildren(...state.history.map((o) => el("li", { class: o, title: o })));
}

function repeatChanged() {
  clearInterval(state.timer);
  state.timer = null;
  if ($("#repeat").checked) {
    send();
    state.timer = setInterval(send, 1000);
  }
}

// ---- mocks ------------------------------------------------------------------------

const isDefault = (faults) =>
  !faults ||
  FAULTS.every(([key]) => !faults[key]) && !faults.badData && !faults.errorFirst && !faults.slowEvery && !faults.afterWriteMs;

function mockPanel(mock) {
  const form = el("form", { "data-mock-form": mock.name });
  for (const [key, label, kind] of FAULTS) {
    const attributes = { name: key, type: "number", min: "0" };
    if (kind === "share") Object.assign(attributes, { step: "0.05", max: "1", placeholder: "0–1" });
    if (kind === "status") Object.assign(attributes, { min: "400", max: "599", placeholder: "503" });
    form.append(el("label", {}, label, el("input", attributes)));
  }
  form.append(
    el("label", { class: "check" }, el("input", { name: "badData", type: "checkbox" }), "bad data"),
    el(
      "div",
      { class: "buttons" },
      el("button", { type: "submit", class: "apply", text: "Apply" }),
      el("button", { type: "button", class: "reset secondary", text: "Reset" }),
      el("span", { class: "message" }),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFaults(mock.name, form);
  });
  form.querySelector(".reset").addEventListener("click", () => resetFaults(mock.name, form));
  fillForm(form, mock.faults);
  return el(
    "div",
    { class: "mock", "data-mock": mock.name },
    el(
      "div",
      { class: "head" },
      el("span", { class: "name", text: mock.name }),
      el("span", { class: "stats", text: "" }),
    ),
    el("details", {}, el("summary", { text: "faults" }), form),
  );
}

function fillForm(form, faults) {
  for (const [key] of FAULTS) form.elements[key].value = faults && faults[key] ? faults[key] : "";
  form.elements.badData.checked = Boolean(faults && faults.badData);
}

async function applyFaults(name, form) {
  const faults = {};
  for (const [key, , kind] of FAULTS) {
    const raw = form.elements[key].value.trim();
    if (raw === "") continue;
    faults[key] = kind === "share" ? Number(raw) : Math.round(Number(raw));
  }
  if (form.elements.badData.checked) faults.badData = true;
  const answer = await api("PUT", `/api/mocks/${encodeURIComponent(name)}/faults`, faults);
  // The mock's own explanation when it refuses (a share above 1, ...).
  form.querySelector(".message").textContent = answer.ok ? "" : JSON.stringify(answer.json);
  form.dataset.applied = answer.ok ? "yes" : "no";
  await refreshMocks();
}

async function resetFaults(name, form) {
  await api("DELETE", `/api/mocks/${encodeURIComponent(name)}/faults`);
  fillForm(form, null);
  form.querySelector(".message").textContent = "";
  await refreshMocks();
}

async function refreshMocks() {
  let answer;
  try {
    answer = await api("GET", "/api/mocks");
  } catch (_) {
    return;
  }
  const container = $("#mocks");
  for (const mock of answer.json.mocks) {
    let panel = container.querySelector(`[data-mock="${mock.name}"]`);
    if (!panel) {
      panel = mockPanel(mock);
      container.append(panel);
    }
    panel.classList.toggle("down", !mock.up);
    panel.classList.toggle("faulty", mock.up && !isDefault(mock.faults));
    const stats = mock.stats;
    panel.querySelector(".stats").textContent = stats
      ? `${stats.total} request${stats.total === 1 ? "" : "s"} · ${stats.inFlight} in flight (max ${stats.maxInFlight})`
      : "";
  }
}

async function resetAll() {
  const panels = [...document.querySelectorAll("[data-mock]")];
  await Promise.all(panels.map((panel) => resetFaults(panel.dataset.mock, panel.querySelector("form"))));
}

// ---- start ----------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("#client").addEventListener("change", clientChanged);
  $("#screen").addEventListener("change", screenChanged);
  $("#request").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("#repeat").addEventListener("change", repeatChanged);
  $("#reset-all").addEventListener("click", resetAll);
  await Promise.all([loadClients(), refreshMocks()]);
  setInterval(refreshMocks, 1000);
  await send(); // the default screen at once: something to look at
  document.body.dataset.ready = "yes";
});
