// openai-node's AssistantStream helper (beta.threads.runs.stream) over answers that carry annotations: a
// `sandbox:/mnt/data/...` link (file_path) after code wrote a CSV, and a file_search citation (file_citation).
// The helper merges delta arrays by each entry's `index` and throws without it, so the stream must complete
// and finalMessages() must carry the annotations over exactly the text they mark.

import { test } from 'node:test';

import { toFile } from 'openai';

import { assert, client, Script, textOf } from './helpers.mjs';

const WRITE_CSV = `
import pandas as pd
pd.DataFrame({'n': [1, 2, 3]}).to_csv('/mnt/data/chart.csv', index=False)
print('saved')
`;

const NOTES = `# Project Zephyr\n\nThe Zephyr launch is scheduled for Tuesday, 14 March, at the Lisbon office.\n`;

async function streamRun(threadId, assistantId) {
  const events = [];
  const errors = [];
  const stream = client.beta.threads.runs
    .stream(threadId, { assistant_id: assistantId })
    .on('event', (e) => events.push(e.event))
    .on('error', (e) => errors.push(e));
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();
  assert.deepEqual(errors, []);
  return { messages, run, events };
}

test('AssistantStream completes on an answer linking a file the code wrote, with its file_path annotation', async () => {
  const reply = 'Done. [Download chart.csv](sandbox:/mnt/data/chart.csv) now.';
  const script = await Script.create();
  await script.toolCall('code_interpreter', { code: WRITE_CSV });
  await script.text(reply);
  const a = await client.beta.assistants.create({ model: script.model, tools: [{ type: 'code_interpreter' }] });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Write the chart data.' }] });

  const { messages, run, events } = await streamRun(t.id, a.id);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(events.at(-1), 'thread.run.completed');
  const answer = messages.at(-1);
  assert.equal(textOf(answer), reply);
  const [part] = answer.content.filter((p) => p.type === 'text');
  assert.equal(part.text.annotations.length, 1, JSON.stringify(part.text.annotations));
  const [ann] = part.text.annotations;
  const link = 'sandbox:/mnt/data/chart.csv';
  assert.equal(ann.type, 'file_path');
  assert.equal(ann.text, link);
  assert.equal(reply.slice(ann.start_index, ann.end_index), link);
  const content = await client.files.content(ann.file_path.file_id);
  assert.equal(await content.text(), 'n\n1\n2\n3\n');
});

test('AssistantStream completes on a file_search answer, with its file_citation annotation', async () => {
  const script = await Script.create();
  await script.toolCall('file_search', { query: 'When is the Zephyr launch?' });
  await script.textCitingFirstResult('It launches on Tuesday, 14 March{mark}.');
  const file = await client.files.create({
    file: await toFile(Buffer.from(NOTES), 'zephyr.md'),
    purpose: 'assistants',
  });
  const vs = await client.vectorStores.create({ name: 'zephyr', file_ids: [file.id] });
  const a = await client.beta.assistants.create({
    model: script.model,
    tools: [{ type: 'file_search' }],
    tool_resources: { file_search: { vector_store_ids: [vs.id] } },
  });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'When do we launch?' }] });

  const { messages, run } = await streamRun(t.id, a.id);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  const answer = messages.at(-1);
  const text = textOf(answer);
  assert.match(text, /^It launches on Tuesday, 14 March【\d+:\d+†zephyr\.md】\.$/);
  const [part] = answer.content.filter((p) => p.type === 'text');
  assert.equal(part.text.annotations.length, 1, JSON.stringify(part.text.annotations));
  const [citation] = part.text.annotations;
  assert.equal(citation.type, 'file_citation');
  assert.equal(citation.file_citation.file_id, file.id);
  assert.equal(text.slice(citation.start_index, citation.end_index), citation.text);
  assert.match(citation.text, /^【\d+:\d+†zephyr\.md】$/);
});
