"use strict";
// edge-face console: plain JavaScript, no library. Every call goes to this box's public
// REST API (the session cookie + the x-csrf-token header stand for the api-key, which
// never reaches this page). Photos are read, drawn and encoded here and sent only in the
// request body; nothing keeps them after the page forgets them.
(() => {
  const PAGE = document.body.dataset.page;
  const main = document.getElementById("main");
  let session = null;
  let faceModel = null;
  let liveModel = null;

  // Contract codes (api.md §1) as sentences a person can act on.
  const SENTENCES = {
    110: "Something required is missing.",
    111: "The request was malformed.",
    112: "A value is not allowed.",
    113: "Something it refers to does not exist.",
    116: "A name is used twice.",
    214: "That file is not an image the box can read.",
    215: "That image format is not supported: use a JPG, PNG or GIF.",
    216: "The photo is black and white: use a colour photo.",
    217: "The photo has too many pixels: use a smaller one.",
    219: "Not enough photos for this check.",
    223: "No face was found in the photo.",
    224: "The face is too small: use a closer photo.",
    401: "You are not signed in, or the key is not valid.",
    404: "It no longer exists (deleted or expired).",
    408: "The upload took too long.",
    413: "The photo is too large (the limit is 5 MB).",
    415: "The box could not read this request.",
    429: "The box is busy: try again in a moment.",
    500: "The box hit an internal error; its log has the details.",
    503: "The box is not ready yet (models are loading) or is shutting down.",
  };

  class ApiError extends Error {
    constructor(status, body) {
      const code = body && typeof body.code === "number" ? body.code : status;
      super(SENTENCES[code] || `The box answered ${status}.`);
      this.status = status;
      this.code = code;
      this.detail = body && body.message ? String(body.message) : "";
    }
  }

  // DOM helpers ---------------------------------------------------------------------------
  function el(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "data") Object.assign(node.dataset, v);
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }
  const $ = (sel, root = document) => root.querySelector(sel);
  const fmt = (n, d = 2) => (typeof n === "number" ? n.toFixed(d) : "–");
  const day = (iso) => (iso ? iso.replace("T", " ").replace(/:\d\dZ$/, "").replace("Z", "") : "–");
  const num = (n) => (typeof n === "number" ? Number(n.toPrecision(2)).toString() : "–");
  const never = (iso) => !iso || iso.startsWith("3000-");

  function flash(text, bad) {
    const f = document.getElementById("flash");
    f.textContent = text;
    f.className = bad ? "bad" : "";
    f.hidden = false;
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { f.hidden = true; }, bad ? 9000 : 4000);
  }

  function errorBox(err) {
    const box = el("div", { class: "error", role: "alert" }, err.message || String(err));
    if (err.detail) box.append(el("small", { text: err.detail }));
    if (err.code) box.dataset.code = String(err.code);
    return box;
  }

  // REST ----------------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { "x-csrf-token": session ? session.csrf : "" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_e) { data = text; }
    if (!resp.ok) {
      const err = new ApiError(resp.status, data);
      if (resp.status === 401 && PAGE !== "signin") {
        location.assign("/console/signin");
      }
      throw err;
    }
    return data;
  }

  async function loadModels() {
    const data = await api("GET", "/api/v1/models");
    faceModel = data.models.find((m) => m.entity === "faces") || null;
    liveModel = data.models.find((m) => m.entity === "liveness") || null;
    return data.models;
  }

  function readFile(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(String(r.result));
      r.onerror = () => reject(new Error("the browser could not read " + file.name));
      r.readAsDataURL(file);
    });
  }
  const b64 = (dataUrl) => dataUrl.slice(dataUrl.indexOf(",") + 1);

  function dropZone(input, label) {
    const zone = el("label", { class: "drop" }, label, input);
    input.classList.add("visually-hidden");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    });
    return zone;
  }

  // Sign in -------------------------------------------------------------------------------
  function signinPage() {
    const key = el("input", {
      id: "api-key", type: "password", autocomplete: "off", spellcheck: "false",
      placeholder: "paste an api-key of this box",
    });
    const out = el("div", { id: "signin-error" });
    const btn = el("button", { id: "signin-btn", type: "submit" }, "Sign in");
    const form = el("form", { class: "card signin", id: "signin" },
      el("h1", { text: "Sign in to edge-face" }),
      el("p", { class: "hint" }, "Use an api-key of this box. The key stays on the box: ",
        "this browser keeps only a session cookie."),
      el("label", { for: "api-key" }, "api-key"), key,
      el("p", {}, btn), out);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      out.replaceChildren();
      btn.disabled = true;
      try {
        await api("POST", "/console/session", { apiKey: key.value });
        location.assign("/console/people");
      } catch (err) {
        out.append(errorBox(err));
        btn.disabled = false;
      }
    });
    main.replaceChildren(form);
    key.focus();
  }

  // People --------------------------------------------------------------------------------
  async function listAll() {
    const out = [];
    let after = "";
    for (let i = 0; i < 20; i++) {
      const q = new URLSearchParams({ limit: "1000" });
      if (after) q.set("after", after);
      const page = await api("GET", "/api/v1/entities/faces?" + q);
      out.push(...page.entities);
      if (!page.nextAfter) break;
      after = page.nextAfter;
    }
    return out;
  }

  function groupByKey(entities) {
    const people = new Map();
    for (const e of entities) {
      const p = people.get(e.key) || { key: e.key, items: [] };
      p.items.push(e);
      people.set(e.key, p);
    }
    return [...people.values()].sort((a, b) => a.key.localeCompare(b.key));
  }

  function parseMetadata(text) {
    const items = [];
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line) continue;
      const at = line.indexOf("=");
      if (at < 1) throw new Error(`"${line}": write each item as name=value`);
      const name = line.slice(0, at).trim();
      const v = line.slice(at + 1).trim();
      if (/^(true|false)$/.test(v)) items.push({ name, type: "boolean", value: v === "true" });
      else if (/^-?\d+$/.test(v)) items.push({ name, type: "integer", value: Number(v) });
      else if (/^-?\d*\.\d+$/.test(v)) items.push({ name, type: "float", value: Number(v) });
      else items.push({ name, type: "string", value: v });
    }
    return items;
  }
  const showMetadata = (md) => md.map((m) => `${m.name}=${m.value}`).join("\n");

  async function peoplePage() {
    const keyIn = el("input", { id: "enrol-key", type: "text", placeholder: "e.g. alice", maxlength: "256" });
    const colIn = el("input", { id: "enrol-collection", type: "text", placeholder: "optional, e.g. staff", maxlength: "256" });
    const files = el("input", { id: "enrol-files", type: "file", accept: "image/jpeg,image/png,image/gif", multiple: true });
    const thumbs = el("div", { class: "thumbs" });
    const results = el("ul", { id: "enrol-results" });
    const enrolBtn = el("button", { id: "enrol-btn", type: "button" }, "Enrol");
    files.addEventListener("change", () => {
      for (const img of thumbs.querySelectorAll("img")) URL.revokeObjectURL(img.src);
      thumbs.replaceChildren(...[...files.files].map((f) => el("img", { src: URL.createObjectURL(f), alt: f.name })));
    });
    enrolBtn.addEventListener("click", async () => {
      results.replaceChildren();
      if (!keyIn.value.trim()) { results.append(el("li", { class: "error", text: "Give the person a name first." })); return; }
      if (!files.files.length) { results.append(el("li", { class: "error", text: "Pick one or more photos of the person." })); return; }
      enrolBtn.disabled = true;
      let done = 0;
      for (const f of files.files) {
        const li = el("li", {}, f.name + ": enrolling…");
        results.append(li);
        try {
          const data = b64(await readFile(f));
          await api("POST", "/api/v1/entities/faces", {
            model: faceModel.name, image: { data }, key: keyIn.value.trim(), collection: colIn.value.trim(),
          });
          li.replaceChildren(el("span", { class: "ok", text: `${f.name}: enrolled` }));
          done++;
        } catch (err) {
          li.replaceChildren(f.name + ": ", errorBox(err));
        }
      }
      enrolBtn.disabled = false;
      if (done) {
        flash(`${keyIn.value.trim()}: ${done} photo(s) enrolled`);
        files.value = "";
        thumbs.replaceChildren();
        await refresh();
      }
    });

    const enrolCard = el("section", { class: "card" }, el("h2", { text: "Enrol a person" }),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "enrol-key" }, "Name (key)"), keyIn),
        el("div", {}, el("label", { for: "enrol-collection" }, "Collection"), colIn)),
      el("label", {}, "Photos (one face each; several at once is fine)"),
      dropZone(files, "Drop photos here or click to choose"), thumbs,
      el("p", {}, enrolBtn, " ", el("span", { class: "hint", text: "Photos are sent once to be analysed and are not kept." })),
      results);
    if (session.cameras.length) {
      const cam = el("select", { id: "enrol-camera" }, session.cameras.map((c) => el("option", { value: c }, c)));
      const camBtn = el("button", { type: "button", class: "quiet", id: "enrol-camera-btn" }, "Enrol the person in front of the camera");
      camBtn.addEventListener("click", async () => {
        results.replaceChildren();
        if (!keyIn.value.trim()) { results.append(el("li", { class: "error", text: "Give the person a name first." })); return; }
        camBtn.disabled = true;
        try {
          await api("POST", `/console/cameras/${encodeURIComponent(cam.value)}/enroll`, { key: keyIn.value.trim(), collection: colIn.value.trim() });
          flash(`${keyIn.value.trim()}: enrolled from camera ${cam.value}`);
          await refresh();
        } catch (err) { results.append(el("li", {}, errorBox(err))); }
        camBtn.disabled = false;
      });
      enrolCard.append(el("div", { class: "row" }, el("div", {}, el("label", { for: "enrol-camera" }, "Or from a camera"), cam), camBtn));
    }

    const filter = el("input", { id: "people-filter", type: "search", placeholder: "Filter by name or collection" });
    const body = el("tbody", { id: "people" });
    const count = el("span", { class: "muted" });
    const table = el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ["Name", "Photos", "Collections", "Metadata", "Created", "Updated", "Expires", ""].map(
        (h, i) => el("th", { class: i >= 3 && i <= 6 ? "hide-sm" : null, text: h })))), body));
    main.replaceChildren(el("h1", {}, "People ", count), enrolCard,
      el("section", { class: "card" }, filter, table));

    let people = [];
    const open = new Set();
    async function refresh() {
      try {
        people = groupByKey(await listAll());
      } catch (err) {
        body.replaceChildren(el("tr", {}, el("td", { colspan: "8" }, errorBox(err))));
        return;
      }
      render();
    }

    async function each(person, fn, what) {
      try {
        for (const e of person.items) await fn(e);
        flash(what);
      } catch (err) {
        flash(`${err.message} ${err.detail || ""}`, true);
      }
      await refresh();
    }

    function editor(person, field, value, save) {
      const input = field === "metadata"
        ? el("textarea", { class: "edit-value", placeholder: "name=value, one per line" }, value)
        : el("input", { class: "edit-value", type: "text", value, maxlength: "256" });
      const err = el("div");
      const ok = el("button", { type: "button", class: "small save" }, "Save");
      const cancel = el("button", { type: "button", class: "small quiet" }, "Cancel");
      const row = el("tr", { class: "sub editor" }, el("td", { colspan: "8" },
        el("label", {}, { key: "New name", collection: "Move to collection", metadata: "Metadata (replaces the list)" }[field]),
        input, err, el("p", {}, ok, " ", cancel)));
      cancel.addEventListener("click", () => row.remove());
      ok.addEventListener("click", async () => {
        err.replaceChildren();
        let v = input.value;
        try { if (field === "metadata") v = parseMetadata(v); } catch (e) { err.append(errorBox(e)); return; }
        ok.disabled = true;
        await save(v);
      });
      return row;
    }

    function armed(btn, label, action) {
      btn.addEventListener("click", async () => {
        if (!btn.classList.contains("armed")) {
          btn.classList.add("armed");
          btn.textContent = label;
          setTimeout(() => { btn.classList.remove("armed"); btn.textContent = btn.dataset.label; }, 4000);
          return;
        }
        btn.disabled = true;
        await action();
      });
      btn.dataset.label = btn.textContent;
      return btn;
    }

    function render() {
      const q = filter.value.trim().toLowerCase();
      const shown = people.filter((p) => !q || p.key.toLowerCase().includes(q)
        || p.items.some((e) => e.collection.toLowerCase().includes(q)));
      const photos = people.reduce((n, p) => n + p.items.length, 0);
      count.textContent = `· ${people.length} (${photos} photos)`;
      if (!people.length) {
        body.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "empty", id: "people-empty" },
          "No one is enrolled yet. Add a name and a photo above; the person appears here.")));
        return;
      }
      const rows = [];
      for (const p of shown) {
        const name = p.key || "(no name)";
        const cols = [...new Set(p.items.map((e) => e.collection))];
        const md = p.items[0].metadata;
        const created = p.items.map((e) => e.createdAt).sort()[0];
        const updated = p.items.map((e) => e.updatedAt).sort().at(-1);
        const expires = p.items.map((e) => e.expiresAt).sort()[0];
        const tr = el("tr", { class: "person", data: { key: p.key } },
          el("td", {}, el("button", { type: "button", class: "small quiet toggle", title: "show photos" }, open.has(p.key) ? "▾" : "▸"), " ", el("b", { class: "name", text: name })),
          el("td", { class: "count", text: String(p.items.length) }),
          el("td", {}, cols.map((c) => el("span", { class: "tag", text: c || "(none)" }))),
          el("td", { class: "hide-sm mono", text: md.length ? showMetadata(md).replace(/\n/g, ", ") : "–" }),
          el("td", { class: "hide-sm", text: day(created) }),
          el("td", { class: "hide-sm", text: day(updated) }),
          el("td", { class: "hide-sm", text: never(expires) ? "never" : day(expires) }),
          el("td", { class: "actions" }));
        const actions = tr.lastChild;
        const add = (cls, label, field, value) => {
          const b = el("button", { type: "button", class: "small " + cls }, label);
          b.addEventListener("click", () => {
            tr.parentNode.querySelectorAll("tr.editor").forEach((r) => r.remove());
            tr.after(editor(p, field, value, (v) => each(p,
              (e) => api("PATCH", `/api/v1/entities/faces/${e.uuid}`, { [field]: v }),
              `${name}: ${field === "key" ? "renamed" : field + " saved"}`)));
          });
          actions.append(b);
        };
        add("rename", "Rename", "key", p.key);
        add("move", "Collection", "collection", cols[0] || "");
        add("meta", "Metadata", "metadata", showMetadata(md));
        actions.append(armed(el("button", { type: "button", class: "small danger delete-person" }, "Delete"),
          "Confirm delete", () => each(p, (e) => api("DELETE", `/api/v1/entities/faces/${e.uuid}`), `${name}: deleted`)));
        tr.querySelector(".toggle").addEventListener("click", () => {
          if (open.has(p.key)) open.delete(p.key); else open.add(p.key);
          render();
        });
        rows.push(tr);
        if (open.has(p.key)) {
          for (const e of p.items) {
            const del = armed(el("button", { type: "button", class: "small danger delete-one" }, "Delete photo"), "Confirm",
              async () => {
                try { await api("DELETE", `/api/v1/entities/faces/${e.uuid}`); flash(`${name}: one photo deleted`); }
                catch (err) { flash(err.message, true); }
                await refresh();
              });
            rows.push(el("tr", { class: "sub enrolment", data: { uuid: e.uuid } },
              el("td", { colspan: "2", class: "mono", text: e.uuid }),
              el("td", {}, el("span", { class: "tag", text: e.collection || "(none)" })),
              el("td", { class: "hide-sm", text: e.model }),
              el("td", { class: "hide-sm", text: day(e.createdAt) }),
              el("td", { class: "hide-sm", text: day(e.updatedAt) }),
              el("td", { class: "hide-sm", text: never(e.expiresAt) ? "never" : day(e.expiresAt) }),
              el("td", { class: "actions" }, del)));
          }
        }
      }
      if (!shown.length) rows.push(el("tr", {}, el("td", { colspan: "8", class: "empty", text: "No one matches the filter." })));
      body.replaceChildren(...rows);
    }
    filter.addEventListener("input", render);
    await refresh();
  }

  // Try it --------------------------------------------------------------------------------
  const ALL = { position: true, angle: true, landmarks: true, quality: true, attributes: true };

  function drawFaces(canvas, img, faces) {
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    canvas.width = w;
    canvas.height = h;
    const g = canvas.getContext("2d");
    g.drawImage(img, 0, 0);
    const unit = Math.max(2, Math.round(Math.max(w, h) / 400));
    faces.forEach((f, i) => {
      const d = f.details || {};
      const p = d.position;
      if (!p) return;
      g.lineWidth = unit;
      g.strokeStyle = i === 0 ? "#22c55e" : "#3b82f6";
      g.strokeRect(p.left, p.top, p.width, p.height);
      g.fillStyle = g.strokeStyle;
      g.font = `bold ${unit * 8}px system-ui,sans-serif`;
      g.fillText(String(i + 1), p.left + unit, Math.max(unit * 8, p.top - unit * 2));
      // Pose, quality and attributes under the box, on a dark band so they read on any photo.
      const lines = [];
      if (d.angle) {
        const a = d.angle;
        lines.push(`yaw ${fmt(a.yaw, 0)}°  pitch ${fmt(a.pitch, 0)}°  roll ${fmt(a.roll, 0)}°`);
      }
      if (d.quality) {
        const q = d.quality;
        const c = q.completeness ? `  complete ${fmt(q.completeness.total)}` : "";
        lines.push(`sharpness ${fmt(q.sharpness)}  brightness ${fmt(q.brightness)}${c}`);
      }
      const at = d.attributes || {};
      const attrs = [];
      if (at.age) attrs.push(`age ${at.age.value}`);
      for (const name of ["gender", "mask", "glasses"]) if (at[name]) attrs.push(`${name} ${at[name].value}`);
      if (attrs.length) lines.push(attrs.join("  "));
      if (lines.length) {
        const size = unit * 9;
        const step = size * 1.3;
        g.font = `${size}px system-ui,sans-serif`;
        const bandH = step * lines.length + size * 0.4;
        const y = Math.max(0, Math.min(h - bandH, p.top + p.height + unit * 2));
        const band = Math.max(...lines.map((t) => g.measureText(t).width)) + size;
        const x = Math.max(0, Math.min(p.left, w - band));
        g.fillStyle = "rgba(0,0,0,.65)";
        g.fillRect(x, y, band, bandH);
        g.fillStyle = "#fff";
        lines.forEach((t, k) => g.fillText(t, x + size / 2, y + step * (k + 1) - size * 0.15));
      }
      g.fillStyle = "#facc15";
      const dot = unit * 1.5;
      for (const pt of d.landmarks || []) g.fillRect(pt.x - dot / 2, pt.y - dot / 2, dot, dot);
    });
  }

  function faceCard(f, i) {
    const d = f.details || {};
    const a = d.angle || {};
    const q = d.quality || {};
    const at = d.attributes || {};
    const rows = [
      ["Box", d.position ? `${d.position.width}×${d.position.height} at (${d.position.left}, ${d.position.top})` : "–"],
      ["Pose", d.angle ? `yaw ${fmt(a.yaw, 0)}°, pitch ${fmt(a.pitch, 0)}°, roll ${fmt(a.roll, 0)}°` : "–"],
      ["Landmarks", d.landmarks ? `${d.landmarks.length} points` : "–"],
      ["Sharpness", fmt(q.sharpness)], ["Brightness", fmt(q.brightness)],
      ["Completeness", q.completeness ? fmt(q.completeness.total) : "–"],
    ];
    if (at.age) rows.push(["Age", `${at.age.value} (${at.age.lowerLimit}–${at.age.upperLimit})`]);
    for (const name of ["gender", "mask", "glasses", "hat", "facialHair"]) {
      if (at[name]) rows.push([name, `${at[name].value} (${fmt(at[name].certainty)})`]);
    }
    if (at.emotions) {
      const top = [...at.emotions].sort((x, y) => y.certainty - x.certainty)[0];
      rows.push(["Emotion", `${top.value} (${fmt(top.certainty)})`]);
    }
    return el("div", { class: "card face" }, el("h2", { text: `Face ${i + 1}` }),
      el("dl", { class: "kv" }, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
  }

  async function tryPage() {
    const input = el("input", { id: "try-file", type: "file", accept: "image/jpeg,image/png,image/gif" });
    const canvas = el("canvas", { id: "try-canvas", width: "640", height: "360" });
    const verdict = el("div", { id: "try-verdict" }, el("p", { class: "muted", text: "Pick a photo to see what the box finds." }));
    const matches = el("div", { id: "try-matches" });
    const live = el("div", { id: "try-liveness" });
    const faces = el("div", { id: "try-faces", class: "grid" });
    main.replaceChildren(el("h1", { text: "Try it" }),
      el("section", { class: "card" }, dropZone(input, "Drop a photo here or click to choose"),
        el("p", { class: "hint", text: "The photo stays in this browser; the box analyses it and forgets it." })),
      el("div", { class: "grid" },
        el("section", { class: "card stage" }, canvas),
        el("section", { class: "card" }, el("h2", { text: "Who is it?" }), verdict, matches, el("h2", { text: "Liveness" }), live)),
      faces);

    input.addEventListener("change", async () => {
      const file = input.files[0];
      if (!file) return;
      verdict.replaceChildren(el("p", { class: "muted", text: "Analysing…" }));
      matches.replaceChildren(); live.replaceChildren(); faces.replaceChildren();
      let dataUrl;
      try { dataUrl = await readFile(file); } catch (err) { verdict.replaceChildren(errorBox(err)); return; }
      const img = new Image();
      img.src = dataUrl;
      await img.decode().catch(() => null);
      const image = { data: b64(dataUrl) };
      const threshold = faceModel ? faceModel.recommendedThreshold : 0.9;
      const [det, hit, spoof] = await Promise.allSettled([
        api("POST", "/api/v1/entities/faces/detect", { model: faceModel.name, image: { ...image, returnDetails: ALL } }),
        api("POST", "/api/v1/entities/faces/search", { model: faceModel.name, image, maxEntities: 5, threshold: 0 }),
        liveModel ? api("POST", "/api/v1/liveness", { model: liveModel.name, images: [{ index: 0, type: "RGB", data: image.data }] })
          : Promise.reject(new Error("This box has no liveness model.")),
      ]);
      if (det.status === "fulfilled") {
        if (img.naturalWidth) drawFaces(canvas, img, det.value.entities);
        det.value.entities.forEach((f, i) => faces.append(faceCard(f, i)));
        if (!det.value.entities.length) faces.append(el("p", { class: "card empty", text: "No face was found in the photo." }));
      } else {
        faces.append(el("div", { class: "card" }, errorBox(det.reason)));
      }
      if (hit.status === "fulfilled") {
        const found = [];  // one line per person: the best of their enrolments
        for (const e of hit.value.entitiesFound) if (!found.some((f) => f.key === e.key)) found.push(e);
        const best = found[0];
        if (best && best.similarityScore >= threshold) {
          verdict.replaceChildren(el("p", { class: "big ok", data: { key: best.key } }, best.key || "(no name)"),
            el("p", { class: "hint", text: `score ${fmt(best.similarityScore, 3)} ≥ recommended threshold ${fmt(threshold)}` }));
        } else {
          verdict.replaceChildren(el("p", { class: "big muted", data: { key: "" } }, "Not recognised"),
            el("p", { class: "hint", text: best ? `best score ${fmt(best.similarityScore, 3)} < threshold ${fmt(threshold)}` : "nobody is enrolled with this model" }));
        }
        if (found.length) {
          matches.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "Candidate" }), el("th", { text: "Score" }), el("th", { text: "" }))),
            el("tbody", {}, found.map((e) => el("tr", {}, el("td", { text: e.key || "(no name)" }), el("td", { text: fmt(e.similarityScore, 3) }),
              el("td", {}, el("span", { class: e.similarityScore >= threshold ? "pill ok" : "pill", text: e.similarityScore >= threshold ? "match" : "below" })))))));
        }
      } else {
        verdict.replaceChildren(errorBox(hit.reason));
      }
      if (spoof.status === "fulfilled") {
        const t = liveModel.recommendedThreshold;
        const isSpoof = spoof.value.spoofScore >= t;
        live.append(el("p", {}, el("span", { class: isSpoof ? "pill bad" : "pill ok", id: "try-live-verdict", text: isSpoof ? "spoof" : "live" }),
          ` spoof score ${fmt(spoof.value.spoofScore, 3)} (spoof at ≥ ${fmt(t)})`));
      } else {
        live.append(errorBox(spoof.reason));
      }
    });
  }

  // Live ----------------------------------------------------------------------------------
  async function livePage() {
    const cams = el("div", { id: "cameras", class: "grid" });
    const state = el("span", { id: "stream-state", class: "pill warn", text: "connecting" });
    const body = el("tbody", { id: "events" });
    const empty = el("tr", { id: "events-empty" }, el("td", { colspan: "7", class: "empty",
      text: session.cameras.length ? "Waiting for someone to walk past a camera…" : "No camera is configured for this api-key's instance (cameras: in the config)." }));
    body.append(empty);
    main.replaceChildren(el("h1", {}, "Live ", state),
      cams,
      el("section", { class: "card scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, ["Time", "Camera", "Decision", "Person", "Score", "Liveness", "Latency"].map((h) => el("th", { text: h })))),
        body)));

    const last = new Map();
    async function pollCameras() {
      try {
        const data = await api("GET", "/console/cameras");
        const now = performance.now();
        cams.replaceChildren(...data.cameras.map((c) => {
          const prev = last.get(c.name);
          const dt = prev ? (now - prev.t) / 1000 : 0;
          const proc = prev && dt > 0 ? (c.framesProcessed - prev.p) / dt : 0;
          last.set(c.name, { t: now, p: c.framesProcessed });
          const cls = c.state === "streaming" ? "pill ok" : c.state === "reconnecting" ? "pill bad" : "pill warn";
          return el("section", { class: "card camera", data: { camera: c.name } },
            el("h2", {}, c.name, " ", el("span", { class: cls, text: c.state })),
            el("dl", { class: "kv" },
              el("dt", { text: "fps read" }), el("dd", { text: fmt(c.fps, 1) }),
              el("dt", { text: "fps analysed" }), el("dd", { text: fmt(proc, 1) }),
              el("dt", { text: "frames read / dropped" }), el("dd", { text: `${c.framesRead} / ${c.framesDropped}` }),
              el("dt", { text: "reconnects" }), el("dd", { text: String(c.reconnects) }),
              el("dt", { text: "events" }), el("dd", { text: String(c.events) }),
              el("dt", { text: "last error" }), el("dd", { class: c.lastError ? "bad" : "muted", text: c.lastError || "none" })));
        }));
      } catch (err) {
        cams.replaceChildren(el("div", { class: "card" }, errorBox(err)));
      }
    }
    await pollCameras();
    setInterval(pollCameras, 2000);

    const src = new EventSource("/console/events");
    src.addEventListener("open", () => { state.textContent = "connected"; state.className = "pill ok"; });
    src.addEventListener("error", () => { state.textContent = "reconnecting"; state.className = "pill warn"; });
    src.addEventListener("recognition", (msg) => {
      const ev = JSON.parse(msg.data);
      empty.remove();
      const m = ev.match;
      const lv = ev.liveness;
      const lvCls = lv.verdict === "live" ? "pill ok" : lv.verdict === "spoof" ? "pill bad" : "pill";
      body.prepend(el("tr", { class: "event", data: { decision: ev.decision, key: m ? m.key : "" } },
        el("td", { text: ev.time.slice(11, 23) }),
        el("td", { text: ev.camera }),
        el("td", {}, el("span", { class: ev.decision === "known" ? "pill ok" : "pill", text: ev.decision })),
        el("td", { class: "person", text: m ? (m.key || "(no name)") : "–" }),
        el("td", { text: m ? fmt(m.score, 3) : "–" }),
        el("td", {}, el("span", { class: lvCls, text: lv.verdict })),
        el("td", { text: `${Math.round(ev.latencyMs)} ms` })));
      while (body.children.length > 100) body.lastChild.remove();
    });
  }

  // Health --------------------------------------------------------------------------------
  function metricSum(text, name, filter) {
    let total = 0;
    let seen = false;
    for (const line of text.split("\n")) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      if (filter && !filter(m[2] || "")) continue;
      total += Number(m[3]);
      seen = true;
    }
    return seen ? total : null;
  }

  async function healthPage() {
    const ready = el("section", { class: "card", id: "health-ready" }, el("h2", { text: "Readiness" }));
    const models = el("section", { class: "card", id: "health-models" }, el("h2", { text: "Models" }));
    const figures = el("section", { class: "card", id: "health-metrics" }, el("h2", { text: "Key figures (/metrics)" }));
    const sync = el("section", { class: "card", id: "health-sync" }, el("h2", { text: "Fleet sync" }),
      el("p", { class: session.sync.enabled ? "" : "muted", text: session.sync.enabled ? "enabled" : "not configured on this box" }));
    main.replaceChildren(el("h1", { text: "Health" }), el("div", { class: "grid" }, ready, sync, figures), models);

    try {
      await api("GET", "/readyz");
      ready.append(el("p", { class: "big ok", text: "Ready" }), el("p", { class: "hint", text: "models loaded and warmed up" }));
    } catch (err) {
      ready.append(el("p", { class: "big bad", text: "Not ready" }), errorBox(err));
    }
    try {
      const list = await loadModels();
      for (const m of list) {
        const meas = m.measured || {};
        const rate = m.entity === "faces"
          ? `FAR ${num(meas.far)}, TAR ${num(meas.tar)}` : `APCER ${num(meas.apcer)}, BPCER ${num(meas.bpcer)}`;
        models.append(el("h2", {}, m.name, " ", el("span", { class: "hint", text: `${m.entity} · aliases ${(m.aliases || []).join(", ") || "none"} · threshold ${m.recommendedThreshold} · ${rate}` })),
          el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, ["Role", "File", "Backend", "Device", "Precision", "Licence"].map((h) => el("th", { text: h })))),
            el("tbody", {}, (m.components || []).map((c) => el("tr", { class: "component" },
              el("td", { text: c.role }), el("td", { class: "mono", text: c.file }),
              el("td", {}, c.backend || "–", c.fallback ? el("span", { class: "pill warn", text: "fallback" }) : null),
              el("td", { text: c.device || "–" }), el("td", { text: c.precision || "–" }),
              el("td", {}, c.licence || "–", " ",
                c.nonCommercial ? el("span", { class: "pill bad", text: "non-commercial" }) : null,
                (c.licenceFlags || []).filter((f) => f !== "non-commercial").map((f) => el("span", { class: "pill warn", text: f })))))))));
      }
    } catch (err) {
      models.append(errorBox(err));
    }
    try {
      const resp = await fetch("/metrics", { headers: { "x-csrf-token": session.csrf }, cache: "no-store" });
      if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
      const text = await resp.text();
      const rows = [
        ["HTTP requests", metricSum(text, "edge_http_requests_total")],
        ["Internal errors (500)", metricSum(text, "edge_http_requests_total", (l) => /status="500"/.test(l)) || 0],
        ["Inference calls", metricSum(text, "edge_model_inference_seconds_count")],
        ["Camera frames read", metricSum(text, "edge_camera_frames_read_total")],
        ["Camera frames analysed", metricSum(text, "edge_camera_frames_processed_total")],
        ["Recognition events", metricSum(text, "edge_camera_decisions_total")],
        ["MQTT events published", metricSum(text, "edge_mqtt_events_published_total")],
      ];
      const lat = metricSum(text, "edge_http_request_seconds_sum");
      const n = metricSum(text, "edge_http_request_seconds_count");
      if (lat !== null && n) rows.push(["Mean request time", `${fmt((lat / n) * 1000, 1)} ms`]);
      figures.append(el("dl", { class: "kv" }, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v === null ? "–" : String(v) })])));
    } catch (err) {
      figures.append(errorBox(err));
    }
  }

  // Start ---------------------------------------------------------------------------------
  async function start() {
    if (PAGE === "signin") { signinPage(); document.body.dataset.ready = "1"; return; }
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.nav === PAGE);
    try {
      session = await api("GET", "/console/session");
    } catch (_err) {
      return; // api() has sent the browser to the sign-in page
    }
    document.getElementById("who").textContent = `${session.deviceId} · instance ${session.instance}`;
    const out = document.getElementById("signout");
    out.hidden = false;
    out.addEventListener("click", async () => {
      try { await api("DELETE", "/console/session"); } catch (_e) { /* signed out anyway */ }
      location.assign("/console/signin");
    });
    try {
      if (PAGE !== "health") await loadModels();
      await { people: peoplePage, try: tryPage, live: livePage, health: healthPage }[PAGE]();
    } catch (err) {
      main.replaceChildren(el("div", { class: "card" }, errorBox(err)));
    }
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }
  start();
})();
