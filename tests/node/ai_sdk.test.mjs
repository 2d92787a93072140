// The Vercel AI SDK (`ai` + `@ai-sdk/openai`, the Responses model) against assistd and the scripted model: two
// generateText turns with the provider-executed code interpreter, the second replaying `response.messages` —
// which the provider sends back as `{type: "item_reference", id: "ci_..."}` and `msg_...` references, with no
// previous_response_id. The model must read its earlier code and output, and the code state must carry over.

import { test } from 'node:test';

import { createOpenAI } from '@ai-sdk/openai';
import { generateText } from 'ai';

import { assert, BASE_URL, client, Script } from './helpers.mjs';

const provider = createOpenAI({ baseURL: BASE_URL, apiKey: process.env.ASSISTD_API_KEY });

function lastToolOutput(request) {
  const tools = request.messages.filter((m) => m.role === 'tool');
  return tools.length ? String(tools.at(-1).content) : '';
}

test('two generateText turns with the code interpreter: the second replays response.messages', async () => {
  const script = await Script.create();
  const model = provider.responses(script.model);
  const tools = { code_interpreter: provider.tools.codeInterpreter({ container: { type: 'auto' } }) };

  await script.toolCall('code_interpreter', { code: "kept = 'blue'\nprint('noted')" });
  await script.text('Noted the colour.');
  const question = { role: 'user', content: 'Remember the colour blue in a variable.' };
  const first = await generateText({ model, tools, messages: [question] });
  assert.equal(first.text, 'Noted the colour.');
  const firstCall = first.steps.flatMap((s) => s.content).find((p) => p.type === 'tool-call');
  assert.ok(firstCall, JSON.stringify(first.steps.map((s) => s.content)));
  assert.equal(firstCall.providerExecuted, true);

  await script.toolCall('code_interpreter', { code: 'print(kept)' });
  await script.textFromToolOutput('The colour is {tool_output}.');
  const second = await generateText({
    model,
    tools,
    messages: [question, ...first.response.messages, { role: 'user', content: 'Which colour was it?' }],
  });
  assert.equal(second.text, 'The colour is blue.');

  // The model read the first turn's code and output, before its answer, then the new question.
  const requests = await script.requests();
  const sent = requests.at(-2).messages;
  const calls = sent.filter((m) => m.tool_calls);
  assert.equal(calls.length, 1, JSON.stringify(sent));
  assert.match(calls[0].tool_calls[0].function.arguments, /kept = 'blue'/);
  const roles = sent.map((m) => m.role);
  const tool = roles.indexOf('tool');
  assert.equal(sent[tool].content, 'noted\n');
  assert.deepEqual(roles.slice(tool + 1), ['assistant', 'user']);
  assert.equal(sent[tool + 1].content, 'Noted the colour.');
  assert.equal(lastToolOutput(requests.at(-1)).trim(), 'blue');

  // Both responses ran their code in one container.
  const [r1, r2] = [first, second].map((r) => r.response.id);
  const containers = [];
  for (const id of [r1, r2]) {
    const r = await client.responses.retrieve(id);
    containers.push(r.output.find((i) => i.type === 'code_interpreter_call').container_id);
  }
  assert.equal(containers[0], containers[1]);
});
