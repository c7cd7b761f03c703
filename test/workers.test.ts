/**
 * queue add / work / status on a real Redis (Debian's redis-server on a free loopback port, see
 * redis-server.ts): three workers, one killed with SIGKILL mid-part, and merge equal to a single
 * extract; a job that keeps failing; SIGTERM; Redis out of reach. Every CLI process runs with
 * loopback-guard.js preloaded: a connection or lookup anywhere but loopback would be logged.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Queue } from 'bullmq';

import { RESNET18 } from './helpers';
import { cli, cliChild, exited, expectOneLine, list, makePhotos, sameBytes, waitFor } from './parts-helpers';
import { type RedisServer, freePort, redisMissing, startRedis } from './redis-server';

const GUARD = path.join(__dirname, 'loopback-guard.js');
// A killed worker's part goes to another after this long: short, for the test.
const STALLED_SECONDS = '3';
const ARGS = ['--layer', 'layer4', '--pool', 'avg', '--batch', '2'];

let missing: string | undefined;
let missingError: unknown;
try {
  missing = redisMissing();
} catch (error) {
  missingError = error;
}

let dir: string;
let netLog: string;
let redis: RedisServer;
let env: NodeJS.ProcessEnv;

/** The queue's counts, read with BullMQ from the test (loopback too). */
async function counts(name: string): Promise<Record<string, number>> {
  const queue = new Queue(name, { connection: { url: redis.url } });
  try {
    return await queue.getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed');
  } finally {
    await queue.close();
  }
}

function worker(name: string, extra: string[] = []) {
  return cliChild(['queue', 'work', '--redis', redis.url, '--queue', name, '--stalled-seconds', STALLED_SECONDS, ...extra], { env });
}

/** The temporary .npy of `part` that process `pid` writes, when it holds at least one row. */
function writing(folder: string, part: string, pid: number): boolean {
  if (!fs.existsSync(folder)) return false;
  const temp = list(folder).find((f) => f.startsWith(`.${part}.npy.${pid}.`) && f.endsWith('.partial'));
  return temp !== undefined && fs.statSync(path.join(folder, temp)).size > 256;
}

if (missingError) {
  it('redis-server is installed where CI runs the queue tests', () => {
    throw missingError;
  });
}

