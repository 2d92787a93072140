// E2B's JavaScript SDK (@e2b/code-interpreter, with the e2b it installs) against assistd's /e2b surface,
// pointed at it by the variables an E2B user sets.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

const root = process.env.ASSISTD_BASE_URL.replace(/\/v1$/, '');
process.env.E2B_API_URL = `${root}/e2b`;
process.env.E2B_SANDBOX_URL = `${root}/e2b/sandbox`;
process.env.E2B_API_KEY = process.env.ASSISTD_API_KEY;

const { Sandbox } = await import('@e2b/code-interpreter');
const { CommandExitError, NotFoundError, SandboxNotFoundError } = await import('e2b');

let sbx;
before(async () => {
  sbx = await Sandbox.create({ timeoutMs: 120_000 });
});
after(async () => {
  await sbx?.kill().catch(() => {});
});

test('cells share Python state, print to stdout and report errors by name', async () => {
  await sbx.runCode('x = 1');
  assert.equal((await sbx.runCode('x + 1')).text, '2');
  const printed = await sbx.runCode("print('hello from python')");
  assert.deepEqual(printed.logs.stdout, ['hello from python\n']);
  const failed = await sbx.runCode('1/0');
  assert.equal(failed.error.name, 'ZeroDivisionError');
});

test('JavaScript cells share variables, await at the top level and print the first 100 Fibonacci numbers', async () => {
  await sbx.runCode('const greeting = "hello"\nlet count = 1', { language: 'js' });
  const shared = await sbx.runCode('count += 1;\n`${greeting} ${count}`', { language: 'js' });
  assert.equal(shared.text, "'hello 2'");
  assert.equal((await sbx.runCode('const v = await Promise.resolve(21)\nv * 2', { language: 'js' })).text, '42');
  const fib = await sbx.runCode(
    'let a = 0n, b = 1n\nfor (let i = 0; i < 100; i++) { console.log(a.toString()); [a, b] = [b, a + b] }',
    { language: 'js' },
  );
  const numbers = fib.logs.stdout.join('').trim().split('\n');
  assert.equal(numbers.length, 100);
  assert.equal(numbers[99], '218922995834555169026');
});

test('a matplotlib plot comes back as a png result', async () => {
  const execution = await sbx.runCode('import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()');
  const png = execution.results.find((r) => r.png)?.png;
  assert.ok(png, JSON.stringify(execution.results));
  assert.deepEqual([...Buffer.from(png, 'base64').subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
});

test('stdout reaches onStdout while the cell runs', async () => {
  const seen = [];
  const started = Date.now();
  await sbx.runCode("import time\nprint('early', flush=True)\ntime.sleep(2)\nprint('late')", {
    onStdout: (message) => seen.push([message.line, Date.now() - started]),
  });
  const ended = Date.now() - started;
  assert.deepEqual(seen.map(([line]) => line), ['early\n', 'late\n']);
  assert.ok(seen[0][1] < ended - 1500, `first line at ${seen[0][1]} ms, the cell ended at ${ended} ms`);
});

test('files round-trip between the SDK and code', async () => {
  await sbx.files.write('/home/user/js-in.txt', 'from node');
  assert.equal((await sbx.runCode("open('/home/user/js-in.txt').read()")).text, "'from node'");
  await sbx.runCode("open('/home/user/js-out.txt', 'w').write('from python')");
  assert.equal(await sbx.files.read('js-out.txt'), 'from python');
  const names = (await sbx.files.list('/home/user')).map((e) => e.name);
  assert.ok(names.includes('js-in.txt') && names.includes('js-out.txt'), names.join(','));
  await assert.rejects(sbx.files.read('/home/user/absent.txt'), NotFoundError);
});

test('commands return their output and a failing exit throws the SDK error', async () => {
  const result = await sbx.commands.run('echo hi');
  assert.equal(result.stdout, 'hi\n');
  assert.equal(result.exitCode, 0);
  await assert.rejects(sbx.commands.run('exit 3'), (e) => e instanceof CommandExitError && e.exitCode === 3);
});

test('connect keeps state; a killed sandbox is not found; another project cannot see one', async () => {
  const own = await Sandbox.create();
  await own.runCode('kept = 41');
  const again = await Sandbox.connect(own.sandboxId);
  assert.equal((await again.runCode('kept + 1')).text, '42');
  await assert.rejects(Sandbox.connect(own.sandboxId, { apiKey: process.env.ASSISTD_OTHER_API_KEY }), SandboxNotFoundError);
  assert.equal(await Sandbox.kill(own.sandboxId, { apiKey: process.env.ASSISTD_OTHER_API_KEY }), false);
  await own.kill();
  await assert.rejects(Sandbox.connect(own.sandboxId), SandboxNotFoundError);
});
