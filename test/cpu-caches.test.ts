/**
 * CPUs that hide their caches (issue 13, native/runtime/onednn_caches.h). oneDNN 3 divides by zero
 * or computes wrong channels-last convolutions where CPUID reports no cache sizes; the addon must
 * then give correct features with oneDNN off, never a SIGFPE or wrong numbers.
 *
 * A machine with honest CPUID cannot be made to hide its caches, so the two sides are tested as
 * follows: the CPUID reading on registers recorded from real and hiding CPUs (replayed through a
 * test hook), and the addon's behaviour with hidden_caches.so preloaded, which makes oneDNN take
 * every cache as 1 byte, as oneDNN 3.6/3.7 do on such a VM (same SIGFPE, same wrong convolutions:
 * checked with PyTorch 2.6 in Python). Each of those runs in a child process with a time limit.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { getBinding } from '../lib/binding';
import { CPU_TOLERANCE, RESNET18 } from './helpers';

const ROOT = path.join(__dirname, '..', '..');
const LIB = path.join(ROOT, 'dist', 'lib');
const HELPERS = path.join(ROOT, 'dist', 'test', 'helpers');

// The preload libraries sit next to the addon the tests load.
const BINARY_DIR = path.dirname(
  process.env.LIBTORCH_FEATURES_BINARY
    ? path.resolve(process.env.LIBTORCH_FEATURES_BINARY)
    : (require('node-gyp-build') as { resolve(dir: string): string }).resolve(ROOT),
);
const CPU_CACHES = path.join(BINARY_DIR, 'cpu_caches.so');
const HIDDEN_CACHES = path.join(BINARY_DIR, 'hidden_caches.so');
const preloadSkip = fs.existsSync(HIDDEN_CACHES) ? false : `no ${HIDDEN_CACHES} (built on Linux only)`;

/**
 * Runs `body` in a fresh Node with `preload` before anything else (after a sanitizer runtime, which
 * must stay first); it reports one JSON line and the warnings the process emitted.
 */
function inChild(preload: string[], body: string): Record<string, unknown> {
  const script = `const { Extractor } = require(${JSON.stringify(LIB)});
    const h = require(${JSON.stringify(HELPERS)});
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.code));
    const report = (value) => setImmediate(() => console.log('RESULT ' + JSON.stringify({ ...value, warnings })));
    (async () => { ${body} })().catch((e) => report({ uncaught: String(e && e.stack || e) }));`;
  const inherited = process.env.LD_PRELOAD ? [process.env.LD_PRELOAD] : [];
  const run = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, LD_PRELOAD: [...inherited, ...preload].join(':') },
  });
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `the child ended with status ${run.status}, signal ${run.signal}: ${run.stderr.slice(-2000)}`);
  assert.equal(run.status, 0, run.stderr.slice(-2000));
  return JSON.parse(line.slice('RESULT '.length));
}

// ResNet-18 at layer2 and layer4, against PyTorch: plain NCHW, channels-last (wrong under a oneDNN
// that sees no caches) and optimize (its optimize_for_inference graph divides by zero there).
const EXTRACT_EVERY_WAY = `
  const c = h.manifest.resnet18.cases.batch4;
  const input = h.readTensor(c.input);
  const errors = {};
  const levels = {};
  for (const [name, options] of Object.entries({
    plain: {}, channelsLast: { channelsLast: true }, optimize: { optimize: true },
  })) {
    const ex = await Extractor.create(${JSON.stringify(RESNET18)}, ['layer2', 'layer4'], { device: 'cpu', ...options });
    const out = await ex.extract(input);
    errors[name] = ['layer2', 'layer4'].map((layer) => {
      const expected = h.readTensor(c.outputs[layer]);
      return h.maxAbsDiff(out[layer].data, expected.data) / Math.max(1, h.maxAbs(expected.data));
    });
    levels[name] = { level: ex.optimization.level, fallback: ex.optimization.fallback };
    ex.dispose();
  }
  report({ caches: Extractor.runtime().onednnCaches, errors, levels });`;

function assertAllExact(errors: Record<string, number[]>): void {
  for (const [way, values] of Object.entries(errors)) {
    for (const value of values) assert.ok(value <= CPU_TOLERANCE, `${way}: relative error ${value}`);
  }
}

