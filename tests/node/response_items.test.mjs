// Items passed between responses through the Node.js SDK: an item_reference to an earlier response's
// message, a function call answered in a conversation, and an input_file given inline as file_data.

import { test } from 'node:test';

import { assert, client, otherClient, OpenAI, rejectsWithApiError, Script } from './helpers.mjs';

const WEATHER = {
  type: 'function',
  name: 'get_weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } } },
  strict: false,
};

const shown = (request) => request.messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join('\n');

test('an item_reference reads as the item it names', async () => {
  const script = await Script.create();
  await script.text('The password is swordfish.');
  const first = await client.responses.create({ model: script.model, input: 'Tell me the password.' });
  await script.text('ok');
  await client.responses.create({
    model: script.model,
    input: [{ type: 'item_reference', id: first.output[0].id }, { role: 'user', content: 'Again?' }],
  });
  const requests = await script.requests();
  assert.match(shown(requests.at(-1)), /The password is swordfish\./);
  await rejectsWithApiError(
    otherClient.responses.create({ model: script.model, input: [{ type: 'item_reference', id: first.output[0].id }] }),
    OpenAI.NotFoundError,
    404,
  );
});

test('function outputs answer the newest response of a conversation', async () => {
  const script = await Script.create();
  const conv = await client.conversations.create();
  await script.toolCall('get_weather', { city: 'Quito' });
  const first = await client.responses.create({
    model: script.model, conversation: conv.id, input: 'Weather in Quito?', tools: [WEATHER],
  });
  const call = first.output.find((i) => i.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  await script.textFromToolOutput('Quito: {tool_output}.');
  const second = await client.responses.create({
    model: script.model,
    conversation: conv.id,
    tools: [WEATHER],
    input: [{ type: 'function_call_output', call_id: call.call_id, output: 'mild' }],
  });
  assert.equal(second.output_text, 'Quito: mild.');
});

test('an inline input_file is read by the model', async () => {
  const script = await Script.create();
  await script.text('ok');
  const data = `data:text/plain;base64,${Buffer.from('The meeting is in room 12.').toString('base64')}`;
  await client.responses.create({
    model: script.model,
    input: [{ role: 'user', content: [{ type: 'input_file', filename: 'note.txt', file_data: data }] }],
  });
  const requests = await script.requests();
  assert.match(shown(requests.at(-1)), /The meeting is in room 12\./);
});
