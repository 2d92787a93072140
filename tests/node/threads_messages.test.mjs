// Threads and messages through the Node.js SDK, with the errors the SDK turns into typed exceptions.

import { test } from 'node:test';

import { assert, client, OpenAI, rejectsWithApiError, textOf } from './helpers.mjs';

test('a thread is created with messages, retrieved, updated and deleted', async () => {
  const t = await client.beta.threads.create({
    messages: [
      { role: 'user', content: 'first', metadata: { n: '1' } },
      { role: 'assistant', content: 'second' },
      { role: 'user', content: [{ type: 'text', text: 'third' }] },
    ],
    metadata: { user: 'u-42' },
  });
  assert.match(t.id, /^thread_/);
  assert.equal(t.object, 'thread');
  assert.deepEqual(t.metadata, { user: 'u-42' });

  const asc = (await client.beta.threads.messages.list(t.id, { order: 'asc' })).data;
  assert.deepEqual(asc.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.deepEqual(asc.map(textOf), ['first', 'second', 'third']);
  assert.ok(asc.every((m) => m.thread_id === t.id && m.object === 'thread.message'));
  assert.deepEqual(asc[0].metadata, { n: '1' });

  assert.deepEqual(await client.beta.threads.retrieve(t.id), t);

  const updated = await client.beta.threads.update(t.id, { metadata: { user: 'u-43', extra: 'x' } });
  assert.equal(updated.id, t.id);
  assert.equal(updated.created_at, t.created_at);
  assert.deepEqual(updated.metadata, { user: 'u-43', extra: 'x' });
  assert.deepEqual(await client.beta.threads.retrieve(t.id), updated);

  const deleted = await client.beta.threads.delete(t.id);
  assert.deepEqual(deleted, { id: t.id, object: 'thread.deleted', deleted: true });
  const gone = await rejectsWithApiError(client.beta.threads.retrieve(t.id), OpenAI.NotFoundError, 404, {
    type: 'invalid_request_error',
  });
  assert.ok(gone.error.message.includes(t.id), gone.error.message);
  await rejectsWithApiError(client.beta.threads.messages.list(t.id), OpenAI.NotFoundError, 404);
});

test('messages: create, list, retrieve, update, delete', async () => {
  const t = await client.beta.threads.create();
  const m1 = await client.beta.threads.messages.create(t.id, { role: 'user', content: 'hello' });
  assert.match(m1.id, /^msg_/);
  assert.equal(m1.object, 'thread.message');
  assert.equal(m1.thread_id, t.id);
  assert.equal(m1.role, 'user');
  assert.equal(m1.status, 'completed');
  assert.equal(m1.assistant_id, null);
  assert.equal(m1.run_id, null);
  assert.deepEqual(m1.content, [{ type: 'text', text: { value: 'hello', annotations: [] } }]);
  assert.deepEqual(m1.metadata, {});

  const m2 = await client.beta.threads.messages.create(t.id, {
    role: 'user',
    content: [
      { type: 'text', text: 'look' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } },
    ],
    metadata: { k: 'v' },
  });
  assert.deepEqual(m2.content.map((p) => p.type), ['text', 'image_url']);
  assert.equal(m2.content[1].image_url.detail, 'low');
  const m3 = await client.beta.threads.messages.create(t.id, { role: 'assistant', content: 'inserted' });
  assert.equal(m3.role, 'assistant');

  const newestFirst = await client.beta.threads.messages.list(t.id);
  assert.deepEqual(newestFirst.data.map((m) => m.id), [m3.id, m2.id, m1.id]);
  const all = [];
  for await (const m of client.beta.threads.messages.list(t.id, { limit: 1, order: 'asc' })) all.push(m.id);
  assert.deepEqual(all, [m1.id, m2.id, m3.id]);

  assert.deepEqual(await client.beta.threads.messages.retrieve(m2.id, { thread_id: t.id }), m2);

  const updated = await client.beta.threads.messages.update(m1.id, { thread_id: t.id, metadata: { seen: 'yes' } });
  assert.deepEqual(updated.metadata, { seen: 'yes' });
  assert.deepEqual(updated.content, m1.content, 'only metadata changes');

  const deleted = await client.beta.threads.messages.delete(m1.id, { thread_id: t.id });
  assert.deepEqual(deleted, { id: m1.id, object: 'thread.message.deleted', deleted: true });
  const listed = await client.beta.threads.messages.list(t.id, { order: 'asc' });
  assert.deepEqual(listed.data.map((m) => m.id), [m2.id, m3.id]);
});

test('an unknown message is a NotFoundError with OpenAI\'s error fields', async () => {
  const t = await client.beta.threads.create();
  const m = await client.beta.threads.messages.create(t.id, { role: 'user', content: 'x' });
  await client.beta.threads.messages.delete(m.id, { thread_id: t.id });

  const error = await rejectsWithApiError(
    client.beta.threads.messages.retrieve(m.id, { thread_id: t.id }),
    OpenAI.NotFoundError,
    404,
    { type: 'invalid_request_error', code: null },
  );
  assert.ok(error.error.message.includes(m.id), error.error.message);

  // A message is not reachable through another thread either.
  const t2 = await client.beta.threads.create();
  const m2 = await client.beta.threads.messages.create(t2.id, { role: 'user', content: 'y' });
  await rejectsWithApiError(client.beta.threads.messages.retrieve(m2.id, { thread_id: t.id }), OpenAI.NotFoundError,
    404);
  await rejectsWithApiError(
    client.beta.threads.messages.update('msg_doesnotexist', { thread_id: t.id, metadata: {} }),
    OpenAI.NotFoundError,
    404,
  );
});

test('an invalid message is a BadRequestError with param', async () => {
  const t = await client.beta.threads.create();
  const error = await rejectsWithApiError(
    client.beta.threads.messages.create(t.id, { role: 'user', content: [{ type: 'video' }] }),
    OpenAI.BadRequestError,
    400,
    {
      type: 'invalid_request_error',
      param: 'content[0].type',
      message: "Invalid value: 'video'. Supported values are: 'text', 'image_file', and 'image_url'.",
    },
  );
  assert.equal(error.param, 'content[0].type');

  const empty = await rejectsWithApiError(
    client.beta.threads.messages.create(t.id, { role: 'user', content: [] }),
    OpenAI.BadRequestError,
    400,
    { param: 'content', code: 'empty_array' },
  );
  assert.equal(empty.code, 'empty_array');
  assert.deepEqual((await client.beta.threads.messages.list(t.id)).data, [], 'nothing was stored');
});
