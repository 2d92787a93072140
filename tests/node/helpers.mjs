// Shared by the Node.js SDK tests: clients, the scripted upstream's control endpoint, small assertions.
// tests/node/harness.py starts the server and the upstream and sets the ASSISTD_* variables read here.

import assert from 'node:assert/strict';
import { File as BufferFile } from 'node:buffer';

import OpenAI from 'openai';

// The SDK builds uploads from the global File, which Node.js has from v20 on; older Node.js gets node:buffer's.
if (typeof globalThis.File === 'undefined') globalThis.File = BufferFile;

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite through tests/node/harness.py (make test-node)`);
  return value;
}

export const BASE_URL = need('ASSISTD_BASE_URL');
const CONTROL = need('ASSISTD_UPSTREAM_CONTROL');
export const POLL = { pollIntervalMs: 100 };

/** An SDK client; no retries, so every status the server returns reaches the test as it was. */
export function makeClient(apiKey = need('ASSISTD_API_KEY'), options = {}) {
  return new OpenAI({ baseURL: BASE_URL, apiKey, maxRetries: 0, timeout: 60_000, ...options });
}

/** Project node_a's client. */
export const client = makeClient();
/** Project node_b's client: must not see node_a's objects. */
export const otherClient = makeClient(need('ASSISTD_OTHER_API_KEY'));

const isolatedKeys = need('ASSISTD_ISOLATED_KEYS').split(',');
/** A client of a project of its own; index i must be unique across the suite (files run concurrently). */
export function isolatedClient(i) {
  assert.ok(i < isolatedKeys.length, `only ${isolatedKeys.length} isolated keys; add more in harness.py`);
  return makeClient(isolatedKeys[i]);
}

async function control(method, path, body) {
  const res = await fetch(CONTROL + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(`upstream control ${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/**
 * A scripted model for one test: give the assistant `model: script.model`, push the turns it should answer
 * with, and read back what assistd sent it. Unscripted or exhausted models answer with a default text.
 */
export class Script {
  constructor(model) {
    this.model = model;
  }

  static async create() {
    const { model } = await control('POST', '/scripts', {});
    return new Script(model);
  }

  /** A plain answer. */
  async text(text, options = {}) {
    await control('POST', `/scripts/${this.model}/turns`, { text, ...options });
    return this;
  }

  /** An answer built from the last tool output the model was sent: `{tool_output}` is replaced by it. */
  async textFromToolOutput(template, options = {}) {
    await control('POST', `/scripts/${this.model}/turns`, { text_template: template, ...options });
    return this;
  }

  /** An answer that cites the first search result the last tool message offered: `{mark}` is its 【n:m†file】 mark. */
  async textCitingFirstResult(template, options = {}) {
    await control('POST', `/scripts/${this.model}/turns`, { text_cite: template, ...options });
    return this;
  }

  /** The model calls one function (`code_interpreter` with {code} is how assistd offers code execution). */
  async toolCall(name, args, options = {}) {
    await control('POST', `/scripts/${this.model}/turns`, { tool_calls: [{ name, arguments: args }], ...options });
    return this;
  }

  /** Every chat-completions request body assistd sent for this model, in order. */
  async requests() {
    return (await control('GET', `/scripts/${this.model}/requests`)).requests;
  }
}

/** The text of a message's content parts. */
export function textOf(message) {
  return message.content
    .filter((part) => part.type === 'text')
    .map((part) => part.text.value)
    .join('');
}

/** The newest assistant message of a thread. */
export async function lastAssistantMessage(threadId) {
  const page = await client.beta.threads.messages.list(threadId, { order: 'desc', limit: 20 });
  const message = page.data.find((m) => m.role === 'assistant');
  assert.ok(message, 'the thread has no assistant message');
  return message;
}

/**
 * Expects `promise` to reject with `ErrorClass` carrying OpenAI's error object: status, message, type, param,
 * code. `expected` may fix any of type, param, code, message; returns the error for further checks.
 */
export async function rejectsWithApiError(promise, ErrorClass, status, expected = {}) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error, `expected ${ErrorClass.name}, but the call succeeded`);
  assert.ok(error instanceof ErrorClass, `expected ${ErrorClass.name}, got ${error?.constructor?.name}: ${error}`);
  assert.ok(error instanceof OpenAI.APIError);
  assert.equal(error.status, status);
  assert.equal(typeof error.error, 'object', `the body has no OpenAI error object: ${JSON.stringify(error.error)}`);
  for (const field of ['message', 'type', 'param', 'code']) {
    assert.ok(field in error.error, `the error object lacks ${field}: ${JSON.stringify(error.error)}`);
  }
  assert.equal(typeof error.error.message, 'string');
  assert.ok(error.error.message.length > 0);
  // The SDK lifts the error object's fields onto the exception.
  assert.equal(error.type, error.error.type);
  assert.equal(error.param, error.error.param);
  assert.equal(error.code, error.error.code);
  assert.ok(error.message.includes(error.error.message), error.message);
  for (const [field, value] of Object.entries(expected)) {
    assert.deepEqual(error.error[field], value, `error.${field}: ${JSON.stringify(error.error)}`);
  }
  return error;
}

export { assert, OpenAI };
