// The Responses mode of the playground: a prompt with tools (code_interpreter, file_search, functions) sent to
// POST /v1/responses with stream=true, the output items drawn as they stream (the code as it is written, its
// logs and images), continued by previous_response_id or a conversation, and the code container's files.
// It uses the helpers of app.js (api, stream, el, guarded, markdown, highlight, badge, fileBlob).
"use strict";

const MODE = "assistd.mode";
const LAST_CHAT = "assistd.responses.last";

const rs = {
  previous: null, // the last response's id, which the next one continues
  conversation: null, // the conversation's id, when continuing one
  container: null, // the container the code ran in
  storeIds: [],
  busy: false,
};

function setMode(mode) {
  const responses = mode === "responses";
  localStorage.setItem(MODE, mode);
  $("mode-assistants").setAttribute("aria-pressed", String(!responses));
  $("mode-responses").setAttribute("aria-pressed", String(responses));
  for (const id of ["a-settings", "a-chat", "threads-section", "steps-section"]) $(id).hidden = responses;
  for (const id of ["r-settings", "r-chat", "c-files-section"]) $(id).hidden = !responses;
  if (responses) {
    fillResponseModels();
    $("r-input").focus();
  }
}

function fillResponseModels() {
  const select = $("r-model");
  const current = select.value;
  select.textContent = "";
  const models = state.models || [];
  if (!models.length) select.append(el("option", { value: "" }, "No models listed"));
  for (const m of models) select.append(el("option", { value: m }, m));
  if (models.includes(current)) select.value = current;
}

function responseTools() {
  const tools = [];
  if ($("r-ci").checked) tools.push({ type: "code_interpreter", container: { type: "auto" } });
  if ($("r-fs").checked) tools.push({ type: "file_search", vector_store_ids: rs.storeIds });
  const text = $("r-functions").value.trim();
  if (text) {
    let fns;
    try {
      fns = JSON.parse(text);
    } catch (e) {
      throw new Error("Functions are not valid JSON: " + e.message);
    }
    for (const f of Array.isArray(fns) ? fns : [fns]) tools.push(Object.assign({ type: "function" }, f));
  }
  return tools;
}

// ------------------------------------------------------------------------------------------------ items

function rItem(id, cls) {
  let li = document.querySelector(`#r-items [data-item-id="${id}"]`);
  if (!li) $("r-items").append((li = el("li", { class: cls, "data-item-id": id })));
  return li;
}

function rScroll() {
  const last = $("r-items").lastChild;
  if (last) last.scrollIntoView({ block: "end" });
}

function containerLink(cite) {
  const a = el("a", { href: "#", download: cite.filename, class: "download", "data-file-id": cite.file_id }, cite.filename);
  containerBlob(cite.container_id, cite.file_id)
    .then((blob) => (a.href = URL.createObjectURL(blob)))
    .catch((e) => showError("r-error", e));
  return a;
}

async function containerBlob(containerId, fileId) {
  const res = await fetch(`/v1/containers/${encodeURIComponent(containerId)}/files/${encodeURIComponent(fileId)}/content`,
    { headers: headers() });
  if (!res.ok) throw await failure(res);
  return res.blob();
}

/** A message's text as Markdown, with its annotations: container files become downloads, citations notes. */
function outputText(part) {
  const text = part.text || "";
  const slots = [];
  const notes = el("ol", { class: "citations", "aria-label": "Citations" });
  let out = "";
  let at = 0;
  const anns = (part.annotations || []).filter((a) => a.type === "container_file_citation")
    .sort((x, y) => x.start_index - y.start_index);
  for (const ann of anns) {
    if (ann.start_index < at) continue;
    let before = text.slice(at, ann.start_index);
    at = ann.end_index;
    const md = before.match(/\[([^\]]*)\]\($/);
    if (md && text[at] === ")") {
      before = before.slice(0, md.index);
      at += 1;
    }
    out += before.replace(/\u0000/g, "") + `\u0000${slots.length}\u0000`;
    slots.push(containerLink(ann));
  }
  out += text.slice(at).replace(/\u0000/g, "");
  for (const ann of part.annotations || []) {
    if (ann.type === "file_citation") notes.append(el("li", {}, ann.filename || ann.file_id));
  }
  const box = el("div", {}, markdown(out, slots));
  if (notes.children.length) box.append(notes);
  return box;
}

