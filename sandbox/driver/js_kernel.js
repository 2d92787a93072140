// The session's JavaScript context (see js_kernel.py), run as `node js_kernel.js`.
//
// Cells run in node's own global context as scripts, so globals and top-level let/const/function
// persist and the last expression is the value; a cell with top-level `await` runs as an async
// function whose top-level declarations are made globals and whose last line, when it is an
// expression, is the value. This file is a module: its own names stay out of the cells' scope.
//
// Requests come on fd ASSISTD_JS_IN, answers go to fd ASSISTD_JS_OUT, one JSON line each:
//   {"code": ...}            -> {"ok": true, "text": inspected value | null}
//                               | {"ok": false, "name", "message", "stack"}
//   {"op": "checkpoint"}     -> {"ok": true, "values": {name: saved}, "kept": [names],
//                                "skipped": [{"name", "type", "reason"}]}
//   {"op": "restore", "values": {name: saved}} -> {"ok": true, "restored": [names],
//                                "failed": [{"name", "type", "reason"}]}
// where saved is {"kind": "global" | "let" | "const", and "v8": base64 of v8.serialize(value),
// "source": a function's or class's source text, or "require": the module whose exports it is
// (with "property": the exported function it is)}.
'use strict';
const fs = require('fs');
const path = require('path');
const util = require('util');
const v8 = require('v8');
const vm = require('vm');
const readline = require('readline');
const { createRequire } = require('module');

// `require` for cells resolves from the working directory, as `node -e` does.
globalThis.require = createRequire(path.join(process.cwd(), '[cell]'));
// What the context had before any cell ran: not the user's.
const BASELINE = new Set(Object.getOwnPropertyNames(globalThis));
const RESTORE_SLOT = '__assistd_restored_value';

const out = Number(process.env.ASSISTD_JS_OUT);
const KEYWORD = /^(const|let|var|if|else|for|while|do|return|function|async\s+function|class|try|catch|finally|switch|throw|import|export|break|continue|\}|\/\/|\/\*|\*)/;

