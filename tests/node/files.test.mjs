// Files through the Node.js SDK: uploads from toFile and from an fs stream, retrieve, list, content, delete.

import { randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { toFile } from 'openai';

import { assert, client, isolatedClient, OpenAI, rejectsWithApiError } from './helpers.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'assistd-node-files-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function bytesOf(fileId, c = client) {
  const response = await c.files.content(fileId);
  assert.equal(response.status, 200);
  return { bytes: Buffer.from(await response.arrayBuffer()), contentType: response.headers.get('content-type') };
}

test('upload with toFile, retrieve, download the same bytes, delete', async () => {
  const data = Buffer.from('city,temp\nParis,21\nOslo,9\n');
  const f = await client.files.create({ file: await toFile(data, 'weather.csv'), purpose: 'assistants' });
  assert.match(f.id, /^file-/);
  assert.equal(f.object, 'file');
  assert.equal(f.bytes, data.length);
  assert.equal(f.filename, 'weather.csv');
  assert.equal(f.purpose, 'assistants');
  assert.ok(Math.abs(f.created_at - Date.now() / 1000) < 60);

  assert.deepEqual(await client.files.retrieve(f.id), f);

  const { bytes, contentType } = await bytesOf(f.id);
  assert.deepEqual(bytes, data);
  assert.equal(contentType.split(';')[0].trim(), 'text/csv');

  const deleted = await client.files.delete(f.id);
  assert.deepEqual(deleted, { id: f.id, object: 'file', deleted: true });
  await rejectsWithApiError(client.files.retrieve(f.id), OpenAI.NotFoundError, 404, { type: 'invalid_request_error' });
  await rejectsWithApiError(client.files.content(f.id), OpenAI.NotFoundError, 404);
});

test('upload from an fs read stream round-trips binary bytes', async () => {
  const data = Buffer.concat([randomBytes(256 * 1024), Buffer.from([0, 255, 0, 255])]);
  const path = join(tmp, 'blob.bin');
  writeFileSync(path, data);
  const f = await client.files.create({ file: createReadStream(path), purpose: 'assistants' });
  assert.equal(f.filename, 'blob.bin', 'the SDK takes the name from the stream\'s path');
  assert.equal(f.bytes, data.length);
  const { bytes } = await bytesOf(f.id);
  assert.ok(bytes.equals(data), 'downloaded content differs from the upload');
});

test('list shows a project\'s files newest first and filters by purpose', async () => {
  const c = isolatedClient(2);
  const a1 = await c.files.create({ file: await toFile(Buffer.from('1'), 'a1.txt'), purpose: 'assistants' });
  const v = await c.files.create({ file: await toFile(Buffer.from('2'), 'v.txt'), purpose: 'user_data' });
  const a2 = await c.files.create({ file: await toFile(Buffer.from('3'), 'a2.txt'), purpose: 'assistants' });

  const every = [];
  for await (const f of c.files.list()) every.push(f.id);
  assert.deepEqual(every, [a2.id, v.id, a1.id]);

  const assistants = [];
  for await (const f of c.files.list({ purpose: 'assistants', limit: 1 })) assistants.push(f.id);
  assert.deepEqual(assistants, [a2.id, a1.id]);

  // Another project sees none of them.
  await rejectsWithApiError(client.files.retrieve(a1.id), OpenAI.NotFoundError, 404);
});

test('an unknown purpose is a BadRequestError naming purpose', async () => {
  const error = await rejectsWithApiError(
    client.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'nonsense' }),
    OpenAI.BadRequestError,
    400,
    { type: 'invalid_request_error', param: 'purpose' },
  );
  assert.equal(error.param, 'purpose');
});
