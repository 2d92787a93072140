// The assistd playground: vanilla JS over the server's own /v1 API. The key lives in localStorage and only
// ever travels in the Authorization header.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "assistd.key";
const THREADS = "assistd.threads";

const state = {
  assistants: [],
  assistant: null, // the one being edited
  threadAssistant: null, // the one new threads and runs use
  thread: null,
  run: null, // id of the run in flight
  ciFileIds: [],
  fsStoreIds: [],
};

// ------------------------------------------------------------------------------------------------ API

class ApiError extends Error {}

function headers(extra) {
  return Object.assign(
    { Authorization: "Bearer " + (localStorage.getItem(KEY) || ""), "OpenAI-Beta": "assistants=v2" },
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

async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch("/v1" + path, init);
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

/** POSTs and feeds each server-sent event to `onEvent(name, data)` until `[DONE]`. */
async function stream(path, body, onEvent) {
  const res = await fetch("/v1" + path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(Object.assign({ stream: true }, body)),
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
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

function showError(err) {
  const box = $("error");
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

/** Runs an async UI action, showing any error as the API worded it. */
function guarded(fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    showError(null);
    try {
      await fn(event);
    } catch (err) {
      showError(err);
    }
  };
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
  const img = el("img", { alt: `image ${fileId}`, "data-file-id": fileId });
  fileBlob(fileId)
    .then((blob) => (img.src = URL.createObjectURL(blob)))
    .catch(showError);
  return img;
}

function downloadLink(fileId, path, label) {
  const name = path.split("/").pop() || fileId;
  const a = el("a", { href: "#", download: name, "data-file-id": fileId, class: "download" }, label || name);
  fileBlob(fileId)
    .then((blob) => (a.href = URL.createObjectURL(blob)))
    .catch(showError);
  return a;
}

// ------------------------------------------------------------------------------------------------ assistants

async function loadAssistants() {
  const list = await api("GET", "/assistants?limit=100");
  state.assistants = list.data;
  const ul = $("assistants");
  ul.textContent = "";
  const models = new Set();
  for (const a of list.data) {
    models.add(a.model);
    const current = state.threadAssistant && state.threadAssistant.id === a.id;
    ul.append(
      el("li", {},
        el("button", { type: "button", "aria-current": String(!!current), title: a.id,
          onclick: guarded(() => useAssistant(a)) }, a.name || a.id),
        el("button", { type: "button", "aria-label": `Edit ${a.name || a.id}`, class: "edit",
          onclick: guarded(() => editAssistant(a)) }, "Edit")),
    );
  }
  if (!list.data.length) ul.append(el("li", { class: "muted" }, "No assistants yet."));
  // The models the server's upstreams serve, for the picker; typing any other name still works.
  try {
    for (const m of (await api("GET", "/models")).data) models.add(m.id);
  } catch (_) {
    // An older server without /v1/models: the assistants' own models are the suggestions.
  }
  const dl = $("models");
  dl.textContent = "";
  for (const m of models) dl.append(el("option", { value: m }));
}

function editAssistant(a) {
  state.assistant = a;
  $("editor").hidden = false;
  $("assistant-id").textContent = a ? a.id : "A new assistant";
  $("a-name").value = a ? a.name || "" : "";
  $("a-model").value = a ? a.model : "";
  $("a-instructions").value = a ? a.instructions || "" : "";
  const tools = a ? a.tools : [{ type: "code_interpreter" }];
  $("a-ci").checked = tools.some((t) => t.type === "code_interpreter");
  $("a-fs").checked = tools.some((t) => t.type === "file_search");
  const fns = tools.filter((t) => t.type === "function").map((t) => t.function);
  $("a-functions").value = fns.length ? JSON.stringify(fns, null, 2) : "";
  const res = (a && a.tool_resources) || {};
  state.ciFileIds = (res.code_interpreter && res.code_interpreter.file_ids) || [];
  state.fsStoreIds = (res.file_search && res.file_search.vector_store_ids) || [];
  $("a-ci-file-ids").textContent = state.ciFileIds.length ? "Files: " + state.ciFileIds.join(", ") : "";
  $("a-fs-store-ids").textContent = state.fsStoreIds.length ? "Vector stores: " + state.fsStoreIds.join(", ") : "";
  $("a-delete").disabled = !a;
  $("a-name").focus();
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
  const body = {
    name: $("a-name").value || null,
    model: $("a-model").value,
    instructions: $("a-instructions").value || null,
    tools,
    tool_resources: {
      code_interpreter: { file_ids: ciFiles },
      file_search: { vector_store_ids: stores },
    },
  };
  const saved = state.assistant
    ? await api("POST", `/assistants/${state.assistant.id}`, body)
    : await api("POST", "/assistants", body);
  editAssistant(saved);
  if (!state.threadAssistant || state.threadAssistant.id === saved.id) state.threadAssistant = saved;
  showThreadAssistant();
  await loadAssistants();
}

async function deleteAssistant() {
  if (!state.assistant) return;
  await api("DELETE", `/assistants/${state.assistant.id}`);
  if (state.threadAssistant && state.threadAssistant.id === state.assistant.id) state.threadAssistant = null;
  state.assistant = null;
  $("editor").hidden = true;
  showThreadAssistant();
  await loadAssistants();
}

function useAssistant(a) {
  state.threadAssistant = a;
  showThreadAssistant();
  loadAssistants().catch(showError);
}

function showThreadAssistant() {
  const a = state.threadAssistant;
  $("thread-assistant").textContent = a
    ? `Runs use ${a.name || a.id} (${a.model}).`
    : "Pick an assistant, then start a thread.";
}

// ------------------------------------------------------------------------------------------------ threads

function savedThreads() {
  try {
    return JSON.parse(localStorage.getItem(THREADS) || "[]");
  } catch (_) {
    return [];
  }
}

function rememberThread(thread, title) {
  const all = savedThreads().filter((t) => t.id !== thread.id);
  const old = savedThreads().find((t) => t.id === thread.id);
  all.unshift({ id: thread.id, title: (old && old.title) || title || thread.id,
    assistant_id: state.threadAssistant && state.threadAssistant.id });
  localStorage.setItem(THREADS, JSON.stringify(all.slice(0, 50)));
  renderThreads();
}

function renderThreads() {
  const ul = $("threads");
  ul.textContent = "";
  for (const t of savedThreads()) {
    const current = state.thread && state.thread.id === t.id;
    ul.append(el("li", {}, el("button", { type: "button", title: t.id, "aria-current": String(!!current),
      onclick: guarded(() => openThread(t)) }, t.title)));
  }
  if (!ul.children.length) ul.append(el("li", { class: "muted" }, "No threads yet."));
}

function newThread() {
  state.thread = null;
  $("messages").textContent = "";
  $("thread-id").textContent = "";
  $("tool-form").hidden = true;
  renderThreads();
  $("message").focus();
}

async function openThread(saved) {
  const thread = await api("GET", `/threads/${saved.id}`);
  state.thread = thread;
  const a = state.assistants.find((x) => x.id === saved.assistant_id);
  if (a) useAssistant(a);
  $("thread-id").textContent = thread.id;
  $("messages").textContent = "";
  const msgs = await api("GET", `/threads/${thread.id}/messages?order=asc&limit=100`);
  for (const m of msgs.data) renderMessage(m);
  renderThreads();
}

// ------------------------------------------------------------------------------------------------ messages

function messageItem(m) {
  let li = document.querySelector(`[data-message-id="${m.id}"]`);
  if (!li) {
    li = el("li", { class: `msg ${m.role}`, "data-message-id": m.id }, el("div", { class: "who" }, m.role));
    $("messages").append(li);
  }
  return li;
}

/** Renders a message's final content: annotated text (downloads, citations) and images. */
function renderMessage(m) {
  const li = messageItem(m);
  li.replaceChildren(li.firstChild);
  for (const part of m.content) {
    if (part.type === "image_file") li.append(imageOf(part.image_file.file_id));
    if (part.type !== "text") continue;
    const text = part.text.value;
    const div = el("div", { class: "text" });
    const notes = el("ol", { class: "citations", "aria-label": "Citations" });
    const anns = (part.text.annotations || []).slice().sort((x, y) => x.start_index - y.start_index);
    let at = 0;
    for (const ann of anns) {
      if (ann.start_index < at) continue;
      let before = text.slice(at, ann.start_index);
      const span = text.slice(ann.start_index, ann.end_index);
      at = ann.end_index;
      if (ann.type === "file_path") {
        // A markdown link `[label](sandbox:/mnt/data/x)` becomes one download link named by its label.
        let label = null;
        const md = before.match(/\[([^\]]*)\]\($/);
        if (md && text[at] === ")") {
          before = before.slice(0, md.index);
          label = md[1] || null;
          at += 1;
        }
        div.append(before, downloadLink(ann.file_path.file_id, span.replace(/^sandbox:/, ""), label));
        continue;
      }
      div.append(before);
      if (ann.type === "file_citation") {
        const n = notes.children.length + 1;
        div.append(el("sup", { class: "cite", title: ann.file_citation.file_id }, `[${n}]`));
        notes.append(el("li", {}, `${ann.file_citation.file_id}${ann.file_citation.quote ? ": " + ann.file_citation.quote : ""}`));
      } else div.append(span);
    }
    div.append(text.slice(at));
    li.append(div);
    if (notes.children.length) li.append(notes);
  }
  for (const att of m.attachments || []) li.append(el("div", { class: "muted" }, "Attached " + att.file_id));
}

function appendDelta(m) {
  const li = messageItem({ id: m.id, role: "assistant" });
  for (const part of (m.delta && m.delta.content) || []) {
    if (part.type === "text" && part.text && part.text.value) {
      let div = li.querySelector(".text.streaming");
      if (!div) li.append((div = el("div", { class: "text streaming" })));
      div.append(part.text.value);
    }
    if (part.type === "image_file") li.append(imageOf(part.image_file.file_id));
  }
}

// ------------------------------------------------------------------------------------------------ run steps

function stepItem(step) {
  let li = document.querySelector(`[data-step-id="${step.id}"]`);
  if (!li) {
    li = el("li", { class: "tool", "data-step-id": step.id }, el("div", { class: "who" }, "tool calls"));
    $("messages").append(li);
  }
  return li;
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
  if (call.file_search && final) box.replaceChildren(el("div", { class: "muted" }, "file_search"));
  if (call.function) {
    let pre = box.querySelector("pre.fn");
    if (!pre) box.append((pre = el("pre", { class: "fn logs", "aria-label": "Function call" }, "")));
    box.fnName = call.function.name || box.fnName || "";
    box.fnArgs = final ? call.function.arguments || "" : (box.fnArgs || "") + (call.function.arguments || "");
    pre.textContent = `${box.fnName}(${box.fnArgs})` + (call.function.output ? ` → ${call.function.output}` : "");
  }
}

function renderStep(step, final) {
  if (!step.step_details || step.step_details.type !== "tool_calls") return;
  const li = stepItem(step);
  step.step_details.tool_calls.forEach((call, i) => applyToolCall(li, call, call.index ?? i, final));
}

// ------------------------------------------------------------------------------------------------ runs

function setRunning(runId) {
  state.run = runId;
  $("cancel").disabled = !runId;
  $("send").disabled = !!runId;
}

function onRunEvent(name, data) {
  switch (name) {
    case "thread.run.created":
      setRunning(data.id);
      $("run-state").textContent = "Run " + data.status;
      break;
    case "thread.run.queued":
    case "thread.run.in_progress":
    case "thread.run.cancelling":
      $("run-state").textContent = "Run " + data.status;
      break;
    case "thread.message.created":
      messageItem(data);
      break;
    case "thread.message.delta":
      appendDelta(data);
      break;
    case "thread.message.completed":
      renderMessage(data);
      break;
    case "thread.run.step.created":
      renderStep(data, false);
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
      renderStep(data, true);
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
      showError(new Error((data.error && data.error.message) || "The stream failed."));
      break;
  }
}

function runEnded(run) {
  setRunning(null);
  $("tool-form").hidden = true;
  $("run-state").textContent = "Run " + run.status;
  const failed = run.status !== "completed";
  const why = run.last_error ? `: ${run.last_error.message}` : "";
  const details = el("div", { class: "details" });
  const li = el("li", { class: "run-end" + (failed ? " failed" : ""), "data-run-id": run.id },
    `Run ${run.id} ${run.status}${why} `,
    el("button", { type: "button", onclick: guarded(() => showRunDetails(run, details)) }, "Steps and usage"),
    details);
  $("messages").append(li);
}

async function showRunDetails(run, into) {
  const t = run.thread_id;
  const [fresh, steps] = await Promise.all([
    api("GET", `/threads/${t}/runs/${run.id}`),
    api("GET", `/threads/${t}/runs/${run.id}/steps?order=asc&limit=100`),
  ]);
  const u = fresh.usage;
  into.replaceChildren(
    el("p", {}, u ? `Usage: ${u.prompt_tokens} prompt + ${u.completion_tokens} completion = ${u.total_tokens} tokens`
      : "No usage reported."),
    el("pre", {}, steps.data.map((s) => `${s.id} ${s.type} ${s.status}` +
      (s.usage ? ` (${s.usage.total_tokens} tokens)` : "")).join("\n")),
  );
}

function askForToolOutputs(run) {
  const calls = (run.required_action && run.required_action.submit_tool_outputs.tool_calls) || [];
  const box = $("tool-calls");
  box.textContent = "";
  for (const call of calls) {
    const id = "out-" + call.id;
    box.append(
      el("label", { for: id }, `${call.function.name}(${call.function.arguments})`),
      el("textarea", { id, rows: "2", "data-call-id": call.id }),
    );
  }
  const form = $("tool-form");
  form.dataset.runId = run.id;
  form.dataset.threadId = run.thread_id;
  form.hidden = false;
  $("run-state").textContent = "Run requires_action";
  const first = box.querySelector("textarea");
  if (first) first.focus();
}

async function submitToolOutputs() {
  const form = $("tool-form");
  const tool_outputs = [...form.querySelectorAll("textarea")].map((t) => ({
    tool_call_id: t.dataset.callId,
    output: t.value,
  }));
  form.hidden = true;
  await runStream(`/threads/${form.dataset.threadId}/runs/${form.dataset.runId}/submit_tool_outputs`,
    { tool_outputs });
}

async function runStream(path, body) {
  try {
    await stream(path, body, onRunEvent);
  } finally {
    // The stream also closes at requires_action; the run is then waiting on the form, not running.
    if (!$("tool-form").hidden) {
      $("cancel").disabled = false;
      $("send").disabled = true;
    } else setRunning(null);
  }
}

async function send() {
  const a = state.threadAssistant;
  if (!a) throw new Error("Pick an assistant first.");
  const text = $("message").value;
  const input = $("attachments");
  if (!text.trim() && !input.files.length) return;
  const tools = a.tools.filter((t) => t.type !== "function").map((t) => ({ type: t.type }));
  const ids = await uploadAll(input, "assistants");
  const attachments = ids.map((file_id) => ({ file_id, tools: tools.length ? tools : [{ type: "code_interpreter" }] }));
  if (!state.thread) {
    state.thread = await api("POST", "/threads", {});
    $("thread-id").textContent = state.thread.id;
    rememberThread(state.thread, text.slice(0, 40));
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
  $("run-state").textContent = "Run " + run.status;
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

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", guarded(async () => {
    localStorage.setItem(KEY, $("api-key").value.trim());
    $("api-key").value = "";
    showKeyState();
    await loadAssistants();
  }));
  $("new-assistant").addEventListener("click", () => editAssistant(null));
  $("assistant-form").addEventListener("submit", guarded(saveAssistant));
  $("a-delete").addEventListener("click", guarded(deleteAssistant));
  $("a-close").addEventListener("click", () => ($("editor").hidden = true));
  $("new-thread").addEventListener("click", newThread);
  $("composer").addEventListener("submit", guarded(send));
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("composer").requestSubmit();
  });
  $("cancel").addEventListener("click", guarded(cancel));
  $("tool-form").addEventListener("submit", guarded(submitToolOutputs));
  showKeyState();
  renderThreads();
  if (localStorage.getItem(KEY)) loadAssistants().catch(showError);
});
