// openai-node's AzureOpenAI against assistd: it calls `{endpoint}/openai/PATH?api-version=V` with an `api-key`
// header. Azure's code-interpreter flow (file, assistant with tool_resources, thread, run polled and streamed)
// must work with only the endpoint changed.

import { test } from 'node:test';

import { AzureOpenAI, toFile } from 'openai';

import { assert, BASE_URL, POLL, rejectsWithApiError, OpenAI, Script, textOf } from './helpers.mjs';

const ENDPOINT = BASE_URL.replace(/\/v1\/?$/, '');
const API_VERSION = '2024-05-01-preview';

function azure(apiKey = process.env.ASSISTD_API_KEY, options = {}) {
  return new AzureOpenAI({ endpoint: ENDPOINT, apiKey, apiVersion: API_VERSION, maxRetries: 0, timeout: 60_000, ...options });
}

test('the Azure code-interpreter flow runs through AzureOpenAI with a real sandbox', async () => {
  const client = azure();
  const script = await Script.create();
  await script.toolCall('code_interpreter', { code: "import os\nprint(open('/mnt/data/' + os.listdir('/mnt/data')[0]).read().count('x'))" });
  await script.textFromToolOutput('There are {tool_output} x.');
  const file = await client.files.create({ file: await toFile(Buffer.from('x,x,x\n'), 'xs.csv'), purpose: 'assistants' });
  const assistant = await client.beta.assistants.create({
    model: script.model,
    tools: [{ type: 'code_interpreter' }],
    tool_resources: { code_interpreter: { file_ids: [file.id] } },
  });
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Count the x.' }] });
  const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  const messages = await client.beta.threads.messages.list(thread.id);
  assert.equal(textOf(messages.data[0]), 'There are 3 x.');
  const listed = await client.beta.assistants.list({ limit: 100 });
  assert.ok(listed.data.some((a) => a.id === assistant.id));
});

test('a run streams through AzureOpenAI', async () => {
  const client = azure();
  const script = await Script.create();
  await script.text('Streamed via Azure.');
  const assistant = await client.beta.assistants.create({ model: script.model });
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
  const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
  let text = '';
  stream.on('textDelta', (delta) => { text += delta.value; });
  const run = await stream.finalRun();
  assert.equal(run.status, 'completed');
  assert.equal(text, 'Streamed via Azure.');
});

test('a wrong api-key is refused with 401', async () => {
  await rejectsWithApiError(azure('sk-wrong-azure-key').beta.assistants.list(), OpenAI.AuthenticationError, 401);
});
