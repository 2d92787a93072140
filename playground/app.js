// The assistd playground: vanilla JS over the server's own /v1 API. The key lives in localStorage and only
// ever travels in the Authorization header. Every thread is drawn from the API each time it is opened.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "assistd.key";
const LAST_THREAD = "assistd.lastThread";

const state = {
  assistants: [],
  assistant: null, // the current assistant: shown in the settings, and the one runs use
  thread: null,
  run: null, // id of the run in flight
  ciFileIds: [],
  fsStoreIds: [],
  shownImages: new Set(), // image files already drawn in the open thread (a chart shows once)
};

// ------------------------------------------------------------------------------------------------ API

class ApiError extends Error {}

function headers(extra, key) {
  return Object.assign(
    { Authorization: "Bearer " + (key ?? localStorage.getItem(KEY) ?? ""), "OpenAI-Beta": "assistants=v2" },
    extra || {},
  );
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) {
    /* not JSON: keep the status line */
  }
  return new ApiError(message);
}

/** Logs one API call with its status and time in the panel. */
function logCall(method, path, status, started) {
  const ms = Math.round(performance.now() - started);
  const ul = $("api-calls");
  const what = `${method} /v1${path.split("?")[0]}`;
  // Ids shortened, so what each call did (…/runs, …/messages) stays readable; the full path is the tooltip.
  const short = what.replace(/\b([a-z]+_|file-)[A-Za-z0-9]{8,}/g, "$1…");
  ul.append(el("li", {}, el("span", { class: status >= 400 ? "bad" : "" }, String(status)),
    el("span", { class: "what", title: what }, short), el("span", { class: "ms" }, `${ms} ms`)));
  while (ul.children.length > 60) ul.firstChild.remove();
  ul.lastChild.scrollIntoView({ block: "nearest" });
}

async function api(method, path, body, key) {
  const init = { method, headers: headers(undefined, key) };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const started = performance.now();
  const res = await fetch("/v1" + path, init);
  logCall(method, path, res.status, started);
  if (!res.ok) throw await failure(res);
  return res.json();
}

async function fileBlob(fileId) {
  const res = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers() });
  if (!res.ok) throw await failure(res);
  return res.blob();
}

async function uploadAll(input, purpose) {
  const ids = [];
  for (const file of input.files) {
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    ids.push((await api("POST", "/files", form)).id);
  }
  input.value = "";
  return ids;
}

const fileNames = new Map();

/** A file's name, looked up once. */
async function fileName(fileId) {
  if (!fileNames.has(fileId)) {
    fileNames.set(fileId, api("GET", `/files/${encodeURIComponent(fileId)}`).then((f) => f.filename, () => fileId));
  }
  return fileNames.get(fileId);
}

/** POSTs and feeds each server-sent event to `onEvent(name, data)` until `[DONE]`. */
async function stream(path, body, onEvent) {
  const started = performance.now();
  const res = await fetch("/v1" + path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(Object.assign({ stream: true }, body)),
  });
  if (!res.ok) {
    logCall("POST", path, res.status, started);
    throw await failure(res);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of chunk.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        const text = data.join("\n");
        if (text === "[DONE]") return;
        if (text) onEvent(name, JSON.parse(text));
      }
    }
  } finally {
    logCall("POST", path + " (stream)", res.status, started);
  }
}

// ------------------------------------------------------------------------------------------------ UI helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function showError(where, err) {
  const box = $(where);
  box.textContent = err ? err.message || String(err) : "";
  box.hidden = !err;
}

/** Runs an async UI action, showing any error as the API worded it in the box beside that action. */
function guarded(where, fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    showError(where, null);
    try {
      await fn(event);
    } catch (err) {
      showError(where, err);
    }
  };
}

const STATUS_WORDS = { in_progress: "running", queued: "queued", completed: "done", failed: "failed",
  cancelled: "cancelled", expired: "expired", cancelling: "cancelling", requires_action: "waiting for you",
  incomplete: "incomplete" };

function badge(status) {
  return el("span", { class: "badge " + (STATUS_WORDS[status] === "done" ? "done" : status) }, STATUS_WORDS[status] || status);
}

function seconds(from, to) {
  return from && to ? `${Math.max(0, to - from)} s` : "";
}

const PY_KEYWORDS = new Set(
  ("False None True and as assert async await break class continue def del elif else except finally for from " +
    "global if import in is lambda nonlocal not or pass raise return try while with yield print").split(" "),
);

