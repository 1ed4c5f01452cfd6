"use strict";
// The docs page: renders /api/v1/openapi.json with every $ref resolved, and lets a person
// send each operation from the browser. Plain DOM code, no library: the box is offline.
let DOC = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

// A deep copy of `node` with each {"$ref": ...} replaced by its component (a cycle stops).
function resolve(node, seen) {
  seen = seen || [];
  if (Array.isArray(node)) return node.map((n) => resolve(n, seen));
  if (!node || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    const name = node.$ref.split("/").pop();
    const { $ref, ...rest } = node;
    if (seen.includes(name)) return { title: name, description: "(recursive)", ...rest };
    const target = resolve(DOC.components.schemas[name] || {}, seen.concat([name]));
    return { ...target, ...resolve(rest, seen) };
  }
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = resolve(v, seen);
  return out;
}

// `X | null` (an optional field) reads as X.
function unwrap(s) {
  if (s && Array.isArray(s.anyOf)) {
    const real = s.anyOf.filter((x) => x.type !== "null");
    if (real.length === 1) {
      const { anyOf, ...rest } = s;
      return { ...real[0], ...rest, description: s.description || real[0].description };
    }
  }
  return s || {};
}

function typeName(s) {
  s = unwrap(s);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === "array") return typeName(s.items) + "[]";
  if (s.anyOf) return s.anyOf.map(typeName).join(" | ");
  if (s.type === "object" || s.properties) return "object";
  return s.type || "any";
}

function limits(s) {
  s = unwrap(s);
  const out = [];
  if (s.minimum !== undefined && s.maximum !== undefined) out.push(`${s.minimum} to ${s.maximum}`);
  else if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`);
  else if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`);
  if (s.maxLength !== undefined) out.push(`≤ ${s.maxLength} chars`);
  if (s.minItems !== undefined && s.minItems === s.maxItems) out.push(`exactly ${s.minItems} items`);
  else if (s.maxItems !== undefined) out.push(`≤ ${s.maxItems} items`);
  if (s.default !== undefined && s.default !== null) out.push(`default ${JSON.stringify(s.default)}`);
  return out.join("; ");
}

// Rows (dotted name, type, required, limits, description) of every field, nested ones too.
function fieldRows(schema, prefix, out) {
  const s = unwrap(schema);
  const required = s.required || [];
  for (const [key, prop] of Object.entries(s.properties || {})) {
    const name = prefix + key;
    const p = unwrap(prop);
    out.push([name, typeName(prop), required.includes(key), limits(prop), p.description || ""]);
    if (p.properties) fieldRows(p, name + ".", out);
    if (p.type === "array" && p.items && unwrap(p.items).properties)
      fieldRows(p.items, name + "[].", out);
  }
  return out;
}

// Text with `code` spans, as the descriptions write them.
function rich(text) {
  const span = el("span");
  String(text).split("`").forEach((part, i) => span.append(i % 2 ? el("code", {}, part) : part));
  return span;
}

function table(head, rows) {
  const t = el("table", {}, el("tr", {}, ...head.map((h) => el("th", {}, h))));
  for (const r of rows) t.append(el("tr", {}, ...r.map((c) => el("td", {}, c))));
  return t;
}

function fieldsTable(schema) {
  const rows = fieldRows(schema, "", []).map(([n, t, req, lim, d]) => [
    n, t, req ? el("span", { class: "req" }, "required") : "", lim, rich(d)]);
  return table(["field", "type", "", "limits", "description"], rows);
}

// Paths (key lists) of the image `data` strings of an example body: image.data, images[0].data…
function imagePaths(node, path, out) {
  if (Array.isArray(node)) node.forEach((v, i) => imagePaths(v, path.concat([i]), out));
  else if (node && typeof node === "object")
    for (const [k, v] of Object.entries(node)) {
      if (k === "data" && typeof v === "string") out.push(path.concat([k]));
      else imagePaths(v, path.concat([k]), out);
    }
  return out;
}

function pathLabel(path) {
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : (i ? "." : "") + k)).join("");
}

function setPath(obj, path, value) {
  let o = obj;
  path.slice(0, -1).forEach((k, i) => {
    if (o[k] === null || typeof o[k] !== "object") o[k] = typeof path[i + 1] === "number" ? [] : {};
    o = o[k];
  });
  o[path[path.length - 1]] = value;
}

function filePicker(path, textarea) {
  const label = pathLabel(path);
  const input = el("input", { type: "file", accept: "image/jpeg,image/png,image/gif",
    "data-path": label });
  const info = el("span", { class: "hint" });
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      let body;
      try {
        body = JSON.parse(textarea.value);
      } catch (e) {
        info.textContent = `the body is not valid JSON (${e.message}); fix it and pick again`;
        return;
      }
      setPath(body, path, url.slice(url.indexOf(",") + 1));  // drop "data:...;base64,"
      textarea.value = JSON.stringify(body, null, 2);
      info.textContent = ` ${file.name}, ${(file.size / 1024).toFixed(1)} kB → ${label}`;
    };
    reader.onerror = () => { info.textContent = "cannot read the file: " + reader.error; };
    reader.readAsDataURL(file);
  });
  return el("div", { class: "file" }, el("code", {}, label), input, info);
}

