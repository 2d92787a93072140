// Runs through the Node.js SDK against the scripted upstream model: createAndPoll, streaming with the
// AssistantStream helpers, function calling with submitToolOutputsAndPoll, and a real code_interpreter run.

import { test } from 'node:test';

import { assert, client, lastAssistantMessage, OpenAI, POLL, rejectsWithApiError, Script, textOf } from './helpers.mjs';

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

test('createAndPoll runs a scripted text answer to completion', async () => {
  const script = await Script.create();
  await script.text('Hello! 2 + 2 = 4.');
  const a = await client.beta.assistants.create({ model: script.model, instructions: 'Be brief.' });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'What is 2+2?' }] });

  const run = await client.beta.threads.runs.createAndPoll(t.id, { assistant_id: a.id }, POLL);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.match(run.id, /^run_/);
  assert.equal(run.object, 'thread.run');
  assert.equal(run.thread_id, t.id);
  assert.equal(run.assistant_id, a.id);
  assert.equal(run.model, script.model);
  assert.equal(run.instructions, 'Be brief.');
  assert.equal(run.last_error, null);
  assert.ok(run.started_at && run.completed_at >= run.created_at);
  assert.deepEqual(run.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });

  const message = await lastAssistantMessage(t.id);
  assert.equal(textOf(message), 'Hello! 2 + 2 = 4.');
  assert.equal(message.run_id, run.id);
  assert.equal(message.assistant_id, a.id);

  assert.deepEqual(await client.beta.threads.runs.retrieve(run.id, { thread_id: t.id }), run);
  const runs = await client.beta.threads.runs.list(t.id);
  assert.deepEqual(runs.data.map((r) => r.id), [run.id]);

  const steps = (await client.beta.threads.runs.steps.list(run.id, { thread_id: t.id })).data;
  assert.deepEqual(steps.map((s) => s.type), ['message_creation']);
  assert.equal(steps[0].step_details.message_creation.message_id, message.id);

  // What the model was sent: the instructions first, the user's question last.
  const [request] = await script.requests();
  assert.equal(request.model, script.model);
  assert.ok(['system', 'developer'].includes(request.messages[0].role));
  assert.match(JSON.stringify(request.messages[0].content), /Be brief\./);
  assert.equal(request.messages.at(-1).role, 'user');
  assert.match(JSON.stringify(request.messages.at(-1).content), /What is 2\+2\?/);
});

test('runs.stream emits textDelta events and finalMessages()', async () => {
  const answer = 'Streaming works, one small piece at a time.';
  const script = await Script.create();
  await script.text(answer);
  const a = await client.beta.assistants.create({ model: script.model });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'stream please' }] });

  const deltas = [];
  const events = [];
  const done = [];
  let snapshot = '';
  const stream = client.beta.threads.runs
    .stream(t.id, { assistant_id: a.id })
    .on('event', (e) => events.push(e.event))
    .on('textDelta', (delta, snap) => {
      deltas.push(delta.value);
      snapshot = snap.value;
    })
    .on('messageDone', (message) => done.push(message));
  const messages = await stream.finalMessages();
  const run = await stream.finalRun();

  assert.ok(deltas.length >= 2, `the text should arrive in several deltas, got ${JSON.stringify(deltas)}`);
  assert.equal(deltas.join(''), answer);
  assert.equal(snapshot, answer);
  assert.equal(run.status, 'completed');
  assert.equal(messages.length, 1);
  assert.equal(textOf(messages[0]), answer);
  assert.equal(messages[0].role, 'assistant');
  assert.equal(messages[0].run_id, run.id);
  // finalMessages() are the SDK's snapshots (created + deltas); thread.message.completed carries the final state.
  assert.equal(done.length, 1);
  assert.equal(done[0].id, messages[0].id);
  assert.equal(done[0].status, 'completed');
  assert.equal(textOf(done[0]), answer);
  assert.equal(events[0], 'thread.run.created');
  assert.equal(events.at(-1), 'thread.run.completed');
  for (const name of ['thread.run.in_progress', 'thread.message.created', 'thread.message.delta',
    'thread.message.completed', 'thread.run.step.completed']) {
    assert.ok(events.includes(name), `no ${name} in ${events.join(', ')}`);
  }
  assert.equal(textOf(await lastAssistantMessage(t.id)), answer);
  const requests = await script.requests();
  assert.equal(requests.at(-1).stream, true, 'the upstream is streamed from too');
});

