// Assistants through the Node.js SDK: create, retrieve, update, list with auto-pagination, delete.

import { test } from 'node:test';

import { assert, client, isolatedClient, OpenAI, otherClient, rejectsWithApiError } from './helpers.mjs';

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

test('create, retrieve, update and delete an assistant', async () => {
  const created = await client.beta.assistants.create({
    model: 'gpt-4o',
    name: 'Math Tutor',
    description: 'Answers with code',
    instructions: 'You are a personal math tutor.',
    tools: [{ type: 'code_interpreter' }, WEATHER_TOOL],
    metadata: { team: 'math' },
    temperature: 0.5,
    top_p: 0.9,
  });
  assert.match(created.id, /^asst_/);
  assert.equal(created.object, 'assistant');
  assert.ok(Math.abs(created.created_at - Date.now() / 1000) < 60);
  assert.equal(created.model, 'gpt-4o');
  assert.equal(created.name, 'Math Tutor');
  assert.equal(created.description, 'Answers with code');
  assert.equal(created.instructions, 'You are a personal math tutor.');
  assert.deepEqual(created.tools.map((t) => t.type), ['code_interpreter', 'function']);
  assert.equal(created.tools[1].function.name, 'get_weather');
  assert.deepEqual(created.tools[1].function.parameters, WEATHER_TOOL.function.parameters);
  assert.deepEqual(created.metadata, { team: 'math' });
  assert.equal(created.temperature, 0.5);
  assert.equal(created.top_p, 0.9);

  assert.deepEqual(await client.beta.assistants.retrieve(created.id), created);

  const updated = await client.beta.assistants.update(created.id, {
    name: 'Renamed',
    metadata: { team: 'physics', tier: '2' },
    tools: [{ type: 'code_interpreter' }],
  });
  assert.equal(updated.id, created.id);
  assert.equal(updated.created_at, created.created_at);
  assert.equal(updated.name, 'Renamed');
  assert.equal(updated.instructions, created.instructions, 'fields not in the update stay as they were');
  assert.deepEqual(updated.metadata, { team: 'physics', tier: '2' });
  assert.deepEqual(updated.tools.map((t) => t.type), ['code_interpreter']);
  assert.deepEqual(await client.beta.assistants.retrieve(created.id), updated);

  const deleted = await client.beta.assistants.delete(created.id);
  assert.deepEqual(deleted, { id: created.id, object: 'assistant.deleted', deleted: true });
  await rejectsWithApiError(client.beta.assistants.retrieve(created.id), OpenAI.NotFoundError, 404, {
    type: 'invalid_request_error',
    message: `No assistant found with id '${created.id}'.`,
  });
  await rejectsWithApiError(client.beta.assistants.delete(created.id), OpenAI.NotFoundError, 404);
});

test('create with only a model fills in the defaults', async () => {
  const a = await client.beta.assistants.create({ model: 'gpt-4o-mini' });
  assert.equal(a.name, null);
  assert.equal(a.description, null);
  assert.equal(a.instructions, null);
  assert.deepEqual(a.tools, []);
  assert.deepEqual(a.metadata, {});
  assert.equal(a.temperature, 1);
  assert.equal(a.top_p, 1);
  assert.equal(a.response_format, 'auto');
});

test('another project cannot see the assistant', async () => {
  const a = await client.beta.assistants.create({ model: 'gpt-4o' });
  await rejectsWithApiError(otherClient.beta.assistants.retrieve(a.id), OpenAI.NotFoundError, 404);
});

test('list pages with limit/after, and for-await walks every page', async () => {
  const c = isolatedClient(0);
  const ids = [];
  for (let i = 0; i < 7; i += 1) ids.push((await c.beta.assistants.create({ model: 'gpt-4o', name: `a${i}` })).id);
  const newestFirst = [...ids].reverse();

  // One page by hand.
  const first = await c.beta.assistants.list({ limit: 3 });
  assert.deepEqual(first.data.map((a) => a.id), newestFirst.slice(0, 3));
  assert.equal(first.has_more, true);
  assert.equal(first.body.object, 'list');
  assert.equal(first.body.first_id, newestFirst[0]);
  assert.equal(first.body.last_id, newestFirst[2]);
  assert.ok(first.hasNextPage());
  const second = await first.getNextPage();
  assert.deepEqual(second.data.map((a) => a.id), newestFirst.slice(3, 6));

  // Auto-pagination over items: the SDK follows `after` until has_more is false.
  const seen = [];
  for await (const a of c.beta.assistants.list({ limit: 2 })) seen.push(a.id);
  assert.deepEqual(seen, newestFirst);

  // ... and over pages.
  const pageSizes = [];
  for await (const page of (await c.beta.assistants.list({ limit: 3, order: 'asc' })).iterPages()) {
    pageSizes.push(page.data.length);
  }
  assert.deepEqual(pageSizes, [3, 3, 1]);

  const asc = [];
  for await (const a of c.beta.assistants.list({ limit: 4, order: 'asc' })) asc.push(a.id);
  assert.deepEqual(asc, ids);

  // `before` pages backwards.
  const before = await c.beta.assistants.list({ order: 'asc', before: ids[4] });
  assert.deepEqual(before.data.map((a) => a.id), ids.slice(0, 4));
});

test('an invalid assistant is a BadRequestError naming the parameter', async () => {
  const c = isolatedClient(1);
  const error = await rejectsWithApiError(
    c.beta.assistants.create({ model: 'o3', reasoning_effort: 'extreme' }),
    OpenAI.BadRequestError,
    400,
    { type: 'invalid_request_error', param: 'reasoning_effort', code: 'invalid_value' },
  );
  assert.equal(error.param, 'reasoning_effort');
  assert.deepEqual((await c.beta.assistants.list()).data, [], 'a rejected create stores nothing');
});