function paramInput(p) {
  const input = el("input", { type: "text", "data-param": p.name, "data-in": p.in,
    placeholder: p.description || typeName(p.schema) });
  return el("label", {}, el("code", {}, `${p.name} (${p.in}${p.required ? ", required" : ""}) `),
    input);
}

async function send(method, path, card) {
  const status = card.querySelector(".status");
  const out = card.querySelector(".response");
  let url = path;
  const query = new URLSearchParams();
  for (const input of card.querySelectorAll("input[data-param]")) {
    const v = input.value.trim();
    if (input.dataset.in === "path") url = url.replace(`{${input.dataset.param}}`,
      encodeURIComponent(v));
    else if (v !== "") query.append(input.dataset.param, v);
  }
  if ([...query].length) url += "?" + query;
  const headers = {};
  const key = document.getElementById("api-key").value.trim();
  if (key) headers["api-key"] = key;
  const init = { method, headers };
  const ta = card.querySelector("textarea");
  if (ta) {
    headers["content-type"] = "application/json";
    init.body = ta.value;
  }
  status.className = "status";
  delete status.dataset.code;  // set again once this answer arrives
  status.textContent = "sending…";
  out.textContent = "";
  try {
    const t0 = performance.now();
    const r = await fetch(url, init);
    const text = await r.text();
    const ms = Math.round(performance.now() - t0);
    status.className = "status " + (r.ok ? "ok" : "bad");
    status.textContent = `${r.status} ${r.statusText} · ${ms} ms · x-request-id ${
      r.headers.get("x-request-id") || "-"}`;
    status.dataset.code = String(r.status);
    let shown = text || "(empty body)";
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
    out.textContent = shown;
  } catch (e) {
    status.className = "status bad";
    status.textContent = "request failed: " + e;
  }
}

function operationCard(path, method, op) {
  const M = method.toUpperCase();
  const card = el("details", { class: "op", id: "op-" + op.operationId });
  const summary = el("summary", {}, el("span", { class: "m " + M }, M), el("code", {}, path),
    " — ", rich(op.summary || ""));
  if (!(op.security && op.security.length === 0))
    summary.append(el("span", { class: "lock" }, " [api-key]"));
  card.append(summary);
  if (op.description) card.append(el("p", {}, rich(op.description)));

  const trial = el("div", { class: "try" });
  for (const p of op.parameters || []) trial.append(paramInput(p));
  const body = op.requestBody && op.requestBody.content["application/json"];
  if (body) {
    const ta = el("textarea", { spellcheck: "false", wrap: "off", "aria-label": "request body" });
    ta.value = JSON.stringify(body.example || {}, null, 2);
    trial.append(el("div", { class: "hint" }, "request body (JSON):"), ta);
    for (const p of imagePaths(body.example || {}, [], [])) trial.append(filePicker(p, ta));
  }
  const button = el("button", { class: "send", type: "button" }, "Send");
  button.addEventListener("click", () => send(M, path, card));
  trial.append(button, el("span", { class: "status" }), el("pre", { class: "response" }));
  card.append(trial);

  if (body) {
    const schema = resolve(body.schema);
    card.append(el("h4", {}, "Request body fields"), fieldsTable(schema));
  }
  if (op.parameters && op.parameters.length)
    card.append(el("h4", {}, "Parameters"), table(["name", "in", "type", "limits", "description"],
      op.parameters.map((p) => [p.name, p.in, typeName(p.schema), limits(p.schema),
        rich(p.description || "")])));
  const rows = [];
  const shapes = [];
  for (const [st, r] of Object.entries(op.responses)) {
    rows.push([st, r["x-error-codes"] ? r.description : (r.description || "")]);
    const content = r.content && Object.values(r.content)[0];
    if (content && Number(st) < 400) shapes.push([st, resolve(content.schema)]);
  }
  card.append(el("h4", {}, "Responses"), table(["status", "meaning (error codes)"], rows));
  for (const [st, schema] of shapes)
    card.append(el("h4", {}, `${st} answer fields`), fieldsTable(schema));
  card.append(el("p", { class: "hint" }, "error bodies are always {code, name, message}"));
  return card;
}

function render(doc) {
  DOC = doc;
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  document.getElementById("desc").textContent = doc.info.description || "";
  const main = document.getElementById("ops");
  main.textContent = "";
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      (byTag[tag] = byTag[tag] || []).push([path, method, op]);
    }
  for (const [tag, ops] of Object.entries(byTag)) {
    main.append(el("h2", {}, tag));
    for (const [path, method, op] of ops) main.append(operationCard(path, method, op));
  }
  // a link to #op-… opens that operation
  const open = () => {
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target) target.open = true;
  };
  window.addEventListener("hashchange", open);
  open();
  document.body.dataset.ready = "1";
}

fetch("/api/v1/openapi.json")
  .then((r) => r.json())
  .then(render)
  .catch((e) => {
    document.getElementById("ops").textContent = "cannot load /api/v1/openapi.json: " + e;
  });