test('a function call goes through requires_action and submitToolOutputsAndPoll', async () => {
  const script = await Script.create();
  await script.toolCall('get_weather', { city: 'Paris' });
  await script.textFromToolOutput('It is {tool_output} in Paris.');
  const a = await client.beta.assistants.create({ model: script.model, tools: [WEATHER_TOOL] });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Weather in Paris?' }] });

  const run = await client.beta.threads.runs.createAndPoll(t.id, { assistant_id: a.id }, POLL);
  assert.equal(run.status, 'requires_action', JSON.stringify(run.last_error));
  assert.equal(run.required_action.type, 'submit_tool_outputs');
  const calls = run.required_action.submit_tool_outputs.tool_calls;
  assert.equal(calls.length, 1);
  const [call] = calls;
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

  // Outputs for an unknown call id are refused, and the run keeps waiting.
  await rejectsWithApiError(
    client.beta.threads.runs.submitToolOutputs(run.id, {
      thread_id: t.id,
      tool_outputs: [{ tool_call_id: 'call_unknown', output: 'x' }],
    }),
    OpenAI.BadRequestError,
    400,
  );

  const done = await client.beta.threads.runs.submitToolOutputsAndPoll(
    run.id,
    { thread_id: t.id, tool_outputs: [{ tool_call_id: call.id, output: '22C' }] },
    POLL,
  );
  assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
  assert.equal(done.required_action, null);
  assert.equal(textOf(await lastAssistantMessage(t.id)), 'It is 22C in Paris.');

  const steps = (await client.beta.threads.runs.steps.list(run.id, { thread_id: t.id, order: 'asc' })).data;
  assert.deepEqual(steps.map((s) => s.type), ['tool_calls', 'message_creation']);
  const [fn] = steps[0].step_details.tool_calls;
  assert.equal(fn.id, call.id);
  assert.equal(fn.function.output, '22C');

  // The model was offered the function as declared.
  const [first] = await script.requests();
  const offered = first.tools.filter((x) => x.type === 'function').map((x) => x.function);
  const weather = offered.find((f) => f.name === 'get_weather');
  assert.ok(weather, `get_weather was not offered: ${JSON.stringify(offered)}`);
  assert.equal(weather.description, WEATHER_TOOL.function.description);
  assert.deepEqual(weather.parameters, WEATHER_TOOL.function.parameters);
});

test('a code_interpreter run executes the code in the sandbox and reports its logs', async () => {
  const script = await Script.create();
  await script.toolCall('code_interpreter', { code: 'print(6*7)' });
  await script.textFromToolOutput('The answer is {tool_output}.');
  const a = await client.beta.assistants.create({ model: script.model, tools: [{ type: 'code_interpreter' }] });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'What is 6 times 7?' }] });

  const run = await client.beta.threads.runs.createAndPoll(t.id, { assistant_id: a.id }, POLL);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(textOf(await lastAssistantMessage(t.id)), 'The answer is 42.');
  assert.equal(run.usage.total_tokens, 36, 'two model turns of 18 tokens each');

  const steps = (await client.beta.threads.runs.steps.list(run.id, { thread_id: t.id, order: 'asc' })).data;
  assert.deepEqual(steps.map((s) => s.type), ['tool_calls', 'message_creation']);
  assert.ok(steps.every((s) => s.status === 'completed'));
  const [ci] = steps[0].step_details.tool_calls;
  assert.equal(ci.type, 'code_interpreter');
  assert.equal(ci.code_interpreter.input, 'print(6*7)');
  const logs = ci.code_interpreter.outputs.filter((o) => o.type === 'logs').map((o) => o.logs);
  assert.ok(logs.join('').includes('42'), `the step's logs lack 42: ${JSON.stringify(ci.code_interpreter.outputs)}`);

  const step = await client.beta.threads.runs.steps.retrieve(steps[0].id, { thread_id: t.id, run_id: run.id });
  assert.deepEqual(step, steps[0]);

  // The second model turn carried the call and its output, linked by id.
  const last = (await script.requests()).at(-1);
  const callMessage = last.messages.find((m) => m.role === 'assistant' && m.tool_calls);
  const toolMessage = last.messages.find((m) => m.role === 'tool');
  assert.equal(toolMessage.tool_call_id, callMessage.tool_calls[0].id);
  assert.match(JSON.stringify(toolMessage.content), /42/);
});

test('streamed code arrives in toolCallDelta events after toolCallCreated, as the quickstart app reads it', async () => {
  // Escapes and \u sequences (json.dumps writes é and the emoji as \u escapes) are cut across 3-character chunks.
  const code = 'word = "caf\u00e9 \u{1F600}"\nprint("q:\\"", "b:\\\\", word)\n';
  const script = await Script.create();
  await script.toolCall('code_interpreter', { code }, { arg_chunk: 3 });
  await script.text('done');
  const a = await client.beta.assistants.create({ model: script.model, tools: [{ type: 'code_interpreter' }] });
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'run it' }] });

  // What openai-assistants-quickstart does: toolCallCreated opens a code block, toolCallDelta appends input.
  const order = [];
  const created = [];
  const pieces = [];
  const logs = [];
  const stream = client.beta.threads.runs
    .stream(t.id, { assistant_id: a.id })
    .on('toolCallCreated', (call) => {
      order.push('created');
      // The SDK keeps filling the same snapshot object: copy what it was at creation.
      created.push(structuredClone(call));
    })
    .on('toolCallDelta', (delta) => {
      if (delta.type !== 'code_interpreter') return;
      if (delta.code_interpreter.input) {
        order.push('input');
        pieces.push(delta.code_interpreter.input);
      }
      for (const output of delta.code_interpreter.outputs ?? []) {
        if (output.type === 'logs') {
          order.push('logs');
          logs.push(output.logs);
        }
      }
    });
  const run = await stream.finalRun();
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));

  assert.equal(created.length, 1);
  assert.equal(created[0].type, 'code_interpreter');
  assert.equal(created[0].code_interpreter.input, '');
  assert.ok(pieces.length > 5, `the code should come in pieces, got ${JSON.stringify(pieces)}`);
  assert.equal(pieces.join(''), code);
  assert.deepEqual(logs, ['q:" b:\\ caf\u00e9 \u{1F600}\n']);
  assert.equal(order[0], 'created');
  assert.equal(order.at(-1), 'logs', 'the logs come after the code');

  const steps = (await client.beta.threads.runs.steps.list(run.id, { thread_id: t.id, order: 'asc' })).data;
  const [call] = steps[0].step_details.tool_calls;
  assert.equal(call.id, created[0].id);
  assert.equal(call.code_interpreter.input, code, 'what streamed is what was stored');
});