function drawItem(item, final) {
  if (item.type === "message") {
    const li = rItem(item.id, "msg assistant");
    if (!final) {
      if (!li.firstChild) li.append(el("div", { class: "who" }, "assistant"), el("div", { class: "text streaming" }));
      return li;
    }
    li.replaceChildren(el("div", { class: "who" }, "assistant"));
    for (const part of item.content || []) if (part.type === "output_text") li.append(outputText(part));
    return li;
  }
  if (item.type === "code_interpreter_call") {
    const li = rItem(item.id, "tool");
    if (!li.firstChild) {
      li.code = "";
      li.append(el("div", { class: "who" }, "code_interpreter", el("span", { class: "step-status" })),
        el("pre", { class: "code", "aria-label": "Code" }, el("code", {})));
    }
    if (item.container_id) showContainer(item.container_id);
    if (final) {
      li.code = item.code || li.code;
      highlight(li.code, li.querySelector("pre.code code"));
      li.querySelectorAll(".output").forEach((n) => n.remove());
      for (const out of item.outputs || []) {
        if (out.type === "logs") li.append(el("pre", { class: "logs output", "aria-label": "Logs" }, out.logs));
        if (out.type === "image") li.append(el("img", { class: "output", alt: "image output", src: out.url }));
      }
    }
    li.querySelector(".step-status").replaceChildren(badge(item.status === "interpreting" ? "in_progress" : item.status));
    return li;
  }
  if (item.type === "function_call") {
    const li = rItem(item.id, "tool");
    if (!li.firstChild) {
      li.args = "";
      li.append(el("div", { class: "who" }, "function call"), el("pre", { class: "logs fn", "aria-label": "Function call" }));
    }
    li.dataset.callId = item.call_id || "";
    if (final) li.args = item.arguments || "";
    li.querySelector("pre.fn").textContent = `${item.name}(${li.args})`;
    return li;
  }
  if (item.type === "file_search_call") {
    const li = rItem(item.id, "tool");
    const results = item.results || [];
    li.replaceChildren(el("div", { class: "who" }, "file_search", badge(item.status)),
      el("div", { class: "muted" }, `Searched: ${(item.queries || []).join("; ")}`),
      el("ol", { class: "results", "aria-label": "Search results" },
        ...results.map((r) => el("li", {}, `${r.filename} (score ${Number(r.score).toFixed(2)})`))));
    return li;
  }
  return null;
}

function onResponseEvent(event, data) {
  switch (data.type || event) {
    case "response.created":
    case "response.in_progress":
      $("r-state").textContent = "Response in progress…";
      break;
    case "response.output_item.added":
      drawItem(data.item, false);
      rScroll();
      break;
    case "response.output_text.delta": {
      const div = document.querySelector(`#r-items [data-item-id="${data.item_id}"] .text.streaming`);
      if (div) div.append(data.delta);
      break;
    }
    case "response.code_interpreter_call_code.delta": {
      const li = document.querySelector(`#r-items [data-item-id="${data.item_id}"]`);
      if (li) {
        li.code += data.delta;
        highlight(li.code, li.querySelector("pre.code code"));
      }
      break;
    }
    case "response.code_interpreter_call.interpreting": {
      const li = document.querySelector(`#r-items [data-item-id="${data.item_id}"] .step-status`);
      if (li) li.replaceChildren(badge("in_progress"));
      break;
    }
    case "response.function_call_arguments.delta": {
      const li = document.querySelector(`#r-items [data-item-id="${data.item_id}"]`);
      if (li) {
        li.args += data.delta;
        li.querySelector("pre.fn").textContent = li.querySelector("pre.fn").textContent.replace(/\(.*\)$/s, `(${li.args})`);
      }
      break;
    }
    case "response.output_item.done":
      drawItem(data.item, true);
      rScroll();
      break;
    case "response.completed":
    case "response.incomplete":
    case "response.failed":
      responseEnded(data.response);
      break;
    case "error":
      showError("r-error", new Error((data.error && data.error.message) || data.message || "The stream failed."));
      break;
  }
}

