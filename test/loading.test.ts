/** Models from bytes, and the torchsummary-style summary. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';

import { Extractor, ModelSummary } from '../lib';
import { RESNET18, manifest, readTensor } from './helpers';

const input = readTensor(manifest.resnet18.cases.nonsquare.input);

describe('models from bytes', () => {
  const bytes = fs.readFileSync(RESNET18);

  it('a Buffer gives what the path gives, sync and async, by either strategy', async () => {
    for (const layer of ['layer2', 'layer3.1.conv2']) {
      const fromPath = new Extractor(RESNET18, layer, { device: 'cpu' });
      const fromBytes = new Extractor(bytes, layer, { device: 'cpu' });
      const created = await Extractor.create(new Uint8Array(bytes), layer, { device: 'cpu' });
      assert.equal(fromBytes.parameterCount, fromPath.parameterCount);
      const expected = fromPath.extractSync(input).data;
      assert.deepEqual(fromBytes.extractSync(input).data, expected);
      assert.deepEqual((await created.extract(input)).data, expected);
      [fromPath, fromBytes, created].forEach((ex) => ex.dispose());
    }
  });

  it('an ArrayBuffer works, and listLayers takes bytes too', () => {
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const ex = new Extractor(copy as unknown as Uint8Array, 'conv1', { device: 'cpu' });
    assert.equal(ex.parameterCount, 9408);
    assert.deepEqual(Extractor.listLayers(bytes), Extractor.listLayers(RESNET18));
  });

  it('the caller may change the bytes as soon as the constructor returns', async () => {
    const scratch = Buffer.from(bytes);
    const pending = Extractor.create(scratch, 'conv1', { device: 'cpu' });
    scratch.fill(0);
    assert.equal((await pending).parameterCount, 9408);
  });

  it('bytes that are not TorchScript: MODEL_LOAD_FAILED naming the bytes', () => {
    assert.throws(
      () => new Extractor(Buffer.from('not a model'), 'layer4'),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'MODEL_LOAD_FAILED');
        assert.match(error.message, /the model bytes \(11 bytes\)/);
        return true;
      },
    );
    assert.throws(() => new Extractor(new Uint8Array(0), 'layer4'), /0 bytes/);
  });
});

describe('summary', () => {
  it("ResNet-18 up to layer4 at [3, 224, 224]: torchsummary's rows and totals", () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const summary = ex.summary([3, 224, 224]);
    assert.ok(summary instanceof ModelSummary);
    assert.equal(summary.totalParameters, 11_176_512);
    assert.equal(summary.parametersMB.toFixed(2), '42.64');
    assert.deepEqual(summary.outputShape, [512, 7, 7]);
    // The article's torchsummary figures for this cut.
    assert.equal(summary.inputMB.toFixed(2), '0.57');
    assert.equal(summary.forwardBackwardMB.toFixed(2), '62.78');
    assert.equal(summary.totalMB.toFixed(2), '105.99');
    // Row by row, against torchsummary's rules applied by PyTorch hooks to nn.Sequential(children up to layer4).
    const expected = manifest.resnet18.summary.rows;
    assert.equal(summary.rows.length, expected.length);
    summary.rows.forEach((row, i) => {
      assert.deepEqual(
        { type: row.type, outputShape: row.outputShape, parameters: row.parameters },
        expected[i],
        `row ${i + 1} (${row.name})`,
      );
    });
    assert.equal(summary.rows[65].name, 'layer4.1');
    ex.dispose();
  });

  it('toString() prints the table as torchsummary does', () => {
    const text = new Extractor(RESNET18, 'layer4', { device: 'cpu' }).summary([3, 224, 224]).toString();
    assert.match(text, /Conv2d-1 +conv1 +\[-1, 64, 112, 112\] +9,408/);
    assert.match(text, /BasicBlock-66 +layer4\.1 +\[-1, 512, 7, 7\] +0/);
    assert.match(text, /Total params: 11,176,512/);
    assert.match(text, /Params size \(MB\): 42\.64/);
  });

  it('several layers: each output shape by name; rows only for what they need', () => {
    const summary = new Extractor(RESNET18, { layer1: 'a', 'layer2.0.conv1': 'b' }, { device: 'cpu' }).summary([3, 64, 64]);
    assert.deepEqual(summary.outputShapes, { a: [64, 16, 16], b: [128, 8, 8] });
    assert.equal(summary.rows[summary.rows.length - 1].name, 'layer2.0.conv1');
    assert.equal(summary.totalParameters, manifest.resnet18.parameterCounts.layer1 + 64 * 128 * 9);
  });

  it('rejects a bad input shape', () => {
    const ex = new Extractor(RESNET18, 'layer1', { device: 'cpu' });
    assert.throws(
      () => ex.summary([3, 0, 224]),
      (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT',
    );
    assert.throws(
      () => ex.summary([4, 224, 224]),
      (e: Error & { code?: string }) => e.code === 'FORWARD_FAILED',
    );
  });
});