describe('CPUID cache sizes, read from recorded registers', () => {
  const read = (vendor: string, registers: Record<string, number[]>) => getBinding()._testCpuidCaches(vendor, registers);

  // This VM (AMD EPYC, TOPOEXT): 32 KiB L1d, 1 MiB L2, 32 MiB L3 shared by 2 threads.
  const epyc: Record<string, number[]> = {
    '80000000.0': [0x80000021, 0, 0, 0],
    '80000001.0': [0, 0, 0x004003f3, 0],
    '80000005.0': [0xff48ff40, 0xff48ff40, 0x20080140, 0x20080140],
    '80000006.0': [0x5c002200, 0x6c004200, 0x04006140, 0x0a009140],
    '8000001d.0': [0x121, 0x01c0003f, 0x3f, 0],
    '8000001d.1': [0x122, 0x01c0003f, 0x3f, 0],
    '8000001d.2': [0x143, 0x01c0003f, 0x7ff, 2],
    '8000001d.3': [0x4163, 0x03c0003f, 0x7fff, 1],
  };

  it('an AMD CPU that reports its caches: per-core L1d, L2, L3 (L3 divided by the threads sharing it)', () => {
    assert.deepEqual(read('AuthenticAMD', epyc), [32768, 1048576, 16777216]);
  });

  it('the same CPU with its cache leaves zeroed, as some VMs report them: none', () => {
    const hidden = { ...epyc };
    for (const key of Object.keys(hidden)) if (key.startsWith('8000001d')) hidden[key] = [0, 0, 0, 0];
    assert.deepEqual(read('AuthenticAMD', hidden), []);
  });

  it('an AMD CPU without TOPOEXT: L1d and L2 from leaves 0x80000005/6; zeroed, none', () => {
    const legacy = { ...epyc, '80000001.0': [0, 0, 0, 0] };
    assert.deepEqual(read('AuthenticAMD', legacy), [32768, 1048576]);
    assert.deepEqual(read('AuthenticAMD', { ...legacy, '80000005.0': [0, 0, 0, 0], '80000006.0': [0, 0, 0, 0] }), []);
  });

  it('an Intel CPU (leaf 4): 48 KiB L1d and 2 MiB L2 per 2 threads, 30 MiB L3 per 32; zeroed, none', () => {
    // ebx: ways-1 << 22 | partitions-1 << 12 | line-1; ecx: sets-1; eax: sharing-1 << 14 | level << 5 | type.
    const leaf = (type: number, level: number, sharing: number, ways: number, sets: number) => [
      ((sharing - 1) << 14) | (level << 5) | type,
      ((ways - 1) << 22) | 63,
      sets - 1,
      0,
    ];
    const xeon = {
      '0.0': [0x1b, 0, 0, 0],
      '4.0': leaf(1, 1, 2, 12, 64),
      '4.1': leaf(2, 1, 2, 8, 64),
      '4.2': leaf(3, 2, 2, 16, 2048),
      '4.3': leaf(3, 3, 32, 15, 32768),
    };
    assert.deepEqual(read('GenuineIntel', xeon), [24576, 1048576, 983040]);
    assert.deepEqual(read('GenuineIntel', { '0.0': [0x1b, 0, 0, 0] }), []);
  });
});

describe('oneDNN with caches hidden, in a child process each', { skip: preloadSkip }, () => {
  it('usable caches: oneDNN on, every way of extracting is PyTorch within the CPU tolerance, no warning', () => {
    const result = inChild([], EXTRACT_EVERY_WAY);
    const caches = result.caches as { usable: boolean; sizes: number[] };
    assert.equal(caches.usable, true, JSON.stringify(caches));
    assert.ok(caches.sizes[0] >= 1024 && caches.sizes[1] >= 1024, JSON.stringify(caches));
    assertAllExact(result.errors as Record<string, number[]>);
    assert.deepEqual(result.warnings, []);
  });

  it('oneDNN sees 1-byte caches: it is switched off with one LTF_ONEDNN_CACHES warning; no SIGFPE, every result right, optimize at folded and saying why', () => {
    const result = inChild([HIDDEN_CACHES], EXTRACT_EVERY_WAY);
    assert.deepEqual(result.caches, {
      sizes: [1, 1, 1],
      source: 'onednn',
      usable: false,
      reason:
        "oneDNN takes this CPU's per-core caches as [1, 1, 1] bytes (a VM that hides them): oneDNN would divide by zero or compute wrong convolutions",
    });
    assertAllExact(result.errors as Record<string, number[]>);
    const levels = result.levels as Record<string, { level: string; fallback: string | null }>;
    assert.equal(levels.optimize.level, 'folded');
    assert.match(levels.optimize.fallback!, /^optimize_for_inference skipped: oneDNN takes this CPU's per-core caches as \[1, 1, 1\]/);
    assert.deepEqual(result.warnings, ['LTF_ONEDNN_CACHES']);
  });

  it("cpu_caches.so preloaded before it gives oneDNN real sizes: oneDNN on, optimize 'full', every result right", () => {
    const result = inChild([CPU_CACHES, HIDDEN_CACHES], EXTRACT_EVERY_WAY);
    const caches = result.caches as { usable: boolean; sizes: number[]; source: string };
    assert.equal(caches.source, 'onednn');
    assert.equal(caches.usable, true, JSON.stringify(caches));
    assert.ok(
      caches.sizes.every((size) => size >= 1024),
      JSON.stringify(caches),
    );
    assertAllExact(result.errors as Record<string, number[]>);
    assert.equal((result.levels as Record<string, { level: string }>).optimize.level, 'full');
    assert.deepEqual(result.warnings, []);
  });
});

describe('runtime()', () => {
  it('reports how oneDNN sees the caches', () => {
    const caches = Extractor.runtime().onednnCaches;
    assert.ok(caches.source === 'onednn' || caches.source === 'cpuid');
    assert.equal(caches.usable, caches.reason === '');
    assert.ok(Array.isArray(caches.sizes));
  });
});