/** The line that says how a response ended. */
function endLine(r) {
  const why = r.error ? `: ${r.error.message}` : r.incomplete_details ? `: ${r.incomplete_details.reason}` : "";
  const usage = r.usage ? `${r.usage.total_tokens} tokens` : "";
  $("r-items").append(el("li", { class: "run-end " + r.status, "data-response-id": r.id, title: r.id },
    badge(r.status), `Response ${r.status}${why}`, el("span", { class: "muted" }, usage)));
}

function showChain() {
  $("r-chain").textContent = rs.conversation ? `conversation ${rs.conversation}`
    : rs.previous ? `previous_response_id ${rs.previous}` : "";
}

function responseEnded(r) {
  if (!rs.conversation) rs.previous = r.id;
  localStorage.setItem(LAST_CHAT, JSON.stringify({ previous: rs.previous, conversation: rs.conversation }));
  showChain();
  endLine(r);
  const calls = (r.output || []).filter((i) => i.type === "function_call");
  if (calls.length && r.status === "completed") askForFunctionOutputs(calls);
  rScroll();
  if (rs.container) loadContainerFiles().catch((e) => showError("r-error", e));
}

function askForFunctionOutputs(calls) {
  const box = $("r-tool-calls");
  box.textContent = "";
  for (const call of calls) {
    const id = "r-out-" + call.call_id;
    box.append(el("label", { for: id }, `${call.name}(${call.arguments})`),
      el("textarea", { id, rows: "2", "data-call-id": call.call_id,
        placeholder: `What ${call.name} returned, e.g. {"result": …} or plain text` }));
  }
  $("r-tool-form").hidden = false;
  $("r-send").disabled = true;
  box.querySelector("textarea").focus();
}

// ------------------------------------------------------------------------------------------------ sending

async function createResponse(input) {
  const body = {
    model: $("r-model").value,
    input,
    tools: responseTools(),
    include: ["code_interpreter_call.outputs", "file_search_call.results"],
  };
  const instructions = $("r-instructions").value.trim();
  if (instructions) body.instructions = instructions;
  if ($("r-continue").value === "conversation") {
    if (!rs.conversation) rs.conversation = (await api("POST", "/conversations", {})).id;
    body.conversation = rs.conversation;
  } else if (rs.previous) body.previous_response_id = rs.previous;
  rs.busy = true;
  $("r-send").disabled = true;
  try {
    await stream("/responses", body, onResponseEvent);
  } finally {
    rs.busy = false;
    $("r-state").textContent = "";
    if ($("r-tool-form").hidden) $("r-send").disabled = false;
  }
}

async function sendInput() {
  const text = $("r-input").value;
  if (!text.trim() || rs.busy) return;
  if (!$("r-model").value) throw new Error("Pick a model first.");
  const files = await uploadAll($("r-fs-files"), "assistants");
  if (files.length) {
    rs.storeIds = [(await api("POST", "/vector_stores", { file_ids: files })).id];
    $("r-fs-store").textContent = "Vector store: " + rs.storeIds[0];
  }
  $("r-items").append(el("li", { class: "msg user" }, el("div", { class: "who" }, "user"), markdown(text, [])));
  $("r-input").value = "";
  rScroll();
  await createResponse([{ role: "user", content: text }]);
}

async function sendFunctionOutputs() {
  const outputs = [...$("r-tool-form").querySelectorAll("textarea")].map((t) => ({
    type: "function_call_output", call_id: t.dataset.callId, output: t.value,
  }));
  for (const o of outputs) {
    const li = document.querySelector(`#r-items .tool[data-call-id="${o.call_id}"]`);
    if (li) li.append(el("pre", { class: "logs fn-output", "aria-label": "Function output" }, "→ " + o.output));
  }
  $("r-tool-form").hidden = true;
  await createResponse(outputs);
}

function showContainer(id) {
  if (rs.container === id) return;
  rs.container = id;
  $("c-id").textContent = id;
}