/** A small Python highlighter: comments, strings, numbers, keywords. */
function highlight(code, into) {
  into.textContent = "";
  const token = /(#[^\n]*)|("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_]\w*)/g;
  let last = 0;
  let m;
  while ((m = token.exec(code))) {
    if (m.index > last) into.append(code.slice(last, m.index));
    const kind = m[1] ? "com" : m[2] ? "str" : m[3] ? "num" : PY_KEYWORDS.has(m[4]) ? "kw" : null;
    into.append(kind ? el("span", { class: kind }, m[0]) : m[0]);
    last = token.lastIndex;
  }
  into.append(code.slice(last));
}

function imageOf(fileId) {
  state.shownImages.add(fileId);
  const img = el("img", { alt: `image ${fileId}`, "data-file-id": fileId });
  fileBlob(fileId)
    .then((blob) => (img.src = URL.createObjectURL(blob)))
    .catch((e) => showError("composer-error", e));
  return img;
}

function downloadLink(fileId, path, label) {
  const name = path.split("/").pop() || fileId;
  const a = el("a", { href: "#", download: name, "data-file-id": fileId, class: "download" }, label || name);
  fileBlob(fileId)
    .then((blob) => (a.href = URL.createObjectURL(blob)))
    .catch((e) => showError("composer-error", e));
  return a;
}

// ------------------------------------------------------------------------------------------------ Markdown

// A small Markdown renderer that builds DOM nodes and never parses HTML: every piece of text becomes a text
// node, so whatever the model writes is shown, never run. `slots` holds nodes that stand in the text as
// \u0000N\u0000 (annotated spans: downloads, citations).
function markdown(text, slots) {
  const root = el("div", { class: "text" });
  const lines = text.split("\n");
  let para = [];
  let list = null;
  const flush = () => {
    if (para.length) {
      const p = el("p", {});
      para.forEach((line, i) => {
        if (i) p.append(el("br", {}));
        inline(line, p, slots);
      });
      root.append(p);
    }
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```(\w*)/);
    if (fence) {
      flush();
      list = null;
      const body = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) body.push(lines[i]);
      const code = el("code", {});
      if (/^(py|python)$/i.test(fence[1])) highlight(body.join("\n"), code);
      else code.textContent = body.join("\n");
      root.append(el("pre", { class: fence[1] ? "code" : "logs" }, code));
      continue;
    }
    const heading = line.match(/^(#{1,4})\s+(.*)$/);
    const item = line.match(/^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/);
    if (heading) {
      flush();
      list = null;
      const h = el("h" + Math.min(4, heading[1].length + 1), {});
      inline(heading[2], h, slots);
      root.append(h);
    } else if (item) {
      flush();
      const kind = item[1] ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== kind) root.append((list = el(kind, {})));
      const li = el("li", {});
      inline(item[3], li, slots);
      list.append(li);
    } else if (!line.trim()) {
      flush();
      list = null;
    } else {
      list = null;
      para.push(line);
    }
  }
  flush();
  return root;
}

function inline(text, into, slots) {
  const token = /`([^`]+)`|\*\*(.+?)\*\*|\*([^*\s](?:[^*]*[^*\s])?)\*|\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)|\u0000(\d+)\u0000/g;
  let last = 0;
  let m;
  while ((m = token.exec(text))) {
    if (m.index > last) into.append(text.slice(last, m.index));
    if (m[1] != null) into.append(el("code", {}, m[1]));
    else if (m[2] != null) inline(m[2], into.appendChild(el("strong", {})), slots);
    else if (m[3] != null) inline(m[3], into.appendChild(el("em", {})), slots);
    else if (m[4] != null) inline(m[4], into.appendChild(el("a", { href: m[5], rel: "noopener noreferrer", target: "_blank" })), slots);
    else into.append(slots[Number(m[6])] || "");
    last = token.lastIndex;
  }
  into.append(text.slice(last));
}

// ------------------------------------------------------------------------------------------------ assistants

async function loadAssistants() {
  const list = await api("GET", "/assistants?limit=100");
  state.assistants = list.data;
  if (state.assistant) state.assistant = list.data.find((a) => a.id === state.assistant.id) || null;
  renderAssistantPicker();
  const models = new Set();
  try {
    for (const m of (await api("GET", "/models")).data) models.add(m.id);
  } catch (_) {
    // A server without upstream model lists: the assistants' own models are the choices.
  }
  for (const a of list.data) models.add(a.model);
  state.models = [...models];
}

function renderAssistantPicker() {
  const select = $("assistant-select");
  select.textContent = "";
  select.append(el("option", { value: "" }, state.assistants.length ? "— pick an assistant —" : "No assistants yet"));
  for (const a of state.assistants) {
    const option = el("option", { value: a.id }, `${a.name || "Unnamed"} · ${a.model}`);
    select.append(option);
  }
  select.value = state.assistant ? state.assistant.id : "";
}

function fillModels(current) {
  const select = $("a-model");
  select.textContent = "";
  const models = new Set(state.models || []);
  if (current) models.add(current);
  if (!models.size) select.append(el("option", { value: "" }, "No models listed"));
  for (const m of models) select.append(el("option", { value: m }, m));
  if (current) select.value = current;
}

/** Makes `a` the current assistant (null: a new one being written) and shows its settings. */
function useAssistant(a) {
  state.assistant = a;
  renderAssistantPicker();
  $("assistant-id").textContent = a ? a.id : "A new assistant: save it to use it.";
  $("a-name").value = a ? a.name || "" : "";
  fillModels(a ? a.model : null);
  $("a-instructions").value = a ? a.instructions || "" : "";
  const tools = a ? a.tools : [{ type: "code_interpreter" }];
  $("a-ci").checked = tools.some((t) => t.type === "code_interpreter");
  $("a-fs").checked = tools.some((t) => t.type === "file_search");
  const fns = tools.filter((t) => t.type === "function").map((t) => t.function);
  $("a-functions").value = fns.length ? JSON.stringify(fns, null, 2) : "";
  $("a-temperature").value = a && a.temperature != null ? a.temperature : "";
  $("a-top-p").value = a && a.top_p != null ? a.top_p : "";
  const format = a && a.response_format;
  $("a-format").value = !format || format === "auto" ? "auto" : format.type || "auto";
  const res = (a && a.tool_resources) || {};
  state.ciFileIds = (res.code_interpreter && res.code_interpreter.file_ids) || [];
  state.fsStoreIds = (res.file_search && res.file_search.vector_store_ids) || [];
  $("a-ci-file-ids").textContent = "";
  if (state.ciFileIds.length) {
    Promise.all(state.ciFileIds.map(fileName)).then((names) => ($("a-ci-file-ids").textContent = "Files: " + names.join(", ")));
  }
  $("a-fs-store-ids").textContent = state.fsStoreIds.length ? "Vector stores: " + state.fsStoreIds.join(", ") : "";
  $("a-delete").disabled = !a;
  $("a-save").textContent = a ? "Save assistant" : "Create assistant";
  $("thread-assistant").textContent = a
    ? `Runs use ${a.name || "an unnamed assistant"} (${a.model}).`
    : "Create or pick an assistant, then send a message.";
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function saveAssistant() {
  const tools = [];
  if ($("a-ci").checked) tools.push({ type: "code_interpreter" });
  if ($("a-fs").checked) tools.push({ type: "file_search" });
  const fnText = $("a-functions").value.trim();
  if (fnText) {
    let fns;
    try {
      fns = JSON.parse(fnText);
    } catch (e) {
      throw new Error("Functions are not valid JSON: " + e.message);
    }
    for (const f of Array.isArray(fns) ? fns : [fns]) tools.push({ type: "function", function: f });
  }
  const ciFiles = state.ciFileIds.concat(await uploadAll($("a-ci-files"), "assistants"));
  const fsFiles = await uploadAll($("a-fs-files"), "assistants");
  let stores = state.fsStoreIds;
  if (fsFiles.length) stores = [(await api("POST", "/vector_stores", { file_ids: fsFiles })).id];
  const format = $("a-format").value;
  const body = {
    name: $("a-name").value || null,
    model: $("a-model").value,
    instructions: $("a-instructions").value || null,
    tools,
    tool_resources: {
      code_interpreter: { file_ids: ciFiles },
      file_search: { vector_store_ids: stores },
    },
    temperature: numberOrNull("a-temperature"),
    top_p: numberOrNull("a-top-p"),
    response_format: format === "auto" ? "auto" : { type: format },
  };
  const saved = state.assistant
    ? await api("POST", `/assistants/${state.assistant.id}`, body)
    : await api("POST", "/assistants", body);
  await loadAssistants();
  useAssistant(saved);
}

async function deleteAssistant() {
  if (!state.assistant) return;
  await api("DELETE", `/assistants/${state.assistant.id}`);
  state.assistant = null;
  await loadAssistants();
  useAssistant(null);
}

// ------------------------------------------------------------------------------------------------ threads

function threadTitle(t) {
  return (t.metadata && t.metadata.title) || "Untitled thread";
}

/** Lists the project's threads, newest first, a page at a time (`after` appends the next page). */
async function loadThreads(after) {
  const list = await api("GET", "/threads?limit=30" + (after ? `&after=${encodeURIComponent(after)}` : ""));
  const ul = $("threads");
  if (!after) ul.textContent = "";
  const more = ul.querySelector(".more");
  if (more) more.remove();
  for (const t of list.data) {
    const current = state.thread && state.thread.id === t.id;
    const when = new Date(t.created_at * 1000).toLocaleString();
    ul.append(el("li", { "data-thread-id": t.id },
      el("button", { type: "button", class: "open", title: t.id, "aria-current": String(!!current),
        onclick: guarded("threads-error", () => openThread(t.id)) }, threadTitle(t), el("small", {}, when)),
      el("button", { type: "button", class: "small danger", "aria-label": `Delete thread ${threadTitle(t)}`,
        onclick: guarded("threads-error", () => deleteThread(t.id)) }, "Delete")));
  }
  if (list.has_more) {
    ul.append(el("li", { class: "more" }, el("button", { type: "button",
      onclick: guarded("threads-error", () => loadThreads(list.last_id)) }, "More threads")));
  }
  if (!ul.children.length) ul.append(el("li", { class: "muted" }, "No threads yet."));
}

async function deleteThread(id) {
  await api("DELETE", `/threads/${id}`);
  if (state.thread && state.thread.id === id) newThread();
  await loadThreads();
}

function newThread() {
  state.thread = null;
  state.shownImages = new Set();
  localStorage.removeItem(LAST_THREAD);
  $("messages").textContent = "";
  $("run-steps").textContent = "";
  $("thread-id").textContent = "";
  $("tool-form").hidden = true;
  setRunning(null);
  for (const b of document.querySelectorAll("#threads .open")) b.setAttribute("aria-current", "false");
  $("message").focus();
}

/** Opens a thread, drawing everything from the API: messages, and each run's steps and outcome in order. */
async function openThread(id) {
  const thread = await api("GET", `/threads/${id}`);
  const [msgs, runs] = await Promise.all([
    api("GET", `/threads/${id}/messages?order=asc&limit=100`),
    api("GET", `/threads/${id}/runs?order=asc&limit=100`),
  ]);
  const steps = await Promise.all(runs.data.map((r) =>
    api("GET", `/threads/${id}/runs/${r.id}/steps?order=asc&limit=100`)));
  state.thread = thread;
  state.shownImages = new Set();
  localStorage.setItem(LAST_THREAD, id);
  $("thread-id").textContent = threadTitle(thread);
  $("thread-id").title = thread.id;
  $("messages").textContent = "";
  $("run-steps").textContent = "";
  $("tool-form").hidden = true;
  setRunning(null);

  // The thread remembers its assistant: the one its last run used, else the one it was made for.
  const lastRun = runs.data[runs.data.length - 1];
  const assistantId = (lastRun && lastRun.assistant_id) || (thread.metadata && thread.metadata.assistant_id);
  const a = state.assistants.find((x) => x.id === assistantId);
  if (a) useAssistant(a);

  const byId = new Map(msgs.data.map((m) => [m.id, m]));
  const drawn = new Set();
  const draw = (m) => {
    if (drawn.has(m.id)) return;
    drawn.add(m.id);
    renderMessage(m);
  };
  // Messages come in the order they were made; each run is drawn where its first message is (its steps, its
  // messages, its outcome), and a run that wrote no message where its time puts it.
  const done = new Set();
  const drawRun = (r, i) => {
    if (done.has(r.id)) return;
    done.add(r.id);
    for (const step of steps[i].data) {
      if (step.step_details.type === "message_creation") {
        const m = byId.get(step.step_details.message_creation.message_id);
        if (m) draw(m);
      } else renderStep(step, true);
      logStep(step);
    }
    for (const m of msgs.data) if (m.run_id === r.id) draw(m);
    if (r.status === "requires_action") askForToolOutputs(r);
    else if (["queued", "in_progress", "cancelling"].includes(r.status)) {
      setRunning(r.id);
      $("run-state").textContent = "Run " + (STATUS_WORDS[r.status] || r.status) + "…";
    } else runEnded(r, false);
  };
  const withMessages = new Set(msgs.data.map((m) => m.run_id).filter(Boolean));
  // Since the last run drawn, how many messages were: a run follows at least the one that asked for it.
  let sinceRun = 0;
  const silentRuns = (before) => runs.data.forEach((r, i) => {
    if (!withMessages.has(r.id) && !done.has(r.id) && before(r, i)) {
      drawRun(r, i);
      sinceRun = 0;
    }
  });
  const endedAt = (r) => r.completed_at || r.cancelled_at || r.failed_at || r.expired_at;
  // Timestamps are whole seconds: a run made in the same second as a later message came first when it had
  // already ended by then (no message can join a thread while its run is active).
  const cameBefore = (r, m) =>
    r.created_at < m.created_at || (r.created_at === m.created_at && sinceRun > 0 && endedAt(r) && endedAt(r) <= m.created_at);
  for (const m of msgs.data) {
    if (drawn.has(m.id)) continue;
    if (m.run_id) {
      const i = runs.data.findIndex((r) => r.id === m.run_id);
      if (i >= 0) {
        silentRuns((_, j) => j < i);
        drawRun(runs.data[i], i);
        sinceRun = 0;
        continue;
      }
    } else silentRuns((r) => cameBefore(r, m));
    draw(m);
    sinceRun += 1;
  }
  runs.data.forEach(drawRun);
  for (const m of msgs.data) draw(m);
  await loadThreads();
  $("messages").lastChild && $("messages").lastChild.scrollIntoView({ block: "end" });
}

// ------------------------------------------------------------------------------------------------ messages

function messageItem(m) {
  let li = document.querySelector(`[data-message-id="${m.id}"]`);
  if (!li) {
    li = el("li", { class: `msg ${m.role}`, "data-message-id": m.id });
    $("messages").append(li);
  }
  return li;
}

function messageHead(m) {
  return el("div", { class: "who" }, m.role, el("span", { class: "grow" }),
    el("button", { type: "button", class: "small", "aria-label": "Delete message",
      onclick: guarded("composer-error", async () => {
        await api("DELETE", `/threads/${m.thread_id}/messages/${m.id}`);
        document.querySelector(`[data-message-id="${m.id}"]`).remove();
      }) }, "Delete"));
}

/** Renders a message's final content: Markdown with its annotations (downloads, citations), and images. */
function renderMessage(m) {
  const li = messageItem(m);
  li.replaceChildren(messageHead(m));
  for (const part of m.content) {
    if (part.type === "image_file") {
      // A chart the code step already showed is not drawn twice.
      if (!state.shownImages.has(part.image_file.file_id)) li.append(imageOf(part.image_file.file_id));
      continue;
    }
    if (part.type !== "text") continue;
    const text = part.text.value;
    const slots = [];
    const notes = el("ol", { class: "citations", "aria-label": "Citations" });
    const anns = (part.text.annotations || []).slice().sort((x, y) => x.start_index - y.start_index);
    let out = "";
    let at = 0;
    for (const ann of anns) {
      if (ann.start_index < at) continue;
      let before = text.slice(at, ann.start_index);
      const span = text.slice(ann.start_index, ann.end_index);
      at = ann.end_index;
      let node;
      if (ann.type === "file_path") {
        // A Markdown link `[label](sandbox:/mnt/data/x)` becomes one download link named by its label.
        let label = null;
        const md = before.match(/\[([^\]]*)\]\($/);
        if (md && text[at] === ")") {
          before = before.slice(0, md.index);
          label = md[1] || null;
          at += 1;
        }
        node = downloadLink(ann.file_path.file_id, span.replace(/^sandbox:/, ""), label);
      } else if (ann.type === "file_citation") {
        const n = notes.children.length + 1;
        node = el("sup", { class: "cite", title: ann.file_citation.file_id }, `[${n}]`);
        const note = el("li", {}, ann.file_citation.file_id);
        notes.append(note);
        fileName(ann.file_citation.file_id).then((name) => (note.textContent = name +
          (ann.file_citation.quote ? ": " + ann.file_citation.quote : "")));
      } else node = document.createTextNode(span);
      out += before.replace(/\u0000/g, "") + `\u0000${slots.length}\u0000`;
      slots.push(node);
    }
    out += text.slice(at).replace(/\u0000/g, "");
    li.append(markdown(out, slots));
    if (notes.children.length) li.append(notes);
  }
  if ((m.attachments || []).length) {
    const box = el("div", { class: "attachments" }, "Attached: ");
    li.append(box);
    Promise.all(m.attachments.map((a) => fileName(a.file_id))).then((names) => box.append(names.join(", ")));
  }
}

function appendDelta(m) {
  const li = messageItem({ id: m.id, role: "assistant" });
  if (!li.firstChild) li.append(el("div", { class: "who" }, "assistant"));
  for (const part of (m.delta && m.delta.content) || []) {
    if (part.type === "text" && part.text && part.text.value) {
      let div = li.querySelector(".text.streaming");
      if (!div) li.append((div = el("div", { class: "text streaming" })));
      div.append(part.text.value);
    }
  }
}

// ------------------------------------------------------------------------------------------------ run steps

function stepItem(step) {
  let li = document.querySelector(`#messages [data-step-id="${step.id}"]`);
  if (!li) {
    li = el("li", { class: "tool", "data-step-id": step.id },
      el("div", { class: "who" }, el("span", { class: "label" }, "tool call"), el("span", { class: "step-status" })));
    $("messages").append(li);
  }
  return li;
}

function setStepStatus(li, status) {
  li.dataset.status = status;
  li.querySelector(".step-status").replaceChildren(badge(status));
}

function callBox(stepLi, index) {
  let box = stepLi.querySelector(`[data-index="${index}"]`);
  if (!box) {
    box = el("div", { class: "call", "data-index": String(index) });
    box.code = "";
    stepLi.append(box);
  }
  return box;
}

function applyToolCall(stepLi, call, index, final) {
  const box = callBox(stepLi, index);
  if (call.type) box.dataset.type = call.type;
  if (call.id) box.dataset.callId = call.id;
  if (call.code_interpreter) {
    const ci = call.code_interpreter;
    if (typeof ci.input === "string") box.code = final ? ci.input : box.code + ci.input;
    let pre = box.querySelector("pre.code");
    if (!pre) {
      pre = el("pre", { class: "code", "aria-label": "Code" }, el("code", {}));
      box.prepend(pre);
    }
    highlight(box.code, pre.firstChild);
    const outputs = ci.outputs || [];
    if (final) box.querySelectorAll(".output").forEach((n) => n.remove());
    for (const out of outputs) {
      if (out.type === "logs") box.append(el("pre", { class: "logs output", "aria-label": "Logs" }, out.logs));
      if (out.type === "image") box.append(Object.assign(imageOf(out.image.file_id), { className: "output" }));
    }
  }
  if (call.file_search && final) {
    const results = call.file_search.results || [];
    box.replaceChildren(el("div", { class: "muted" }, `file_search: ${results.length} result${results.length === 1 ? "" : "s"}`));
    if (results.length) {
      box.append(el("ol", { class: "results", "aria-label": "Search results" }, ...results.map((r) =>
        el("li", {}, `${r.file_name} (score ${Number(r.score).toFixed(2)})`))));
    }
  }
  if (call.function) {
    let pre = box.querySelector("pre.fn");
    if (!pre) box.append((pre = el("pre", { class: "fn logs", "aria-label": "Function call" }, "")));
    box.fnName = call.function.name || box.fnName || "";
    box.fnArgs = final ? call.function.arguments || "" : (box.fnArgs || "") + (call.function.arguments || "");
    pre.textContent = `${box.fnName}(${box.fnArgs})`;
    if (call.function.output != null) showFunctionOutput(box, call.function.output);
  }
}

function showFunctionOutput(box, output) {
  let out = box.querySelector(".fn-output");
  if (!out) box.append((out = el("pre", { class: "logs fn-output", "aria-label": "Function output" })));
  out.textContent = "→ " + output;
}

function renderStep(step, final) {
  if (!step.step_details || step.step_details.type !== "tool_calls") return;
  const li = stepItem(step);
  const calls = step.step_details.tool_calls;
  calls.forEach((call, i) => applyToolCall(li, call, call.index ?? i, final));
  if (calls.length) {
    li.querySelector(".label").textContent = calls.map((c) => c.type === "function" ? "function call" : c.type).join(", ");
  }
  setStepStatus(li, step.status);
}

/** One line per step in the panel: what it was, its state and how long it took. */
function logStep(step) {
  let li = document.querySelector(`#run-steps [data-step-id="${step.id}"]`);
  if (!li) $("run-steps").append((li = el("li", { "data-step-id": step.id, title: step.id })));
  const d = step.step_details || {};
  const what = d.type === "message_creation" ? "message" :
    ((d.tool_calls || []).map((c) => c.type === "function" ? c.function.name : c.type).join(", ") || "tool calls");
  const took = seconds(step.created_at, step.completed_at || step.cancelled_at || step.failed_at);
  li.replaceChildren(badge(step.status), el("span", { class: "what" }, what), el("span", { class: "ms" },
    [took, step.usage ? `${step.usage.total_tokens} tokens` : ""].filter(Boolean).join(" · ")));
}

// ------------------------------------------------------------------------------------------------ runs

function setRunning(runId) {
  state.run = runId;
  $("cancel").disabled = !runId;
  $("send").disabled = !!runId;
  if (!runId) $("run-state").textContent = "";
}

function onRunEvent(name, data) {
  switch (name) {
    case "thread.run.created":
      $("run-steps").textContent = "";
      setRunning(data.id);
      $("run-state").textContent = "Run queued…";
      break;
    case "thread.run.queued":
    case "thread.run.in_progress":
    case "thread.run.cancelling":
      $("run-state").textContent = `Run ${STATUS_WORDS[data.status] || data.status}…`;
      break;
    case "thread.message.created":
      messageItem(data).append(messageHead(data));
      break;
    case "thread.message.delta":
      appendDelta(data);
      break;
    case "thread.message.completed":
      renderMessage(data);
      break;
    case "thread.run.step.created":
    case "thread.run.step.in_progress":
      renderStep(data, false);
      logStep(data);
      break;
    case "thread.run.step.delta": {
      const details = data.delta && data.delta.step_details;
      if (details && details.tool_calls) {
        const li = stepItem(data);
        for (const call of details.tool_calls) applyToolCall(li, call, call.index, false);
      }
      break;
    }
    case "thread.run.step.completed":
    case "thread.run.step.failed":
    case "thread.run.step.cancelled":
    case "thread.run.step.expired":
      renderStep(data, true);
      logStep(data);
      break;
    case "thread.run.requires_action":
      askForToolOutputs(data);
      break;
    case "thread.run.completed":
    case "thread.run.failed":
    case "thread.run.cancelled":
    case "thread.run.expired":
    case "thread.run.incomplete":
      runEnded(data);
      break;
    case "error":
      showError("composer-error", new Error((data.error && data.error.message) || "The stream failed."));
      break;
  }
}

/** Draws how a run ended; a run watched live has its steps read back, with their final state and outputs. */
function runEnded(run, live = true) {
  setRunning(null);
  $("tool-form").hidden = true;
  // Steps still drawn as running when the run ended went with it.
  if (run.status !== "completed") {
    for (const li of document.querySelectorAll('#messages .tool[data-status="in_progress"]')) setStepStatus(li, run.status);
  }
  const why = run.last_error ? `: ${run.last_error.message}` : "";
  const took = seconds(run.started_at || run.created_at, run.completed_at || run.cancelled_at || run.failed_at || run.expired_at);
  const usage = run.usage ? `${run.usage.total_tokens} tokens` : "";
  const old = document.querySelector(`.run-end[data-run-id="${run.id}"]`);
  if (old) old.remove();
  $("messages").append(el("li", { class: "run-end " + run.status, "data-run-id": run.id, title: run.id },
    badge(run.status), `Run ${run.status}${why}`, el("span", { class: "muted" }, [took, usage].filter(Boolean).join(" · "))));
  $("messages").lastChild.scrollIntoView({ block: "end" });
  if (live) {
    api("GET", `/threads/${run.thread_id}/runs/${run.id}/steps?order=asc&limit=100`)
      .then((steps) => steps.data.forEach((step) => {
        if (document.querySelector(`#messages [data-step-id="${step.id}"]`)) renderStep(step, true);
        logStep(step);
      }))
      .catch((e) => showError("composer-error", e));
  }
}

function askForToolOutputs(run) {
  const calls = (run.required_action && run.required_action.submit_tool_outputs.tool_calls) || [];
  const box = $("tool-calls");
  box.textContent = "";
  for (const call of calls) {
    const id = "out-" + call.id;
    box.append(
      el("label", { for: id }, `${call.function.name}(${call.function.arguments})`),
      el("textarea", { id, rows: "2", "data-call-id": call.id,
        placeholder: `What ${call.function.name} returned, e.g. {"result": …} or plain text` }),
    );
  }
  const form = $("tool-form");
  form.dataset.runId = run.id;
  form.dataset.threadId = run.thread_id;
  form.hidden = false;
  state.run = run.id;
  $("cancel").disabled = false;
  $("send").disabled = true;
  $("run-state").textContent = "Run waiting for function results";
  const first = box.querySelector("textarea");
  if (first) first.focus();
}

async function submitToolOutputs() {
  const form = $("tool-form");
  const tool_outputs = [...form.querySelectorAll("textarea")].map((t) => ({
    tool_call_id: t.dataset.callId,
    output: t.value,
  }));
  // Shown at once under each call; the step's own output replaces it when the step completes.
  for (const o of tool_outputs) {
    const box = document.querySelector(`#messages .call[data-call-id="${o.tool_call_id}"]`);
    if (box) showFunctionOutput(box, o.output);
  }
  form.hidden = true;
  await runStream(`/threads/${form.dataset.threadId}/runs/${form.dataset.runId}/submit_tool_outputs`,
    { tool_outputs });
}

async function runStream(path, body) {
  try {
    await stream(path, body, onRunEvent);
  } finally {
    // The stream also closes at requires_action; the run then waits on the form. A stream that closed
    // before the run ended (a dropped connection) is followed by polling the run.
    const runId = state.run;
    if ($("tool-form").hidden && runId && !document.querySelector(`.run-end[data-run-id="${runId}"]`)) {
      await settle(runId);
    } else if ($("tool-form").hidden) setRunning(null);
  }
}

/** Polls a run until it ends or waits for function results, then draws that. */
async function settle(runId) {
  const threadId = state.thread.id;
  for (let i = 0; i < 600; i++) {
    const run = await api("GET", `/threads/${threadId}/runs/${runId}`);
    if (run.status === "requires_action") return askForToolOutputs(run);
    if (!["queued", "in_progress", "cancelling"].includes(run.status)) return runEnded(run);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function send() {
  const a = state.assistant;
  if (!a) throw new Error("Create or pick an assistant first.");
  const text = $("message").value;
  const input = $("attachments");
  if (!text.trim() && !input.files.length) return;
  const tools = a.tools.filter((t) => t.type !== "function").map((t) => ({ type: t.type }));
  const ids = await uploadAll(input, "assistants");
  const attachments = ids.map((file_id) => ({ file_id, tools: tools.length ? tools : [{ type: "code_interpreter" }] }));
  if (!state.thread) {
    state.thread = await api("POST", "/threads", { metadata: { title: text.slice(0, 60) || "Files", assistant_id: a.id } });
    state.shownImages = new Set();
    localStorage.setItem(LAST_THREAD, state.thread.id);
    $("thread-id").textContent = threadTitle(state.thread);
    $("thread-id").title = state.thread.id;
    await loadThreads();
  }
  const msg = await api("POST", `/threads/${state.thread.id}/messages`,
    { role: "user", content: text || "(attached files)", attachments });
  $("message").value = "";
  renderMessage(msg);
  $("send").disabled = true;
  await runStream(`/threads/${state.thread.id}/runs`, { assistant_id: a.id });
}

async function cancel() {
  const form = $("tool-form");
  const runId = state.run || form.dataset.runId;
  if (!runId || !state.thread) return;
  const run = await api("POST", `/threads/${state.thread.id}/runs/${runId}/cancel`);
  $("run-state").textContent = `Run ${STATUS_WORDS[run.status] || run.status}…`;
  if (!form.hidden) {
    // No stream is open while the run waits on us: poll until it settles.
    form.hidden = true;
    let now = run;
    for (let i = 0; i < 50 && !["cancelled", "completed", "failed", "expired"].includes(now.status); i++) {
      await new Promise((r) => setTimeout(r, 200));
      now = await api("GET", `/threads/${state.thread.id}/runs/${runId}`);
    }
    runEnded(now);
  }
}

// ------------------------------------------------------------------------------------------------ start

function showKeyState() {
  $("key-state").textContent = localStorage.getItem(KEY) ? "Key saved in this browser." : "No key yet.";
}

/** Loads everything the key can see, and reopens the thread that was open last. */
async function start() {
  await loadAssistants();
  // Only the model choices change: whatever is being typed in the settings stays.
  fillModels(state.assistant ? state.assistant.model : $("a-model").value);
  await loadThreads();
  const last = localStorage.getItem(LAST_THREAD);
  if (last && document.querySelector(`#threads [data-thread-id="${last}"]`)) await openThread(last);
  await startResponses(); // responses.js
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", guarded("key-error", async () => {
    const key = $("api-key").value.trim();
    $("key-state").textContent = "Checking the key…";
    try {
      // The key is kept only once the server took it.
      await api("GET", "/assistants?limit=1", undefined, key);
    } catch (err) {
      showKeyState();
      throw err;
    }
    localStorage.setItem(KEY, key);
    $("api-key").value = "";
    try {
      await start();
    } finally {
      showKeyState();
    }
  }));
  $("assistant-select").addEventListener("change", (e) =>
    useAssistant(state.assistants.find((a) => a.id === e.target.value) || null));
  $("new-assistant").addEventListener("click", () => {
    useAssistant(null);
    $("a-name").focus();
  });
  $("assistant-form").addEventListener("submit", guarded("assistant-error", saveAssistant));
  $("a-delete").addEventListener("click", guarded("assistant-error", deleteAssistant));
  $("new-thread").addEventListener("click", newThread);
  $("composer").addEventListener("submit", guarded("composer-error", send));
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!$("send").disabled) $("composer").requestSubmit();
    }
  });
  $("cancel").addEventListener("click", guarded("composer-error", cancel));
  $("tool-form").addEventListener("submit", guarded("composer-error", submitToolOutputs));
  showKeyState();
  useAssistant(null);
  if (localStorage.getItem(KEY)) start().catch((e) => showError("threads-error", e));
});
