/** extract() and Extractor.create() leave the event loop free while LibTorch works. */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import { RESNET18 } from './helpers';

/** Counts event-loop turns (timers firing) while `work` is pending. */
async function turnsDuring(work: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  const timer = setInterval(() => turns++, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return turns;
}

describe('the event loop keeps turning', () => {
  const input = { data: new Float32Array(8 * 3 * 224 * 224).fill(0.25), shape: [8, 3, 224, 224] };

  it('while extract() runs a forward of a batch of 8', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const started = performance.now();
    const turns = await turnsDuring(() => ex.extract(input));
    const elapsed = performance.now() - started;
    // A forward of this size takes well over 20 ms here; a blocked loop would count 0 or 1 turns.
    assert.ok(turns >= 5, `only ${turns} event-loop turns during a ${elapsed.toFixed(0)} ms extract()`);
    ex.dispose();
  });

  it('but not while extractSync() runs (it blocks by design)', async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const turns = await turnsDuring(async () => ex.extractSync(input));
    assert.ok(turns <= 1, `${turns} turns during extractSync()`);
    ex.dispose();
  });

  it('while Extractor.create() loads a model', async () => {
    let ex: Extractor | undefined;
    const turns = await turnsDuring(async () => {
      ex = await Extractor.create(RESNET18, 'layer4', { device: 'cpu' });
    });
    assert.ok(turns >= 1, `${turns} turns during create()`);
    ex?.dispose();
  });
});
