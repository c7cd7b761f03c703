/**
 * Images in, embeddings out: uint8 pixels preprocessed on the extractor's device must match
 * torchvision's transforms on the same pixels; pooled and normalised features must match PyTorch.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Extractor, ExtractorError, type FeatureTensor } from '../lib';
import { CPU_TOLERANCE, IDENTITY, RESNET18, assertClose, manifest, maxAbsDiff, meanAbsDiff, readImage, readTensor } from './helpers';

const pre = manifest.preprocess;
// chelsea (300x451), astronaut (512x512), coffee (400x600), rocket (427x640): RGB
const photos = pre.images.slice(0, 4).map(readImage);
const rgba = readImage(pre.images[4]);

/** An extractor whose output is its preprocessed input. */
const preprocessed = (options: object = {}) => new Extractor(IDENTITY, '0', { device: 'cpu', ...options });

describe('preprocessing on the device', () => {
  it("equals torchvision's Resize(256, antialias) + CenterCrop(224) + ToTensor + Normalize on uint8 tensors", () => {
    const out = preprocessed().extractSync(photos);
    assert.deepEqual(out.shape, [4, 3, 224, 224]);
    // Same arithmetic, same order: exact up to float32 rounding.
    assert.ok(maxAbsDiff(out.data, readTensor(pre.tensor).data) <= 1e-6);
  });

  it("is within one uint8 level of torchvision's PIL pipeline (PIL's own antialiased bilinear)", () => {
    const out = preprocessed().extractSync(photos);
    const pil = readTensor(pre.pil).data;
    // One level of 255, after dividing by the smallest std (0.224): 0.0175.
    assert.ok(maxAbsDiff(out.data, pil) <= 1.01 / 255 / 0.224, `max ${maxAbsDiff(out.data, pil)}`);
    assert.ok(meanAbsDiff(out.data, pil) <= 0.004, `mean ${meanAbsDiff(out.data, pil)}`);
  });

  it('other sizes and statistics, and normalisation off, match torchvision too', () => {
    for (const { options, expected } of [pre.custom, pre.unnormalized]) {
      const out = preprocessed({ preprocess: options }).extractSync(photos);
      assert.ok(maxAbsDiff(out.data, readTensor(expected).data) <= 1e-6, JSON.stringify(options));
    }
  });

  it('images of one size are preprocessed as one batch, with the numbers torchvision gives each', () => {
    // Same size: one [N, H, W, C] upload and one kernel per step; mixed sizes: one by one.
    const n = 3 * 224 * 224;
    const reference = readTensor(pre.tensor).data;
    const ex = preprocessed();
    const same = ex.extractSync([photos[2], photos[2]]);
    assert.deepEqual(same.shape, [2, 3, 224, 224]);
    for (const row of [0, 1]) {
      assert.ok(maxAbsDiff(same.data.subarray(row * n, (row + 1) * n), reference.subarray(2 * n, 3 * n)) <= 1e-6, `row ${row}`);
    }
    const rgbaPair = ex.extractSync([rgba, rgba]);
    assert.deepEqual(rgbaPair.data.subarray(0, n), ex.extractSync(photos[0]).data);
  });

  it('a resize to the size an image already has changes no value (it is skipped)', () => {
    // chelsea is 300x451: its shorter side is already 300.
    const resized = preprocessed({ preprocess: { resize: 300, crop: 224 } }).extractSync(photos[0]);
    const cropped = preprocessed({ preprocess: { resize: false, crop: 224 } }).extractSync(photos[0]);
    assert.deepEqual(resized.data, cropped.data);
  });

  it('RGBA drops alpha; a Uint8ClampedArray (canvas ImageData) works; one image or an array', () => {
    const ex = preprocessed();
    const rgb = ex.extractSync(photos[0]);
    assert.deepEqual(rgb.shape, [1, 3, 224, 224]);
    assert.deepEqual(ex.extractSync(rgba).data, rgb.data);
    const clamped = { ...rgba, data: new Uint8ClampedArray(rgba.data) };
    assert.deepEqual(ex.extractSync([clamped]).data, rgb.data);
  });

  it('preprocess: false only scales to [0, 1]; images must then be one size', () => {
    const ex = preprocessed({ preprocess: false });
    const small = { data: new Uint8Array([0, 51, 255, 255, 0, 102]), width: 2, height: 1, channels: 3 as const };
    const out = ex.extractSync(small);
    assert.deepEqual(out.shape, [1, 3, 1, 2]);
    assert.deepEqual(
      [...out.data].map((v) => Math.round(v * 255)),
      [0, 255, 51, 0, 255, 102],
    );
    assert.throws(
      () => ex.extractSync(photos.slice(0, 2)),
      (e: unknown) => e instanceof ExtractorError && e.code === 'INVALID_INPUT' && /different sizes/.test(e.message),
    );
  });

  it("photos through ResNet-18 equal torchvision's preprocessed batch through it", async () => {
    const ex = new Extractor(RESNET18, 'layer4', { device: 'cpu' });
    const fromPhotos = await ex.extract(photos);
    assert.deepEqual(fromPhotos.shape, [4, 512, 7, 7]);
    assertClose(fromPhotos, ex.extractSync(readTensor(pre.tensor)), CPU_TOLERANCE, 'photos');
  });

  it('bad images: INVALID_INPUT naming the field', () => {
    const ex = preprocessed();
    const cases: [unknown, RegExp][] = [
      [[], /at least one image/],
      [{ ...rgba, channels: 2 }, /input\.channels/],
      [{ ...rgba, width: 0 }, /input\.width/],
      [{ ...rgba, data: new Uint16Array(4) }, /Uint8Array.*Uint16Array/],
      [{ ...rgba, height: rgba.height - 1 }, /bytes but \d+x\d+x4 needs/],
      [[photos[0], { data: 1 }], /input\[1\]/],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => ex.extractSync(input as never),
        (e: unknown) => e instanceof ExtractorError && e.code === 'INVALID_INPUT' && message.test(e.message),
        String(message),
      );
    }
  });

  it('INVALID_ARGUMENT for bad preprocess options', () => {
    const cases: [unknown, RegExp][] = [
      [{ resize: 0 }, /preprocess\.resize/],
      [{ crop: 1.5 }, /preprocess\.crop/],
      [{ mean: [1, 2] }, /three numbers.*preprocess\.mean/],
      [{ std: [1, 0, 1] }, /three positive numbers.*preprocess\.std/],
      [{ mean: false, std: [1, 1, 1] }, /no effect/],
      [{ size: 3 }, /Unknown option 'preprocess\.size'/],
      ['imagenet', /object or false for preprocess/],
    ];
    for (const [preprocess, message] of cases) {
      assert.throws(
        () => preprocessed({ preprocess }),
        (e: unknown) => e instanceof ExtractorError && e.code === 'INVALID_ARGUMENT' && message.test(e.message),
        String(message),
      );
    }
  });
});