function asyncBody(code, value) {
  const lines = code.split('\n');
  for (let i = 0; i < lines.length; i++) {
    lines[i] = lines[i]
      .replace(/^(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=/, 'globalThis.$1 =')
      .replace(/^(async\s+)?function\s*(\*?)\s*([A-Za-z_$][\w$]*)/, 'globalThis.$3 = $1function$2 $3')
      .replace(/^class\s+([A-Za-z_$][\w$]*)/, 'globalThis.$1 = class $1');
  }
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === '') last--;
  if (value && last >= 0) {
    const line = lines[last];
    const bare = line.replace(/;\s*$/, '');
    const cut = bare.lastIndexOf(';');
    const expr = bare.slice(cut + 1).trim();
    if (line === line.trimStart() && !KEYWORD.test(expr) && !/[{,(\[]\s*$/.test(line) && expr) {
      lines[last] = bare.slice(0, cut + 1) + ' return (' + expr + ');';
    }
  }
  return '(async () => {\n' + lines.join('\n') + '\n})()';
}

async function run(code) {
  let value;
  try {
    new vm.Script(code, { filename: 'cell.js' });
    value = vm.runInThisContext(code, { filename: 'cell.js' });
  } catch (e) {
    if (!(e instanceof SyntaxError && /await/.test(e.message))) throw e;
    // The last line taken for the value may not be an expression after all: then no value.
    let body = asyncBody(code, true);
    try { new vm.Script(body); } catch (_) { body = asyncBody(code, false); }
    value = await vm.runInThisContext(body, { filename: 'cell.js' });
  }
  if (value && typeof value.then === 'function') value = await value;
  return value;
}

// The stack down to the cell's own frames: the kernel's and vm's frames below them are noise.
function cellStack(err) {
  const stack = String(err.stack || err);
  const lines = stack.split('\n');
  const cut = lines.findIndex((line) => /^\s+at /.test(line) && /js_kernel\.js|node:vm/.test(line));
  return (cut < 0 ? lines : lines.slice(0, cut)).join('\n');
}

// ------------------------------------------------------------------------------ checkpoints

// Names of the context's top-level let/const/class declarations (not properties of globalThis).
function lexicalNames() {
  const inspector = require('inspector');
  const session = new inspector.Session();
  session.connect();
  let names = [];
  try {
    session.post('Runtime.globalLexicalScopeNames', {}, (err, result) => {
      if (!err && result) names = result.names;
    });
  } finally {
    session.disconnect();
  }
  return names;
}

function typeName(value) {
  if (value === null) return 'null';
  if (typeof value === 'object' || typeof value === 'function') {
    const ctor = value.constructor;
    return (ctor && typeof ctor.name === 'string' && ctor.name) || typeof value;
  }
  return typeof value;
}

function firstLine(err) {
  return String((err && err.message) || err).split('\n')[0].slice(0, 200);
}

// Loaded modules' exports and the functions they export (as `const { promisify } = require('util')`
// takes them), each with how to require it again: node's own modules as loaded so far, and those
// in require's cache.
function loadedModules() {
  const found = new Map();
  const add = (exports, module) => {
    if (exports === null || (typeof exports !== 'object' && typeof exports !== 'function')) return;
    if (!found.has(exports)) found.set(exports, { require: module });
    for (const key of Object.keys(exports)) {
      const desc = Object.getOwnPropertyDescriptor(exports, key);
      if (desc && typeof desc.value === 'function' && !found.has(desc.value)) {
        found.set(desc.value, { require: module, property: key });
      }
    }
  };
  const builtin = new Set(require('module').builtinModules);
  for (const entry of process.moduleLoadList || []) {
    const name = entry.startsWith('NativeModule ') && entry.slice(13);
    if (name && builtin.has(name)) {
      try { add(require(name), name); } catch (_) { /* not loadable from here */ }
    }
  }
  for (const [file, mod] of Object.entries(require.cache)) {
    if (mod && mod.loaded) add(mod.exports, file);
  }
  return found;
}

// A value as it is saved: a module's exports by what to require; functions and classes by their
// source text (re-evaluated at global scope on restore, so what they captured besides globals is
// lost); anything else through v8's serializer (structured clone: primitives, plain objects and
// arrays, Date, RegExp, Map, Set, typed arrays; class instances come back as plain objects).
function save(value, modules) {
  if ((typeof value === 'object' && value !== null) || typeof value === 'function') {
    const module = modules().get(value);
    if (module !== undefined) return module;
  }
  if (typeof value === 'function') {
    const source = Function.prototype.toString.call(value);
    if (/\{\s*\[native code\]\s*\}$/.test(source)) throw new Error('a built-in or bound function');
    new vm.Script('(' + source + ')');  // a method's shorthand source is no expression
    return { source };
  }
  return { v8: v8.serialize(value).toString('base64') };
}

function load(saved) {
  if (typeof saved.require === 'string') {
    const exports = globalThis.require(saved.require);
    return typeof saved.property === 'string' ? exports[saved.property] : exports;
  }
  if (typeof saved.source === 'string') return vm.runInThisContext('(' + saved.source + ')');
  return v8.deserialize(Buffer.from(saved.v8, 'base64'));
}

function checkpoint() {
  const values = {}, kept = [], skipped = [];
  let found = null;
  const modules = () => found || (found = loadedModules());
  const keep = (name, kind, value) => {
    try {
      values[name] = { kind, ...save(value, modules) };
      kept.push(name);
    } catch (e) {
      skipped.push({ name, type: typeName(value), reason: firstLine(e) });
    }
  };
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    if (BASELINE.has(name) || name === RESTORE_SLOT) continue;
    const desc = Object.getOwnPropertyDescriptor(globalThis, name);
    if (!desc || !('value' in desc)) continue;  // accessors are the runtime's, not data
    keep(name, 'global', desc.value);
  }
  for (const name of lexicalNames()) {
    let value;
    try {
      value = vm.runInThisContext(name);
    } catch (e) {  // declared, but its cell failed before it was set
      skipped.push({ name, type: 'undefined', reason: 'never initialised' });
      continue;
    }
    let kind = 'let';
    try {
      vm.runInThisContext(name + ' = ' + name);
    } catch (e) {
      kind = 'const';
    }
    keep(name, kind, value);
  }
  return { ok: true, values, kept, skipped };
}

function restore(values) {
  const restored = [], failed = [];
  // Modules, then functions and classes, then the values.
  const rank = (saved) => (typeof saved.require === 'string' ? 0 : typeof saved.source === 'string' ? 1 : 2);
  const names = Object.keys(values || {});
  names.sort((a, b) => rank(values[a]) - rank(values[b]));
  for (const name of names) {
    const saved = values[name];
    try {
      if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new Error('not an identifier');
      const value = load(saved);
      if (saved.kind === 'let' || saved.kind === 'const') {
        globalThis[RESTORE_SLOT] = value;
        try {
          vm.runInThisContext(saved.kind + ' ' + name + ' = globalThis.' + RESTORE_SLOT + ';');
        } finally {
          delete globalThis[RESTORE_SLOT];
        }
      } else {
        globalThis[name] = value;
      }
      restored.push(name);
    } catch (e) {
      failed.push({ name, type: '', reason: 'could not be loaded: ' + firstLine(e) });
    }
  }
  return { ok: true, restored, failed };
}

// ------------------------------------------------------------------------------ requests

function send(obj) { fs.writeSync(out, JSON.stringify(obj) + '\n'); }

async function handle(request) {
  if (request.op === 'checkpoint') return checkpoint();
  if (request.op === 'restore') return restore(request.values);
  try {
    const value = await run(request.code);
    return { ok: true, text: value === undefined ? null : util.inspect(value, { depth: 4, colors: false }) };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    return { ok: false, name: err.name || 'Error', message: err.message, stack: cellStack(err) };
  }
}

const lines = readline.createInterface({ input: fs.createReadStream(null, { fd: Number(process.env.ASSISTD_JS_IN) }) });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    let answer;
    try {
      answer = await handle(JSON.parse(line));
    } catch (e) {
      answer = { ok: false, name: 'Error', message: 'kernel error: ' + firstLine(e), stack: String(e && e.stack) };
    }
    send(answer);
  });
});
lines.on('close', () => process.exit(0));
send({ ready: true });