async function loadContainerFiles() {
  const list = await api("GET", `/containers/${rs.container}/files?limit=100`);
  const ul = $("c-files");
  ul.textContent = "";
  for (const f of list.data) {
    const name = (f.path || f.id).split("/").pop();
    const a = el("a", { href: "#", download: name, class: "download", title: f.path }, name);
    containerBlob(rs.container, f.id).then((blob) => (a.href = URL.createObjectURL(blob))).catch((e) => showError("r-error", e));
    ul.append(el("li", { "data-file-id": f.id }, a, el("span", { class: "muted" }, ` ${f.bytes ?? ""} bytes`)));
  }
  if (!list.data.length) ul.append(el("li", { class: "muted" }, "No files yet."));
}

/** Draws an item read back from the API: the user's input, a function's output under its call, or output. */
function drawStored(item) {
  if (item.type === "message" && item.role === "user") {
    const text = (typeof item.content === "string" ? item.content
      : (item.content || []).filter((p) => p.type === "input_text" || p.type === "text").map((p) => p.text).join("\n"));
    $("r-items").append(el("li", { class: "msg user", "data-item-id": item.id || "" },
      el("div", { class: "who" }, "user"), markdown(text, [])));
  } else if (item.type === "function_call_output") {
    const li = document.querySelector(`#r-items .tool[data-call-id="${item.call_id}"]`);
    if (li) li.append(el("pre", { class: "logs fn-output", "aria-label": "Function output" }, "→ " + item.output));
  } else drawItem(item, true);
}

/** After a reload, the last chat again: its conversation's items, or its previous_response_id chain. */
async function restoreChat() {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(LAST_CHAT) || "null");
  } catch (_) {
    /* nothing to restore */
  }
  if (!saved || (!saved.previous && !saved.conversation)) return;
  $("r-items").textContent = "";
  if (saved.conversation) {
    rs.conversation = saved.conversation;
    $("r-continue").value = "conversation";
    const items = await api("GET", `/conversations/${saved.conversation}/items?order=asc&limit=100`
      + "&include[]=code_interpreter_call.outputs&include[]=file_search_call.results");
    items.data.forEach(drawStored);
  } else {
    const chain = [];
    for (let id = saved.previous; id && chain.length < 50;) {
      const r = await api("GET", `/responses/${id}`);
      chain.unshift(r);
      id = r.previous_response_id;
    }
    for (const r of chain) {
      const inputs = await api("GET", `/responses/${r.id}/input_items?order=asc&limit=100`);
      inputs.data.forEach(drawStored);
      r.output.forEach((item) => drawItem(item, true));
      endLine(r);
    }
    rs.previous = saved.previous;
    if (chain.length && (state.models || []).includes(chain[chain.length - 1].model)) $("r-model").value = chain[chain.length - 1].model;
  }
  showChain();
  rScroll();
  if (rs.container) await loadContainerFiles();
}

/** Called by app.js once the key is known and the models are listed. */
async function startResponses() {
  fillResponseModels();
  try {
    await restoreChat();
  } catch (err) {
    // The chat is gone (deleted, or another key's): start a new one and say why.
    newChat();
    showError("r-error", err);
  }
}

function newChat() {
  localStorage.removeItem(LAST_CHAT);
  rs.previous = null;
  rs.conversation = null;
  rs.container = null;
  $("r-items").textContent = "";
  $("r-chain").textContent = "";
  $("c-id").textContent = "No container yet: it starts with the first code.";
  $("c-files").textContent = "";
  $("r-tool-form").hidden = true;
  $("r-send").disabled = false;
  $("r-input").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("mode-assistants").addEventListener("click", () => setMode("assistants"));
  $("mode-responses").addEventListener("click", () => setMode("responses"));
  $("r-composer").addEventListener("submit", guarded("r-error", sendInput));
  $("r-tool-form").addEventListener("submit", guarded("r-error", sendFunctionOutputs));
  $("r-new").addEventListener("click", newChat);
  $("r-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!$("r-send").disabled) $("r-composer").requestSubmit();
    }
  });
  setMode(localStorage.getItem(MODE) === "responses" ? "responses" : "assistants");
});