describe('pooled embeddings', () => {
  const batch = readTensor(manifest.resnet18.cases.batch4.input);
  const pooled = manifest.resnet18.pooled;

  const cases: [object, keyof typeof pooled, number[]][] = [
    [{ pool: 'avg' }, 'avg', [4, 512]],
    [{ pool: 'max' }, 'max', [4, 512]],
    [{ pool: 'avg', normalize: 'l2' }, 'avgL2', [4, 512]],
    [{ normalize: 'l2' }, 'mapL2', [4, 512, 7, 7]],
  ];
  for (const [options, reference, shape] of cases) {
    it(`${JSON.stringify(options)} at layer4 equals PyTorch (adaptive pooling, F.normalize)`, () => {
      const out = new Extractor(RESNET18, 'layer4', { device: 'cpu', ...options }).extractSync(batch);
      assert.deepEqual(out.shape, shape);
      assertClose(out, readTensor(pooled[reference]), CPU_TOLERANCE, reference);
    });
  }

  it('applies to every output of a multi-layer extractor; rows have unit norm', () => {
    const out = new Extractor(RESNET18, ['layer3', 'layer4'], { device: 'cpu', pool: 'avg', normalize: 'l2' }).extractSync(batch);
    assert.deepEqual(out.layer3.shape, [4, 256]);
    const norms = (t: FeatureTensor, width: number) =>
      Array.from({ length: 4 }, (_, i) => Math.hypot(...t.data.subarray(i * width, (i + 1) * width)));
    for (const norm of [...norms(out.layer3, 256), ...norms(out.layer4, 512)]) assert.ok(Math.abs(norm - 1) < 1e-5);
  });

  it('INVALID_ARGUMENT for unknown pool and normalize values', () => {
    assert.throws(() => new Extractor(RESNET18, 'layer4', { pool: 'mean' as never }), /'avg' or 'max' for pool/);
    assert.throws(() => new Extractor(RESNET18, 'layer4', { normalize: 'l1' as never }), /'l2' for normalize/);
  });
});
