// The moderators' page: checks files through the public API and shows the report.
//
// Everything the service says is put on the page with textContent, never as
// HTML: file names and report strings come from untrusted uploads.
"use strict";
(() => {
  const WORDS = window.AIGC_I18N;
  const store = window.sessionStorage; // this tab only: no cookie, never in a URL
  const KEY = "aigc-label.key";
  const HISTORY = "aigc-label.history";
  const LANG = "aigc-label.lang";
  const FIELDS = ["Label", "ContentProducer", "ProduceID", "ReservedCode1",
    "ContentPropagator", "PropagateID", "ReservedCode2"];
  // what a browser can draw itself; the rest of the images and PDFs ask /ui/preview
  const BROWSER_IMAGES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"];
  const POSITIONS = ["bottom-right", "bottom-left", "top-right", "top-left", "bottom", "top",
    "footer", "header"];
  const WORDINGS = ["zh", "zh-short", "zh-synthetic", "bilingual"];

  const browserZh = (navigator.languages || [navigator.language || "en"])
    .some((l) => String(l).toLowerCase().startsWith("zh"));
  let lang = store.getItem(LANG) || (browserZh ? "zh" : "en");
  const checks = []; // newest first
  let nextId = 1;
  let queue = Promise.resolve();

  // ---------------------------------------------------------------- helpers
  function t(key, vars) {
    let text = (WORDS[lang] && WORDS[lang][key]) ?? WORDS.en[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }
  function has(key) { return key in WORDS.en; }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name in node && typeof value !== "string") node[name] = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const $ = (selector, root) => (root || document).querySelector(selector);

  class ApiError extends Error {}

  async function call(method, path, body) {
    const key = store.getItem(KEY);
    if (!key) throw new ApiError(t("needKey"));
    const response = await fetch(path, {
      method,
      body,
      headers: { Authorization: "Bearer " + key },
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = response.status + " " + response.statusText;
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || detail;
      } catch (_) { /* not a problem document */ }
      throw new ApiError(detail);
    }
    return response;
  }

  function form(file, fields) {
    const data = new FormData();
    data.append("file", file, file.name || "upload");
    for (const [name, value] of Object.entries(fields || {})) {
      if (value !== null && value !== undefined && value !== "") data.append(name, String(value));
    }
    return data;
  }

  function download(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name, class: "visually-hidden" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  function renamed(name, suffix) {
    const dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(0, dot) + "-" + suffix + name.slice(dot) : name + "-" + suffix;
  }

  function kindKey(kind) { return String(kind).replace(/-/g, "_"); }

  async function sha256(file) {
    if (!window.crypto || !crypto.subtle) return ""; // only in secure contexts
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---------------------------------------------------------------- the key
  function showKey() {
    const key = store.getItem(KEY);
    $("#key-form").hidden = Boolean(key);
    $("#key-set").hidden = !key;
    $("#key-status").textContent = key ? t("keySet", { tail: key.slice(-4) }) : "";
  }

  // ------------------------------------------------------------- checking
  function addFiles(files) {
    const list = Array.from(files || []);
    if (!list.length) return;
    if (!store.getItem(KEY)) {
      notice(t("needKey"));
      $("#key").focus();
      return;
    }
    notice("");
    for (const file of list) {
      const check = { id: nextId++, file, state: "pending", time: new Date().toISOString() };
      checks.unshift(check);
      render(check);
      // one at a time: a moderator's batch should not crowd the service
      queue = queue.then(() => run(check));
    }
  }

  async function run(check) {
    const declared = $("#opt-declared").checked;
    const visible = $("#opt-visible").checked;
    check.options = { declared_ai: declared, check_visible: visible };
    try {
      const response = await call("POST", "/v1/verify", form(check.file, {
        declared_ai: declared, check_visible: visible,
      }));
      check.report = await response.json();
      check.state = "done";
    } catch (error) {
      check.state = "error";
      check.error = error.message;
    }
    render(check);
    await preview(check);
    if (check.report && check.report.record) {
      const id = check.report.record.ProduceID;
      try { // optional: only keys with read_records, only records of this ledger
        const response = await call("GET", "/v1/records/" + encodeURIComponent(id));
        check.ledger = await response.json();
      } catch (_) { check.ledger = null; }
    }
    check.sha256 = await sha256(check.file).catch(() => "");
    remember(check);
    render(check);
  }

  // ------------------------------------------------------------- previews
  async function preview(check) {
    const type = (check.report && check.report.media_type) || check.file.type || "";
    check.mediaKind = type.split("/")[0];
    try {
      if (BROWSER_IMAGES.includes(type)) {
        check.preview = await browserImage(check.file).catch(() => serverPreview(check.file));
      } else if (type.startsWith("image/") || type === "application/pdf") {
        check.preview = await serverPreview(check.file);
        if (type === "application/pdf") check.previewNote = t("previewPdf");
      } else if (type.startsWith("video/")) {
        check.preview = { node: el("video", {
          src: URL.createObjectURL(check.file), muted: true, controls: true, preload: "metadata",
          "aria-label": t("preview"),
        }) };
      } else if (type.startsWith("audio/")) {
        check.preview = { node: await waveform(check.file) };
      } else if (type.startsWith("text/") || type === "application/json") {
        const head = await check.file.slice(0, 16384).text();
        check.preview = { node: el("pre", { class: "text-preview",
          text: head.split(/\r?\n/).slice(0, 12).join("\n") }) };
        check.previewNote = t("previewText");
      } else {
        check.previewNote = t("previewNone");
      }
    } catch (error) {
      check.previewNote = t("previewFailed", { detail: error.message });
    }
  }

  function browserImage(blob, size) {
    return new Promise((resolve, reject) => {
      const img = el("img", { alt: t("preview"), class: "picture" });
      img.addEventListener("load", () => resolve({
        node: img,
        // the report measures in pixels as viewed; the browser applies EXIF orientation too
        size: size || [img.naturalWidth, img.naturalHeight],
      }));
      img.addEventListener("error", () => reject(new Error("undecodable")));
      img.src = URL.createObjectURL(blob);
    });
  }

  async function serverPreview(file) {
    const response = await call("POST", "/ui/preview", form(file));
    const size = (response.headers.get("AIGC-Source-Size") || "").split("x").map(Number);
    const blob = await response.blob();
    return browserImage(blob, size.length === 2 && size.every((n) => n > 0) ? size : null);
  }

  async function waveform(file) {
    const box = el("div", { class: "audio" });
    const audio = el("audio", { src: URL.createObjectURL(file), controls: true,
      preload: "metadata", "aria-label": t("preview") });
    const Context = window.AudioContext || window.webkitAudioContext;
    if (Context) {
      try {
        const context = new Context();
        const buffer = await context.decodeAudioData(await file.arrayBuffer());
        context.close();
        box.append(drawWave(buffer.getChannelData(0)));
      } catch (_) { /* the player alone, where the browser cannot decode it */ }
    }
    box.append(audio);
    return box;
  }

  function drawWave(samples) {
    const width = 600, height = 120;
    const canvas = el("canvas", { width, height, class: "wave", role: "img",
      "aria-label": t("preview") });
    const g = canvas.getContext("2d");
    g.fillStyle = "#f3f4f6";
    g.fillRect(0, 0, width, height);
    g.fillStyle = "#1d4ed8";
    const step = Math.max(1, Math.floor(samples.length / width));
    for (let x = 0; x < width; x++) {
      let lo = 1, hi = -1;
      for (let i = x * step; i < Math.min(samples.length, (x + 1) * step); i++) {
        if (samples[i] < lo) lo = samples[i];
        if (samples[i] > hi) hi = samples[i];
      }
      if (hi < lo) continue;
      g.fillRect(x, (1 - hi) * height / 2, 1, Math.max(1, (hi - lo) * height / 2));
    }
    return canvas;
  }

  // -------------------------------------------------------------- a card
  function render(check) {
    if (check.removed) return; // the moderator closed it while it was being checked
    let card = document.getElementById("card-" + check.id);
    const fresh = $("#card-template").content.firstElementChild.cloneNode(true);
    fresh.id = "card-" + check.id;
    if (card) card.replaceWith(fresh);
    else $("#cards").prepend(fresh);
    card = fresh;
    card.dataset.state = check.state;
    const report = check.report;
    $(".file-name", card).textContent = check.file.name || "upload";
    $(".file-meta", card).textContent = [report && report.media_type,
      t("size", { n: check.file.size })].filter(Boolean).join(" · ");
    const remove = $(".remove", card);
    remove.setAttribute("aria-label", t("remove"));
    remove.addEventListener("click", () => {
      check.removed = true;
      checks.splice(checks.indexOf(check), 1);
      card.remove();
    });

    const banner = $(".banner", card);
    if (check.state === "pending") {
      banner.textContent = t("checking");
      banner.dataset.class = "pending";
    } else if (check.state === "error") {
      banner.textContent = t("failed", { detail: check.error });
      banner.dataset.class = "error";
      banner.setAttribute("role", "alert");
    } else {
      banner.dataset.class = report.classification;
      banner.append(
        el("strong", { class: "verdict", text: t("cls_" + report.classification) }),
        el("span", { class: "why", text: t("clsWhy_" + report.classification) }),
        el("span", { class: "rule" }, t("rule") + ": ", el("q", { text: report.rule })),
      );
    }

    const frame = $(".frame", card);
    if (check.preview) {
      frame.append(check.preview.node);
      if (report && check.preview.size && check.mediaKind === "image") {
        drawBoxes(frame, report, check.preview.size);
      }
    }
    $(".preview-note", card).textContent = check.previewNote || "";
    if (!check.preview && !check.previewNote) $(".preview", card).hidden = true;
    if (!report) return;

    $(".summary", card).append(origin(report), evidence(report));
    $(".details", card).append(
      section(t("recordTitle"), recordTable(report, check.ledger), "record"),
      section(t("sigTitle"), signatures(report), "signatures"),
      section(t("c2paTitle"), c2paTree(report), "c2pa"),
      section(t("wmTitle"), watermark(report), "watermark"),
      section(t("visibleTitle"), visibleLabel(report, check), "visible"),
      section(t("findingsTitle"), findings(report), "findings"),
      rawReport(report),
    );
    $(".actions", card).append(actions(check));
  }

  function section(title, body, name) {
    return el("section", { class: "detail detail-" + name },
      el("h4", { text: title }), body);
  }

  function drawBoxes(frame, report, size) {
    const [width, height] = size;
    (report.evidence || []).forEach((item) => {
      const box = item.kind === "explicit-label" && item.data && item.data.box;
      if (!Array.isArray(box) || box.length !== 4) return;
      const [left, top, w, h] = box.map(Number);
      const mark = el("div", { class: "label-box", role: "img",
        "aria-label": t("visibleBox") });
      // CSSOM, not a style attribute: the CSP allows no inline styles
      mark.style.left = (100 * left / width) + "%";
      mark.style.top = (100 * top / height) + "%";
      mark.style.width = (100 * w / width) + "%";
      mark.style.height = (100 * h / height) + "%";
      const ratio = Number(item.data.height_ratio);
      if (Number.isFinite(ratio)) mark.dataset.meets = ratio >= 0.05 ? "yes" : "no";
      frame.append(mark);
    });
  }

  function origin(report) {
    const found = report.origin;
    const body = el("div", { class: "origin" }, el("h4", { text: t("origin") }));
    if (!found) {
      body.append(el("p", { class: "origin-line", text: t("originNone") }));
      return body;
    }
    const names = [found.generator, found.company].filter(Boolean);
    body.append(el("p", { class: "origin-line" },
      el("strong", { text: names.join(" · ") || t("nameUnknown") }),
      found.product && found.product !== found.generator ? " (" + found.product + ")" : "",
      found.confidence ? " — " + t("confidence", { level: t("conf_" + found.confidence) }) : ""));
    return body;
  }

  function evidence(report) {
    const items = report.evidence || [];
    const basis = new Set(((report.origin && report.origin.evidence) || []).map(Number));
    const body = el("div", { class: "evidence" }, el("h4", { text: t("evidence") }));
    if (!items.length) {
      body.append(el("p", { text: t("evidenceNone") }));
      return body;
    }
    body.append(el("ul", {}, items.map((item, index) => {
      const key = kindKey(item.kind);
      return el("li", { class: "evidence-item", "data-kind": item.kind },
        el("strong", { text: has("kind_" + key) ? t("kind_" + key) : item.kind }),
        basis.has(index) ? el("span", { class: "tag", text: t("originBasis") }) : null,
        el("span", { class: "summary-text", text: item.summary }),
        el("span", { class: "meaning", text: has("mean_" + key) ? t("mean_" + key) : "" }),
        el("span", { class: "carrier", text: t("carrier") + ": " + item.carrier +
          (item.id ? " · #" + item.id : "") }));
    })));
    return body;
  }

  // producer/platform code -> a name, from what the report and the ledger say
  function partyNames(report, ledger) {
    const names = {};
    const found = report.origin;
    if (found && found.company) {
      for (const index of found.evidence || []) {
        const item = (report.evidence || [])[index];
        const record = item && item.data && item.data.record;
        if (record && record.ContentProducer) {
          names[record.ContentProducer] = [found.company, found.product].filter(Boolean).join(" ");
        }
      }
      if (report.record && !names[report.record.ContentProducer] && found.generator) {
        names[report.record.ContentProducer] = found.company;
      }
    }
    if (ledger && ledger.requester && report.record) {
      const issued = t("ledgerIssued", { name: ledger.requester,
        time: String(ledger.created_at || "").slice(0, 19).replace("T", " ") });
      const code = report.record.ContentProducer;
      names[code] = names[code] ? names[code] + "; " + issued : issued;
    }
    return names;
  }

  function recordTable(report, ledger) {
    const record = report.record;
    if (!record) return el("p", { text: t("recordNone") });
    const names = partyNames(report, ledger);
    const integrity = report.integrity || {};
    const rows = FIELDS.map((name) => {
      const value = record[name] || "";
      let meaning = has("m_" + name) ? t("m_" + name) : "";
      if (name === "Label") meaning = has("label_" + value) ? t("label_" + value) : "";
      if ((name === "ContentProducer" || name === "ContentPropagator") && value) {
        meaning = meaning + ": " + (names[value] || t("nameUnknown"));
      }
      const role = name === "ReservedCode1" ? "producer" : name === "ReservedCode2" ? "platform" : "";
      const cell = el("td", { class: "value" }, el("code", { text: value || t("empty") }));
      if (role && integrity[role]) cell.append(" ", badge(integrity[role].status));
      return el("tr", { "data-field": name },
        el("th", { scope: "row", text: t("f_" + name) }), cell, el("td", { text: meaning }));
    });
    const carriers = (report.records || []).map((r) =>
      r.carrier + (r.source === "ledger" ? " (" + t("fromLedger") + ")" : ""));
    return el("div", {},
      el("div", { class: "scroll" }, el("table", { class: "record" },
        el("thead", {}, el("tr", {}, ["field", "value", "meaning"].map((k) =>
          el("th", { scope: "col", text: t(k) })))),
        el("tbody", {}, rows))),
      el("p", { class: "hint", text: t("carriers", { list: carriers.join(", ") }) }));
  }

  function badge(status) {
    return el("span", { class: "badge sig-" + status, "data-status": status,
      text: has("sig_" + status) ? t("sig_" + status) : status });
  }

  function signatures(report) {
    if (!report.record) return el("p", { text: t("sigNone") });
    const integrity = report.integrity || {};
    return el("ul", { class: "signatures" }, ["producer", "platform"].map((role) => {
      const check = integrity[role];
      if (!check) return null;
      return el("li", { "data-role": role },
        el("strong", { text: t("sigRole_" + role) + ": " }), badge(check.status),
        el("span", { class: "detail-text", text: " " + (check.detail || "") }),
        check.key ? el("span", { class: "hint", text: " (" + t("keyId", { kid: check.key }) + ")" }) : null);
    }));
  }

  // the C2PA chain: #10's report.c2pa when present, else the c2pa evidence of today
  function c2paTree(report) {
    const chain = report.c2pa;
    if (chain && Array.isArray(chain.manifests) && chain.manifests.length) {
      const byLabel = Object.fromEntries(chain.manifests.map((m) => [m.label, m]));
      const root = chain.manifests.find((m) => m.active) || chain.manifests[0];
      const seen = new Set();
      const node = (manifest) => {
        seen.add(manifest.label);
        const sources = (manifest.actions || []).map((a) => a.digital_source_type).filter(Boolean);
        return el("li", { class: "manifest" + (manifest.active ? " active" : "") },
          manifestLines({
            label: manifest.label, active: manifest.active,
            generator: manifest.claim_generator,
            signer: manifest.signer && (manifest.signer.common_name || manifest.signer.issuer),
            actions: (manifest.actions || []).map((a) => a.action),
            sources, state: manifest.validation, codes: manifest.validation_codes,
          }),
          (manifest.ingredients || []).length ? el("ul", {}, manifest.ingredients.map((ing) => {
            const child = ing.manifest && byLabel[ing.manifest];
            return el("li", { class: "ingredient" },
              el("span", { class: "hint", text: t("c2paIngredient") + ": " +
                [ing.title, ing.relationship].filter(Boolean).join(" · ") }),
              child && !seen.has(child.label) ? el("ul", {}, node(child)) : null);
          })) : null);
      };
      return el("ul", { class: "tree" }, node(root),
        chain.validation ? el("li", { class: "hint",
          text: t("c2paState") + ": " + chain.validation }) : null);
    }
    const item = (report.evidence || []).find((e) => e.kind === "c2pa");
    if (!item) return el("p", { text: t("c2paNone") });
    const m = item.data || {};
    const state = [m.state, m.content_altered ? t("c2paAltered") : null,
      m.signer_trusted ? t("c2paTrusted") : t("c2paUntrusted")].filter(Boolean).join(", ");
    return el("ul", { class: "tree" }, el("li", { class: "manifest active" },
      manifestLines({ active: true, generator: m.claim_generator, signer: m.signer,
        actions: m.actions, sources: m.digital_source_types, state }),
      (m.ingredients || []).length ? el("ul", {}, m.ingredients.map((ing) =>
        el("li", { class: "manifest" }, manifestLines({
          label: [ing.title, ing.relationship].filter(Boolean).join(" · "),
          generator: ing.claim_generator, signer: ing.signer, actions: ing.actions,
          state: ing.validation_state, ingredient: true,
        })))) : null));
  }

  function manifestLines(m) {
    const line = (label, value) => value && (!Array.isArray(value) || value.length)
      ? el("div", {}, el("span", { class: "hint", text: label + ": " }),
        Array.isArray(value) ? value.join(", ") : String(value))
      : null;
    const shortSource = (s) => String(s).split("/").pop();
    return el("div", { class: "manifest-box" },
      el("strong", { text: m.ingredient ? t("c2paIngredient") : m.active ? t("c2paActive") : (m.label || "") }),
      m.label && (m.active || m.ingredient) ? el("span", { class: "hint", text: " " + m.label }) : null,
      line(t("c2paGenerator"), m.generator),
      line(t("c2paSigner"), m.signer),
      line(t("c2paActions"), m.actions),
      line(t("c2paSource"), (m.sources || []).map(shortSource)),
      line(t("c2paState"), [m.state, ...((m.codes || []).slice(0, 4))].filter(Boolean)));
  }

  function watermark(report) {
    const item = (report.evidence || []).find((e) => e.kind === "watermark");
    if (item) {
      const d = item.data || {};
      return el("p", {}, t("wmFound", { key: d.key, score: Number(d.score).toFixed(2) }), " ",
        d.in_ledger ? t("wmInLedger") : t("wmNotInLedger"));
    }
    const type = report.media_type || "";
    const checked = type.startsWith("image/") || type.startsWith("text/");
    return el("p", { text: checked ? t("wmNone") : t("wmNotChecked") });
  }

  function visibleLabel(report, check) {
    const items = (report.evidence || []).filter((e) => e.kind === "explicit-label");
    if (!items.length) {
      const unread = report.media_type && report.media_type.startsWith("image/") &&
        report.record && !(check.options && check.options.check_visible);
      return el("p", { text: unread ? t("visibleNotChecked") : t("visibleNone") });
    }
    return el("ul", {}, items.map((item) => {
      const d = item.data || {};
      const parts = [];
      if (d.phrases) parts.push(t("visiblePhrases", { list: d.phrases.join(", ") }));
      if (d.brand || d.generator) parts.push([d.brand, d.generator].filter(Boolean).join(" · "));
      if (d.region) parts.push(t("visibleWhere", { region: d.region }));
      if (d.pages) parts.push(t("visiblePages", { pages: d.pages.join(", "), count: d.page_count }));
      const li = el("li", {}, el("span", { text: parts.join(" · ") || item.summary }));
      const ratio = Number(d.height_ratio);
      if (Number.isFinite(ratio) && d.height_ratio !== undefined) {
        const meets = ratio >= 0.05;
        li.append(el("div", { class: "label-size", "data-meets": meets ? "yes" : "no" },
          t("visibleSize", { h: d.height_px, side: d.shortest_side, pct: (ratio * 100).toFixed(1) }),
          " ", el("strong", { text: meets ? t("visibleMeets") : t("visibleBelow") })));
      }
      if (d.box) li.append(el("div", { class: "hint", text: t("visibleBox") }));
      return li;
    }));
  }

  function findings(report) {
    const list = report.findings || [];
    if (!list.length) return el("p", { text: t("findingsNone") });
    return el("ul", { class: "findings" }, list.map((f) => {
      const todo = f.action || (has("do_" + f.code) ? t("do_" + f.code) : "");
      return el("li", { "data-severity": f.severity, "data-code": f.code },
        el("span", { class: "badge sev-" + f.severity,
          text: has("sev_" + f.severity) ? t("sev_" + f.severity) : f.severity }),
        " ", el("code", { text: f.code }), " ", el("span", { text: f.detail }),
        todo ? el("div", { class: "todo", text: t("todo", { text: todo }) }) : null);
    }));
  }

  function rawReport(report) {
    return el("details", { class: "raw" }, el("summary", { text: t("rawTitle") }),
      el("pre", { text: JSON.stringify(report, null, 2) }));
  }

  // ------------------------------------------------------------- actions
  function actions(check) {
    const status = el("p", { class: "action-status", role: "status" });
    showOutcome(status, check.outcome);
    const addExplicit = el("input", { type: "checkbox", id: "add-explicit-" + check.id });
    const propagate = el("button", { type: "button", class: "propagate", text: t("propagate") });
    propagate.addEventListener("click", () => act(check, status, propagate, async () => {
      const response = await call("POST", "/v1/propagate", form(check.file, {
        declared_ai: check.options.declared_ai, add_explicit: addExplicit.checked,
      }));
      const blob = await response.blob();
      const name = renamed(check.file.name || "upload", "propagated");
      download(blob, name);
      if (response.headers.get("AIGC-Classification") === "none") {
        return { key: "propagatedNone", vars: { name } };
      }
      // read the file we just handed out, as any platform downstream would
      const again = await call("POST", "/v1/verify",
        form(new File([blob], name, { type: blob.type })));
      const verdict = (await again.json()).classification;
      return { key: "propagated", vars: { name }, classification: verdict };
    }));

    const options = labelOptions(check.id);
    const label = el("button", { type: "button", class: "label", text: t("labelAction") });
    label.addEventListener("click", () => act(check, status, label, async () => {
      const response = await call("POST", "/v1/label", form(check.file, options.values()));
      const name = renamed(check.file.name || "upload", "labelled");
      download(await response.blob(), name);
      return { key: "labelled", vars: { name, id: response.headers.get("AIGC-Produce-ID") } };
    }));

    return el("section", { class: "detail" }, el("h4", { text: t("actionsTitle") }),
      el("div", { class: "action" }, propagate,
        el("label", { for: addExplicit.id }, addExplicit, " ", t("addExplicit")),
        el("p", { class: "hint", text: t("propagateHint") })),
      el("div", { class: "action" }, options.node, label,
        el("p", { class: "hint", text: t("labelHint") })),
      status);
  }

  // an action's outcome is kept on the check, so a language switch can redraw it
  function showOutcome(status, outcome) {
    status.removeAttribute("data-error");
    status.removeAttribute("data-classification");
    if (!outcome) return;
    const vars = { ...outcome.vars };
    if (outcome.classification) {
      vars.cls = t("cls_" + outcome.classification);
      status.dataset.classification = outcome.classification;
    }
    if (outcome.error) status.dataset.error = "yes";
    status.textContent = t(outcome.key, vars);
  }

  async function act(check, status, button, work) {
    button.disabled = true;
    showOutcome(status, null);
    status.textContent = t("working");
    try {
      check.outcome = await work();
    } catch (error) {
      check.outcome = { key: "failed", vars: { detail: error.message }, error: true };
    } finally {
      button.disabled = false;
    }
    showOutcome(status, check.outcome);
  }

  function labelOptions(id) {
    const field = (name, label, control) => {
      control.id = "opt-" + name + "-" + id;
      const text = el("span", { text: label });
      return control.type === "checkbox"
        ? el("label", { for: control.id, class: "option check" }, control, text)
        : el("label", { for: control.id, class: "option" }, text, control);
    };
    const select = (values, labels) => el("select", {}, values.map((v, i) =>
      el("option", { value: v, text: labels ? labels[i] : v })));
    const explicit = select(["on", "none"], [t("optExplicitOn"), t("optExplicitNone")]);
    const position = select(["", ...POSITIONS], [t("optDefault"), ...POSITIONS]);
    const wording = select(["", ...WORDINGS], [t("optDefault"), ...WORDINGS]);
    const labelValue = select(["1", "2", "3"], ["1 " + t("label_1"), "2 " + t("label_2"),
      "3 " + t("label_3")]);
    const mark = el("input", { type: "checkbox", checked: true });
    const c2pa = el("input", { type: "checkbox", checked: true });
    const node = el("details", { class: "label-options" }, el("summary", { text: t("labelOptions") }),
      el("div", { class: "option-grid" },
        field("explicit", t("optExplicit"), explicit),
        field("position", t("optPosition"), position),
        field("wording", t("optWording"), wording),
        field("label", t("optLabel"), labelValue),
        field("watermark", t("optWatermark"), mark),
        field("c2pa", t("optC2pa"), c2pa)));
    return {
      node,
      values: () => ({ explicit: explicit.value, position: position.value, wording: wording.value,
        label: labelValue.value, watermark: mark.checked, c2pa: c2pa.checked }),
    };
  }

  // ------------------------------------------------------------- history
  function history() {
    try { return JSON.parse(store.getItem(HISTORY) || "[]"); } catch (_) { return []; }
  }

  function remember(check) {
    const report = check.report;
    const entry = {
      time: check.time,
      file: check.file.name,
      size: check.file.size,
      sha256: check.sha256 || "",
      media_type: report ? report.media_type : "",
      classification: report ? report.classification : "error",
      rule: report ? report.rule : check.error,
      produce_id: report && report.record ? report.record.ProduceID : "",
      content_producer: report && report.record ? report.record.ContentProducer : "",
      content_propagator: report && report.record ? report.record.ContentPropagator : "",
      origin: report && report.origin
        ? [report.origin.generator, report.origin.company].filter(Boolean).join(" / ") : "",
      findings: report ? (report.findings || []).map((f) => f.code).join(" ") : "",
    };
    store.setItem(HISTORY, JSON.stringify([...history(), entry]));
    showHistory();
  }

  function showHistory() {
    const rows = history();
    const body = $("#history tbody");
    body.replaceChildren(...rows.slice().reverse().map((h) => el("tr", {},
      el("td", { text: h.time.slice(11, 19) }), el("td", { text: h.file }),
      el("td", { text: h.media_type }),
      el("td", { text: has("cls_" + h.classification) ? t("cls_" + h.classification) : h.classification }),
      el("td", {}, el("code", { text: h.produce_id })), el("td", { text: h.origin }))));
    $("#history-empty").hidden = rows.length > 0;
    $("#history").hidden = rows.length === 0;
  }

  function csvCell(value) {
    let text = String(value ?? "");
    // a spreadsheet must not run a file name as a formula
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function exportHistory(kind) {
    const rows = history();
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    if (kind === "json") {
      download(new Blob([JSON.stringify(rows, null, 2)], { type: "application/json" }),
        "aigc-checks-" + stamp + ".json");
      return;
    }
    const columns = ["time", "file", "size", "sha256", "media_type", "classification", "rule",
      "produce_id", "content_producer", "content_propagator", "origin", "findings"];
    const lines = [columns.join(","),
      ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(","))];
    // BOM: spreadsheet programs then read the Chinese text as UTF-8
    download(new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv" }),
      "aigc-checks-" + stamp + ".csv");
  }

  // ------------------------------------------------------------- language
  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    $("#cards").setAttribute("aria-label", t("results"));
    $("#lang").value = lang;
    showKey();
    showHistory();
    for (const check of checks.slice().reverse()) render(check);
  }

  // ------------------------------------------------------------- wiring
  function notice(text) {
    const box = $("#notice");
    box.textContent = text;
    box.hidden = !text;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#lang").addEventListener("change", (event) => {
      lang = event.target.value;
      store.setItem(LANG, lang);
      applyLanguage();
    });
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("#key").value.trim();
      if (!key) return;
      store.setItem(KEY, key);
      $("#key").value = "";
      notice("");
      showKey();
      $("#key-forget").focus();
    });
    $("#key-forget").addEventListener("click", () => {
      store.removeItem(KEY);
      showKey();
      $("#key").focus();
    });
    $("#files").addEventListener("change", (event) => {
      addFiles(event.target.files);
      event.target.value = "";
    });
    const drop = $("#drop");
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (event) => {
        event.preventDefault();
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      addFiles(event.dataTransfer && event.dataTransfer.files);
    });
    // a file dropped beside the zone must not navigate away from the page
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    $("#export-json").addEventListener("click", () => exportHistory("json"));
    $("#export-csv").addEventListener("click", () => exportHistory("csv"));
    $("#history-clear").addEventListener("click", () => {
      store.removeItem(HISTORY);
      showHistory();
    });
    applyLanguage();
  });
})();