describe(
  'queue on BullMQ with a real redis-server',
  { skip: missing ?? (missingError ? 'redis-server is missing: the failure above' : undefined) },
  () => {
    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-workers-'));
      netLog = path.join(dir, 'net.log');
      env = { NODE_OPTIONS: `--require ${GUARD}`, LTF_NET_LOG: netLog };
      redis = await startRedis();
    });
    after(async () => {
      await redis?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('the loopback guard sees a connection elsewhere (so that an empty log means something)', () => {
      const log = path.join(dir, 'guard-check.log');
      const code = "require('net').connect(9, '192.0.2.1').on('error', () => {})";
      const run = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, ...env, LTF_NET_LOG: log }, timeout: 10_000 });
      assert.equal(run.status, 0, String(run.stderr));
      assert.match(fs.readFileSync(log, 'utf8'), /connect 192\.0\.2\.1/);
    });

    it('3 workers, one killed (SIGKILL) mid-part: its job is taken up again; merge holds every input once, in order, equal to a single extract', async () => {
      const photos = path.join(dir, 'photos');
      const files = await makePhotos(photos, 24, 300);
      const folder = path.join(dir, 'three');
      const add = cli(
        ['queue', 'add', '--redis', redis.url, '--queue', 'three', RESNET18, photos, ...ARGS, '--out', folder, '--part-size', '4'],
        { env },
      );
      assert.equal(add.status, 0, add.stderr);
      assert.match(add.stderr, /queued 6 parts on three; 0 of 6 complete already/);
      const workers = [worker('three'), worker('three'), worker('three')];
      const [victim, ...survivors] = workers;
      let part = '';
      await waitFor('the victim to write a row of a part', () => {
        part = /(part-\d{5}) of .* started/.exec(victim.stderrText())?.[1] ?? '';
        return part !== '' && writing(folder, part, victim.pid!);
      });
      victim.kill('SIGKILL');
      assert.equal(await exited(victim), 'SIGKILL');
      assert.ok(
        !fs.existsSync(path.join(folder, `${part}.npy`)) && !fs.existsSync(path.join(folder, `${part}.index.csv`)),
        'no complete-looking part',
      );
      assert.ok(
        list(folder).some((f) => f.startsWith(`.${part}.npy.${victim.pid}.`)),
        "the victim's hidden temporary",
      );

      await waitFor('every job done', async () => (await counts('three')).completed === 6);
      const queue = new Queue('three', { connection: { url: redis.url } });
      const jobs = await queue.getJobs(['completed']);
      await queue.close();
      const taken = jobs.find((job) => job.id!.endsWith(part))!;
      assert.equal(taken.stalledCounter, 1, 'found stalled once, and put back');
      const others = survivors.map((s) => s.stderrText()).join('\n');
      assert.match(others, new RegExp(`${part} of .* started \\(attempt \\d\\)`));
      assert.match(others, new RegExp(`${part} done: 4 rows`));

      const status = cli(['queue', 'status', '--redis', redis.url, '--queue', 'three'], { env });
      assert.equal(status.status, 0, status.stderr);
      assert.equal(status.stdout, 'done 6, waiting 0, active 0, failed 0, workers 2\n');
      for (const s of survivors) s.kill('SIGTERM');
      assert.deepEqual(await Promise.all(survivors.map(exited)), [0, 0]);

      const merged = path.join(dir, 'three.npy');
      const run = cli(['merge', folder, '--out', merged], { env });
      assert.equal(run.status, 0, run.stderr);
      const index = fs.readFileSync(path.join(dir, 'three.index.csv'), 'utf8').trimEnd().split('\n');
      assert.deepEqual(index, ['row,source,frame,time_s', ...files.map((f, i) => `${i},${f},,`)], 'every input once, in order');
      const single = path.join(dir, 'single.npy');
      assert.equal(cli(['extract', RESNET18, photos, ...ARGS, '--out', single, '--quiet']).status, 0);
      sameBytes(merged, single);
      sameBytes(path.join(dir, 'three.index.csv'), path.join(dir, 'single.index.csv'));

      // Adding the folder again queues nothing: every part is complete.
      const again = cli(['queue', 'add', '--redis', redis.url, '--queue', 'three', RESNET18, photos, ...ARGS, '--out', folder], { env });
      assert.match(again.stderr, /queued 0 parts on three; 6 of 6 complete already/);
      // A part whose files are gone is queued again, though its job completed.
      for (const file of ['part-00000.npy', 'part-00000.index.csv']) fs.rmSync(path.join(folder, file));
      const redo = cli(['queue', 'add', '--redis', redis.url, '--queue', 'three', RESNET18, photos, ...ARGS, '--out', folder], { env });
      assert.match(redo.stderr, /queued 1 part on three; 5 of 6 complete already/);
      assert.equal((await counts('three')).waiting, 1);
      assert.equal(fs.existsSync(netLog) ? fs.readFileSync(netLog, 'utf8') : '', '', 'nothing but loopback');
    });

    it('a job that keeps failing ends as failed with its error after --attempts; jobs that are not ours fail at once; merge names the part', async () => {
      const photos = path.join(dir, 'some-broken');
      await makePhotos(photos, 3);
      fs.writeFileSync(path.join(photos, '02b.png'), 'not a png');
      const folder = path.join(dir, 'failing');
      const add = cli(
        [
          'queue',
          'add',
          '--redis',
          redis.url,
          '--queue',
          'failing',
          RESNET18,
          photos,
          ...ARGS,
          '--out',
          folder,
          '--part-size',
          '2',
          '--attempts',
          '2',
        ],
        { env },
      );
      assert.equal(add.status, 0, add.stderr);
      const queue = new Queue('failing', { connection: { url: redis.url } });
      await queue.add('part', { dir: '/nowhere', part: 0, id: 'x' }, { attempts: 2 });
      await queue.add('something else', { hello: 1 }, { attempts: 3 });
      await queue.add('part', { dir: 'relative', part: -1 }, { attempts: 3 });
      const w = worker('failing');
      await waitFor('a part done and four jobs failed', async () => {
        const c = await counts('failing');
        return c.completed === 1 && c.failed === 4 && c.waiting + c.delayed + c.active === 0;
      });
      const failed = await queue.getFailed();
      await queue.close();
      const byData = (test: (data: Record<string, unknown>) => boolean) => failed.find((job) => test(job.data))!;
      const broken = byData((d) => d.dir === folder);
      assert.equal(broken.attemptsMade, 2);
      assert.match(broken.failedReason, /^cannot read image .*02b\.png: /);
      // A folder this worker cannot see may be on another worker's file system: tried again.
      assert.equal(byData((d) => d.dir === '/nowhere').attemptsMade, 2);
      assert.match(
        byData((d) => d.dir === '/nowhere').failedReason,
        /^\/nowhere holds no manifest\.json here \(is it on a file system that this worker shares\?\)/,
      );
      assert.equal(byData((d) => d.hello === 1).attemptsMade, 1);
      assert.match(byData((d) => d.hello === 1).failedReason, /^JOB_INVALID: a job named "something else", not part/);
      assert.equal(byData((d) => d.dir === 'relative').attemptsMade, 1, 'not ours: failed at once');
      assert.match(byData((d) => d.dir === 'relative').failedReason, /^JOB_INVALID: a job whose data is not \{ dir, part, id \}/);
      assert.match(w.stderrText(), /part-00001 failed \(attempt 1 of 2, to be tried again\): cannot read image/);

      const status = cli(['queue', 'status', '--redis', redis.url, '--queue', 'failing'], { env });
      const lines = status.stdout.trimEnd().split('\n');
      assert.equal(lines[0], 'done 1, waiting 0, active 0, failed 4, workers 1');
      assert.ok(
        lines.some((l) => new RegExp(`^failed [0-9a-f]{16}-part-00001 \\(${folder}\\): cannot read image .*02b\\.png`).test(l)),
        status.stdout,
      );
      expectOneLine(cli(['merge', folder, '--out', path.join(dir, 'failing.npy')], { env }), /PART_MISSING: part-00001 missing in /);

      // The cause fixed, adding the folder again queues the failed part, and only it.
      fs.copyFileSync(path.join(photos, '00.png'), path.join(photos, '02b.png'));
      const again = cli(['queue', 'add', '--redis', redis.url, '--queue', 'failing', RESNET18, photos, ...ARGS, '--out', folder], { env });
      assert.match(again.stderr, /queued 1 part on failing; 1 of 2 complete already/);
      await waitFor('the part done', async () => (await counts('failing')).completed === 2);
      assert.equal(cli(['merge', folder, '--out', path.join(dir, 'failing.npy')], { env }).status, 0);
      w.kill('SIGTERM');
      assert.equal(await exited(w), 0);
    });

    it('a part that kills every worker that takes it is put back twice, then fails', async () => {
      const photos = path.join(dir, 'deadly');
      await makePhotos(photos, 1);
      const folder = path.join(dir, 'deadly-parts');
      assert.equal(
        cli(['queue', 'add', '--redis', redis.url, '--queue', 'deadly', RESNET18, photos, ...ARGS, '--out', folder], { env }).status,
        0,
      );
      for (let kill = 0; kill < 3; kill++) {
        const w = worker('deadly');
        await waitFor(`worker ${kill + 1} to take the part`, () => /part-00000 of .* started/.test(w.stderrText()));
        w.kill('SIGKILL');
        await exited(w);
      }
      const last = worker('deadly');
      await waitFor('the job to fail', async () => (await counts('deadly')).failed === 1);
      const queue = new Queue('deadly', { connection: { url: redis.url } });
      const [job] = await queue.getFailed();
      await queue.close();
      assert.match(job.failedReason, /stalled more than allowable limit/);
      assert.doesNotMatch(last.stderrText(), /started/, 'the last worker never ran it');
      last.kill('SIGTERM');
      assert.equal(await exited(last), 0);
      assert.deepEqual(
        list(folder).filter((f) => !f.startsWith('.')),
        ['manifest.json'],
      );
    });

    it('a worker reconnects when Redis comes back, and then takes the jobs', async () => {
      const own = await startRedis();
      const w = cliChild(['queue', 'work', '--redis', own.url, '--queue', 'back', '--stalled-seconds', STALLED_SECONDS], { env });
      await waitFor('the worker to wait for jobs', () => /waiting for jobs on back/.test(w.stderrText()));
      await own.stop();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const again = await startRedis([], own.port);
      try {
        const folder = path.join(dir, 'back');
        const add = cli(
          ['queue', 'add', '--redis', again.url, '--queue', 'back', RESNET18, path.join(dir, 'deadly'), ...ARGS, '--out', folder],
          { env },
        );
        assert.equal(add.status, 0, add.stderr);
        await waitFor('the job done', async () => {
          const queue = new Queue('back', { connection: { url: again.url } });
          const c = await queue.getJobCounts('completed');
          await queue.close();
          return c.completed === 1;
        });
        w.kill('SIGTERM');
        assert.equal(await exited(w), 0, w.stderrText());
      } finally {
        w.kill('SIGKILL');
        await again.stop();
      }
    });

    it('SIGTERM finishes the part in flight and exits 0; a second signal stops at once (exit 130), leaving no part and no temporary', async () => {
      const photos = path.join(dir, 'big');
      await makePhotos(photos, 8, 900);
      for (const [name, signals] of [
        ['term-once', 1],
        ['term-twice', 2],
      ] as const) {
        const folder = path.join(dir, name);
        const args = ['--layer', 'layer4', '--pool', 'avg', '--batch', '1', '--part-size', '8', '--out', folder];
        assert.equal(cli(['queue', 'add', '--redis', redis.url, '--queue', name, RESNET18, photos, ...args], { env }).status, 0);
        const w = worker(name);
        await waitFor('a row written', () => writing(folder, 'part-00000', w.pid!));
        for (let i = 0; i < signals; i++) {
          w.kill('SIGTERM');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const code = await exited(w);
        if (signals === 1) {
          assert.equal(code, 0, w.stderrText());
          assert.match(w.stderrText(), /stopping after the part in flight[^]*part-00000 done: 8 rows/);
          assert.deepEqual(list(folder), ['manifest.json', 'part-00000.index.csv', 'part-00000.npy']);
        } else {
          assert.equal(code, 130, w.stderrText());
          assert.match(w.stderrText(), /stopped at once; the part in flight goes back to the queue\n$/);
          assert.deepEqual(list(folder), ['manifest.json']);
        }
      }
    });

    it('Redis out of reach, a bad URL or queue name, a folder of another extraction: one line each, with a code', async () => {
      const closed = `redis://127.0.0.1:${await freePort()}`;
      const started = Date.now();
      for (const args of [['status'], ['work']]) {
        expectOneLine(
          cli(['queue', ...args, '--redis', closed, '--queue', 'q'], { env }),
          /^libtorch-features: REDIS_UNAVAILABLE: cannot use Redis at redis:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED .* \(is redis-server running there, and reachable from here\?\)$/,
        );
      }
      const folder = path.join(dir, 'unreachable');
      expectOneLine(
        cli(['queue', 'add', '--redis', closed, '--queue', 'q', RESNET18, path.join(dir, 'photos'), ...ARGS, '--out', folder], { env }),
        /REDIS_UNAVAILABLE/,
      );
      assert.ok(!fs.existsSync(folder), 'no folder left');
      assert.ok(Date.now() - started < 60_000, 'fails in seconds, not never');
      const usage: [string[], RegExp][] = [
        [
          ['status', '--redis', 'http://127.0.0.1', '--queue', 'q'],
          /'--redis <url>' argument 'http:\/\/127\.0\.0\.1' is invalid\. expected a redis:\/\/ or rediss:\/\/ URL, not http:/,
        ],
        [['status', '--redis', 'not a url', '--queue', 'q'], /expected a URL such as redis:\/\/127\.0\.0\.1:6379/],
        [['status', '--redis', redis.url, '--queue', 'a:b'], /'--queue <name>' argument 'a:b' is invalid\. expected 1 to 100 letters/],
        [['work', '--redis', redis.url, '--queue', 'q', '--stalled-seconds', '0'], /'--stalled-seconds <n>' argument '0' is invalid/],
        [
          ['add', '--redis', redis.url, '--queue', 'q', RESNET18, 'x.png', '--layer', 'layer4', '--out', folder, '--attempts', '1000'],
          /--attempts 1000: expected 1 to 100/,
        ],
      ];
      for (const [args, message] of usage) expectOneLine(cli(['queue', ...args], { env }), message, 2);
      expectOneLine(
        cli(
          ['queue', 'add', '--redis', redis.url, '--queue', 'q', RESNET18, path.join(dir, 'photos'), '--layer', 'nope', '--out', folder],
          { env },
        ),
        /LAYER_NOT_FOUND: /,
      );
      assert.ok(!fs.existsSync(folder), 'no folder left');
      const locked = await startRedis(['--requirepass', 'right']);
      try {
        const status = (url: string) => cli(['queue', 'status', '--redis', url, '--queue', 'q'], { env });
        const noPassword = status(locked.url);
        expectOneLine(noPassword, /REDIS_UNAVAILABLE: cannot use Redis at .*: NOAUTH .*\(check the user and password in the URL/);
        const wrong = status(`redis://:wrong@127.0.0.1:${locked.port}`);
        expectOneLine(wrong, /REDIS_UNAVAILABLE: cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: WRONGPASS/);
        assert.doesNotMatch(wrong.stderr, /wrong/, 'the password is not printed');
        assert.equal(status(`redis://:right@127.0.0.1:${locked.port}`).stdout, 'done 0, waiting 0, active 0, failed 0, workers 0\n');
      } finally {
        await locked.stop();
      }
      const other = path.join(dir, 'three');
      expectOneLine(
        cli(
          [
            'queue',
            'add',
            '--redis',
            redis.url,
            '--queue',
            'three',
            RESNET18,
            path.join(dir, 'photos'),
            '--layer',
            'layer3',
            '--out',
            other,
          ],
          { env },
        ),
        /MANIFEST_MISMATCH: .*three holds an extraction made with layer layer4 \(not layer3\)/,
      );
      assert.equal(fs.existsSync(netLog) ? fs.readFileSync(netLog, 'utf8') : '', '', 'nothing but loopback');
    });
  },
);
