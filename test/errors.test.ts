/** Every failure is an ExtractorError with a stable code and a message a user can act on. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Extractor, ExtractorError } from '../lib';
import { RESNET18, cudaSkipReason, expectError, fixture, manifest } from './helpers';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-errors-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('model errors', () => {
  it('MODEL_NOT_FOUND for a missing file, sync and async', async () => {
    assert.throws(() => new Extractor(path.join(dir, 'missing.pt'), 'layer4'), expectError('MODEL_NOT_FOUND', /missing\.pt/));
    await assert.rejects(Extractor.create(path.join(dir, 'missing.pt'), 'layer4'), expectError('MODEL_NOT_FOUND', /missing\.pt/));
    assert.throws(() => Extractor.listLayers(path.join(dir, 'missing.pt')), expectError('MODEL_NOT_FOUND', /not found/));
  });

  it('MODEL_LOAD_FAILED for a directory', () => {
    assert.throws(() => new Extractor(dir, 'layer4'), expectError('MODEL_LOAD_FAILED', /directory/));
  });

  it('MODEL_LOAD_FAILED for random bytes and an empty file, saying how to export TorchScript', async () => {
    const junk = path.join(dir, 'junk.pt');
    fs.writeFileSync(junk, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    const empty = path.join(dir, 'empty.pt');
    fs.writeFileSync(empty, '');
    assert.throws(() => new Extractor(junk, 'layer4'), expectError('MODEL_LOAD_FAILED', /TorchScript.*torch\.jit\.script/));
    assert.throws(() => new Extractor(empty, 'layer4'), expectError('MODEL_LOAD_FAILED', /TorchScript/));
    await assert.rejects(Extractor.create(junk, 'layer4'), expectError('MODEL_LOAD_FAILED', /TorchScript/));
  });

  it('messages carry no C++ backtrace', () => {
    try {
      new Extractor(__filename, 'layer4');
      assert.fail('loaded a JS file as a model');
    } catch (error) {
      assert.doesNotMatch((error as Error).message, /Exception raised from|frame #/);
    }
  });
});

describe('layer errors', () => {
  it('LAYER_NOT_FOUND lists the layers that exist', async () => {
    const lists = /conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc/;
    assert.throws(() => new Extractor(RESNET18, 'layer5'), expectError('LAYER_NOT_FOUND', lists));
    await assert.rejects(Extractor.create(RESNET18, 'layer5'), expectError('LAYER_NOT_FOUND', lists));
  });

  it('UNSUPPORTED_CUT where a module has no single tensor output, saying why', () => {
    const branchy = fixture(manifest.branchy.file);
    assert.throws(() => new Extractor(branchy, 'gate'), expectError('UNSUPPORTED_CUT', /'gate'.*inside an if or a loop/));
    assert.throws(() => new Extractor(branchy, 'pair'), expectError('UNSUPPORTED_CUT', /'pair'.*returns Tuple\[Tensor, Tensor\]/));
    assert.throws(() => new Extractor(branchy, 'unused'), expectError('UNSUPPORTED_CUT', /never calls 'unused'/));
    // What does have one output still works around them.
    assert.equal(new Extractor(branchy, 'stem', { device: 'cpu' }).strategy, 'sequential');
    // gate (inside the if) and pair (a tuple) are not listed; the operations around them are.
    assert.deepEqual(
      Extractor.listLayers(branchy, { nested: true }).map((l) => l.name),
      ['x', 'stem', 'mean', 'gt', 'pair.mul', 'pair.sub', 'add'],
    );
  });

  it('LAYER_NOT_FOUND for a nested name lists what its parent holds', () => {
    assert.throws(() => new Extractor(RESNET18, 'layer1.7'), expectError('LAYER_NOT_FOUND', /'layer1' holds: layer1\.0, layer1\.1/));
  });

  it('LAYER_NOT_FOUND for a call that does not happen lists the calls there are', () => {
    assert.throws(
      () => new Extractor(RESNET18, 'layer1.0.relu_2'),
      expectError('LAYER_NOT_FOUND', /called 2 time\(s\), as: layer1\.0\.relu, layer1\.0\.relu_1/),
    );
  });

  it('INVALID_ARGUMENT for a layer that is not a name, a list or a record of names', () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /layer name.*undefined/],
      [4, /layer name.*4 of type number/],
      ['', /layer name.*'' of type string/],
      [[], /at least one layer.*empty array/],
      [['layer2', 7], /layer\[1\].*7 of type number/],
      [['layer2', 'layer2'], /names 'layer2' twice/],
      [{}, /at least one layer/],
      [{ layer2: '' }, /output name for layer 'layer2'/],
      [{ layer2: 'x', layer3: 'x' }, /names 'x' twice/],
    ];
    for (const [layer, message] of cases) {
      assert.throws(() => new Extractor(RESNET18, layer as never), expectError('INVALID_ARGUMENT', message));
    }
  });

  it('INVALID_ARGUMENT for a model that is not a path, and for bad options', async () => {
    assert.throws(() => new Extractor(42 as never, 'layer4'), expectError('INVALID_ARGUMENT', /model.*42 of type number/));
    assert.throws(() => new Extractor(RESNET18, 'layer4', { device: 'gpu' as never }), expectError('INVALID_ARGUMENT', /device.*'gpu'/));
    assert.throws(
      () => new Extractor(RESNET18, 'layer4', { devise: 'cpu' } as never),
      expectError('INVALID_ARGUMENT', /Unknown option 'devise'/),
    );
    assert.throws(
      () => new Extractor(RESNET18, 'layer4', { tf32: 'yes' as never }),
      expectError('INVALID_ARGUMENT', /true or false for tf32/),
    );
    await assert.rejects(Extractor.create(RESNET18, 'layer4', 'cpu' as never), expectError('INVALID_ARGUMENT', /options/));
  });
});

describe('device errors', () => {
  it('DEVICE_UNAVAILABLE for a CUDA device that is not there, never a CPU fallback', async () => {
    assert.throws(() => new Extractor(RESNET18, 'layer4', { device: 'cuda:999' }), expectError('DEVICE_UNAVAILABLE', /cuda:999/));
    await assert.rejects(Extractor.create(RESNET18, 'layer4', { device: 'cuda:999' }), expectError('DEVICE_UNAVAILABLE', /cuda:999/));
  });

  it('DEVICE_UNAVAILABLE for device "cuda" without CUDA', { skip: cudaSkipReason() === false ? 'CUDA is present here' : false }, () => {
    assert.throws(
      () => new Extractor(RESNET18, 'layer4', { device: 'cuda' }),
      expectError('DEVICE_UNAVAILABLE', /no CUDA device.*device: 'cpu'/),
    );
  });
});

describe('input errors, thrown before going native', () => {
  const ex = new Extractor(RESNET18, 'conv1', { device: 'cpu' });
  after(() => ex.dispose());
  const image = new Float32Array(3 * 32 * 32);

  const cases: [string, unknown, RegExp][] = [
    ['no input', undefined, /Expected \{ data: Float32Array/],
    ['a Float64Array', { data: new Float64Array(3 * 32 * 32), shape: [1, 3, 32, 32] }, /Float32Array.*Float64Array/],
    ['a plain array', { data: [1, 2, 3], shape: [1, 3, 1, 1] }, /Float32Array.*array of length 3/],
    ['a length that does not match', { data: image, shape: [1, 3, 32, 31] }, /3072 values but shape \[1, 3, 32, 31\] holds 2976/],
    ['rank 3', { data: image, shape: [3, 32, 32] }, /rank 4.*N = 1/],
    ['a zero dimension', { data: new Float32Array(0), shape: [0, 3, 32, 32] }, /positive integer for shape\[0\]/],
    ['a fractional dimension', { data: image, shape: [1, 3, 32.5, 32] }, /shape\[2\]/],
    ['an overflowing shape', { data: image, shape: [2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20] }, /too many values/],
  ];
  for (const [what, input, message] of cases) {
    it(`INVALID_INPUT for ${what}, sync and async`, async () => {
      assert.throws(() => ex.extractSync(input as never), expectError('INVALID_INPUT', message));
      await assert.rejects(ex.extract(input as never), expectError('INVALID_INPUT', message));
    });
  }

  it("FORWARD_FAILED with LibTorch's reason for a wrong channel count, and the extractor still works", async () => {
    const bad = { data: new Float32Array(4 * 32 * 32), shape: [1, 4, 32, 32] };
    assert.throws(() => ex.extractSync(bad), expectError('FORWARD_FAILED', /channels|weight of size/));
    await assert.rejects(ex.extract(bad), expectError('FORWARD_FAILED', /channels|weight of size/));
    assert.deepEqual(ex.extractSync({ data: image, shape: [1, 3, 32, 32] }).shape, [1, 64, 16, 16]);
  });

  it("a rejected extract() points at the caller's line", async () => {
    const bad = { data: new Float32Array(2 * 32 * 32), shape: [1, 2, 32, 32] };
    const error = await ex.extract(bad).catch((e: Error) => e);
    assert.ok(error instanceof ExtractorError);
    assert.match(error.stack ?? '', /errors\.test\.js/);
  });
});

describe('lifetime errors', () => {
  it('DISPOSED after dispose(), which can be called twice', async () => {
    const ex = new Extractor(RESNET18, 'conv1', { device: 'cpu' });
    ex.dispose();
    ex.dispose();
    assert.equal(ex.disposed, true);
    const input = { data: new Float32Array(3 * 32 * 32), shape: [1, 3, 32, 32] };
    assert.throws(() => ex.extractSync(input), expectError('DISPOSED', /disposed/));
    await assert.rejects(ex.extract(input), expectError('DISPOSED', /disposed/));
  });
});
