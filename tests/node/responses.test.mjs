// The Responses and Conversations APIs through the Node.js SDK: output_text, a function-call round trip
// with previous_response_id, code whose state follows the chain, the responses.stream() helper with
// finalResponse(), and a conversation that a response reads and extends.

import { test } from 'node:test';

import { assert, client, otherClient, OpenAI, rejectsWithApiError, Script } from './helpers.mjs';

const CODE_TOOL = { type: 'code_interpreter', container: { type: 'auto' } };
const WEATHER = {
  type: 'function',
  name: 'get_weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } } },
  strict: false,
};

test('a plain response has the shape the SDK reads', async () => {
  const script = await Script.create();
  await script.text('Hi from the model.');
  const r = await client.responses.create({ model: script.model, input: 'hello', instructions: 'Be brief.' });
  assert.match(r.id, /^resp_/);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.output_text, 'Hi from the model.');
  assert.equal(r.instructions, 'Be brief.');
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  const again = await client.responses.retrieve(r.id);
  assert.deepEqual(again.output, r.output);
  const items = await client.responses.inputItems.list(r.id);
  assert.equal(items.data[0].content[0].text, 'hello');
  await rejectsWithApiError(otherClient.responses.retrieve(r.id), OpenAI.NotFoundError, 404);
});

test('a function call ends the response and the next one carries its output', async () => {
  const script = await Script.create();
  await script.toolCall('get_weather', { city: 'Lima' });
  const r = await client.responses.create({ model: script.model, input: 'Weather in Lima?', tools: [WEATHER] });
  const call = r.output.find((i) => i.type === 'function_call');
  assert.ok(call, JSON.stringify(r.output));
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Lima' });

  await script.textFromToolOutput('It is {tool_output}.');
  const next = await client.responses.create({
    model: script.model,
    previous_response_id: r.id,
    tools: [WEATHER],
    input: [{ type: 'function_call_output', call_id: call.call_id, output: 'warm' }],
  });
  assert.equal(next.output_text, 'It is warm.');
});

test('code keeps its variables along a previous_response_id chain', async () => {
  const script = await Script.create();
  await script.toolCall('code_interpreter', { code: 'total = 40' });
  await script.text('kept');
  const first = await client.responses.create({ model: script.model, input: 'keep', tools: [CODE_TOOL] });
  await script.toolCall('code_interpreter', { code: 'print(total + 2)' });
  await script.textFromToolOutput('{tool_output}');
  const second = await client.responses.create({
    model: script.model,
    input: 'use',
    tools: [CODE_TOOL],
    previous_response_id: first.id,
    include: ['code_interpreter_call.outputs'],
  });
  assert.equal(second.output_text, '42');
  const ci = second.output.find((i) => i.type === 'code_interpreter_call');
  assert.deepEqual(ci.outputs, [{ type: 'logs', logs: '42\n' }]);
  assert.equal(ci.container_id, first.output.find((i) => i.type === 'code_interpreter_call').container_id);
});

test('responses.stream() delivers the deltas and the final response', async () => {
  const script = await Script.create();
  await script.toolCall('code_interpreter', { code: 'print(7 * 6)' }, { arg_chunk: 4 });
  await script.text('Forty-two.');
  const stream = client.responses.stream({ model: script.model, input: 'compute', tools: [CODE_TOOL] });
  const kinds = [];
  let text = '';
  let code = '';
  stream.on('response.output_text.delta', (e) => { text += e.delta; });
  stream.on('response.code_interpreter_call_code.delta', (e) => { code += e.delta; });
  for await (const event of stream) {
    kinds.push(event.type);
  }
  const final = await stream.finalResponse();
  assert.equal(kinds[0], 'response.created');
  assert.equal(kinds.at(-1), 'response.completed');
  assert.equal(text, 'Forty-two.');
  assert.equal(code, 'print(7 * 6)');
  assert.equal(final.output_text, 'Forty-two.');
  assert.deepEqual(final.output.map((i) => i.type), ['code_interpreter_call', 'message']);
  const seqs = [];
  // sequence_number is dense from 0.
  await script.text('ok');
  const again = client.responses.stream({ model: script.model, input: 'again' });
  for await (const event of again) {
    seqs.push(event.sequence_number);
  }
  assert.deepEqual(seqs, seqs.map((_, i) => i));
});

test('a conversation is read and extended by its responses', async () => {
  const script = await Script.create();
  const conv = await client.conversations.create({ items: [{ role: 'user', content: 'The code word is kiwi.' }] });
  await script.text('Noted.');
  const r = await client.responses.create({ model: script.model, input: 'Remember it.', conversation: conv.id });
  assert.equal(r.conversation.id, conv.id);
  const [request] = await script.requests();
  assert.ok(JSON.stringify(request.messages).includes('kiwi'));
  const items = await client.conversations.items.list(conv.id, { order: 'asc' });
  assert.deepEqual(items.data.map((i) => i.role), ['user', 'user', 'assistant']);
  await rejectsWithApiError(
    client.responses.create({ model: script.model, input: 'x', conversation: conv.id, previous_response_id: r.id }),
    OpenAI.BadRequestError, 400, { param: 'conversation' },
  );
});

test('containers: an upload read by a response, and the file its code wrote cited and downloaded', async () => {
  const script = await Script.create();
  const container = await client.containers.create({ name: 'node-container' });
  assert.match(container.id, /^cntr_/);
  await client.containers.files.create(container.id, { file: await OpenAI.toFile(Buffer.from('20\n'), 'n.txt') });
  const code = "v = int(open('/mnt/data/n.txt').read()) + 1\nopen('/mnt/data/out.txt', 'w').write(str(v))\nprint(v)";
  await script.toolCall('code_interpreter', { code });
  await script.text('See sandbox:/mnt/data/out.txt');
  const r = await client.responses.create({
    model: script.model,
    input: 'add one',
    tools: [{ type: 'code_interpreter', container: container.id }],
  });
  const ci = r.output.find((i) => i.type === 'code_interpreter_call');
  assert.equal(ci.container_id, container.id);
  const [citation] = r.output.at(-1).content[0].annotations;
  assert.equal(citation.type, 'container_file_citation');
  assert.equal(citation.filename, 'out.txt');
  const file = await client.containers.files.retrieve(citation.file_id, { container_id: container.id });
  assert.equal(file.source, 'assistant');
  const content = await client.containers.files.content.retrieve(citation.file_id, { container_id: container.id });
  assert.equal(await content.text(), '21');
  const listed = await client.containers.files.list(container.id);
  assert.deepEqual(listed.data.map((f) => f.path).sort(), ['/mnt/data/n.txt', '/mnt/data/out.txt']);
  await client.containers.delete(container.id);
  await rejectsWithApiError(client.containers.retrieve(container.id), OpenAI.NotFoundError, 404);
});
