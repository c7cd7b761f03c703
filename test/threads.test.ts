/**
 * OpenMP teams: the thread that loads a model keeps none of its own (runtime/process_settings.h,
 * SerialOnThisThread). Each thread that runs parallel work keeps a team for its whole life, and
 * once a process's OpenMP threads outnumber the cores libgomp stops letting idle workers spin:
 * with LibTorch 2.6 the thread that built an optimized cut kept a team of 2, and every forward
 * lost 2 to 4 ms (BENCHMARKS.md). Each case in a fresh process, whose JS thread has run nothing.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { RESNET18 } from './helpers';

function inChild(body: string): unknown {
  const script = `
    const { Extractor } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const { getBinding } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'binding'))});
    (async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
}

describe('OpenMP teams', () => {
  it("the JS thread that builds an optimized cut (load, cut, freeze, check) and lists and summarises layers runs LibTorch on 1 thread; forwards on the extractor's thread use `threads`", () => {
    const result = inChild(`
      const ex = new Extractor(${JSON.stringify(RESNET18)}, ['layer2', 'layer4'], { device: 'cpu', threads: 2, optimize: true });
      const afterLoad = getBinding()._testThreadsHere();
      const features = await ex.extract({ data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] });
      Extractor.listLayers(${JSON.stringify(RESNET18)}, { nested: true });
      ex.summary([3, 64, 64]);
      console.log(JSON.stringify({ afterLoad, afterAll: getBinding()._testThreadsHere(), shape: features.layer4.shape }));`);
    assert.deepEqual(result, { afterLoad: 1, afterAll: 1, shape: [1, 512, 2, 2] });
  });
});
