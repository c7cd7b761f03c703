/**
 * A real Redis for the tests: Debian's redis-server, started on a free loopback port with no
 * persistence, in a temporary folder, and stopped after. Where it is not installed the tests skip,
 * saying why, except in CI (CI or LTF_EXPECT_REDIS set), where scripts/setup-debian installs it and
 * its absence is a failure.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const START_TIMEOUT_MS = 10_000;

/** Why the Redis tests cannot run here, or undefined when redis-server is installed. Throws in CI when it is not. */
export function redisMissing(): string | undefined {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0) return undefined;
  if (process.env.CI || process.env.LTF_EXPECT_REDIS) {
    throw new Error('redis-server is not installed, and CI must run the queue tests: bash scripts/setup-debian installs it');
  }
  return 'redis-server is not installed (Debian: apt-get install redis-server, or bash scripts/setup-debian)';
}

/** A port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

async function startOnce(extra: readonly string[], fixedPort?: number): Promise<RedisServer | undefined> {
  const port = fixedPort ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), START_TIMEOUT_MS);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  if (!ready) {
    await stop();
    return undefined; // the port was taken meanwhile, most likely: another try
  }
  return { url: `redis://127.0.0.1:${port}`, port, stop };
}

/**
 * Starts redis-server on a free loopback port (a few tries, should another process take the port
 * first), or on `port` when given (a restart); `extra` arguments such as --requirepass.
 */
export async function startRedis(extra: readonly string[] = [], port?: number): Promise<RedisServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = await startOnce(extra, port);
    if (server) return server;
  }
  throw new Error('redis-server did not start on a free loopback port in 3 tries');
}
