/** CUDA: the same cuts on the GPU match the CPU and PyTorch. Skipped, with the reason, without one. */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { Extractor } from '../lib';
import {
  CUDA_TOLERANCE,
  IDENTITY,
  RESNET18,
  assertClose,
  cudaSkipReason,
  expectError,
  manifest,
  maxAbs,
  maxAbsDiff,
  readImage,
  readTensor,
} from './helpers';

const skip = cudaSkipReason();
const { cases } = manifest.resnet18;

describe('CUDA', { skip }, () => {
  for (const layer of manifest.resnet18.chainLayers) {
    it(`${layer} on cuda:0 matches PyTorch's CPU output within ${CUDA_TOLERANCE}`, async () => {
      const ex = await Extractor.create(RESNET18, layer, { device: 'cuda' });
      assertClose(
        await ex.extract(readTensor(cases.batch4.input)),
        readTensor(cases.batch4.outputs[layer]),
        CUDA_TOLERANCE,
        `${layer} cuda`,
      );
      assertClose(
        ex.extractSync(readTensor(cases.nonsquare.input)),
        readTensor(cases.nonsquare.outputs[layer]),
        CUDA_TOLERANCE,
        `${layer} cuda 160x200`,
      );
      ex.dispose();
    });
  }

  it('CUDA out of memory is OUT_OF_MEMORY, and the same extractor then works at a smaller batch', async () => {
    const ex = new Extractor(RESNET18, 'layer1', { device: 'cuda' });
    // 16 images of 8192x8192: 13 GB in, and conv1 + bn1 alone need ~137 GB on the GPU, more than an
    // H100 (80 GB) or an H200 (141 GB) holds.
    const huge = { data: new Float32Array(16 * 3 * 8192 * 8192), shape: [16, 3, 8192, 8192] };
    await assert.rejects(ex.extract(huge), (e: unknown) => (e as { code?: string }).code === 'OUT_OF_MEMORY');
    const small = await ex.extract({ data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] });
    assert.deepEqual(small.shape, [1, 64, 16, 16]);
    ex.dispose();
  });

  it('with CUDA_VISIBLE_DEVICES empty, a CUDA request is DEVICE_UNAVAILABLE', () => {
    const script = `const { Extractor } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
      try { new Extractor(${JSON.stringify(RESNET18)}, 'layer1', { device: 'cuda' }); console.log('loaded'); }
      catch (e) { console.log(e.code); }`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, CUDA_VISIBLE_DEVICES: '' } });
    assert.equal(run.stdout.trim(), 'DEVICE_UNAVAILABLE', run.stderr);
  });

  it("the default device ('auto') is 'cuda:0' when CUDA is present; 'cuda:0' by name; a missing index is DEVICE_UNAVAILABLE", () => {
    for (const device of [undefined, 'auto', 'cuda', 'cuda:0'] as const) {
      const ex = new Extractor(RESNET18, 'layer1', device ? { device } : {});
      assert.equal(ex.device, 'cuda:0', String(device));
      ex.dispose();
    }
    const count = Extractor.runtime().cudaDeviceCount;
    assert.throws(
      () => new Extractor(RESNET18, 'layer1', { device: `cuda:${count}` as 'cuda:0' }),
      expectError('DEVICE_UNAVAILABLE', new RegExp(`only ${count} CUDA device`)),
    );
  });

  it('tf32: false (the default) holds float32 to the CPU tolerance next to a tf32: true extractor, run at the same time', async () => {
    // LibTorch's TF32 switch is process-wide: each forward holds it at its own extractor's choice.
    const input = readTensor(cases.batch4.input);
    const expected = readTensor(cases.batch4.outputs.layer4);
    const strict = new Extractor(RESNET18, 'layer4', { device: 'cuda' });
    const tf32 = new Extractor(RESNET18, 'layer4', { device: 'cuda', tf32: true });
    for (let round = 0; round < 3; round++) {
      const [a, b] = await Promise.all([strict.extract(input), tf32.extract(input)]);
      assertClose(a, expected, CUDA_TOLERANCE, `strict, round ${round}`);
      // TF32 rounds each product's inputs to 10 bits of mantissa: about 1e-3 relative per layer.
      const scale = maxAbs(expected.data);
      assert.ok(maxAbsDiff(b.data, expected.data) <= 0.02 * scale, `tf32: ${maxAbsDiff(b.data, expected.data)} of ${scale}`);
    }
    strict.dispose();
    tf32.dispose();
  });

  it('several extractors on one GPU, in float32, float16 and optimized, running together, each match PyTorch', async () => {
    const input = readTensor(cases.batch4.input);
    const layer4 = readTensor(cases.batch4.outputs.layer4);
    const extractors = [
      new Extractor(RESNET18, 'layer2', { device: 'cuda' }),
      new Extractor(RESNET18, ['layer3', 'layer4'], { device: 'cuda', optimize: true }),
      new Extractor(RESNET18, 'layer4', { device: 'cuda', dtype: 'float16', channelsLast: true }),
    ];
    const [l2, both, half] = await Promise.all(extractors.map((ex) => ex.extract(input)));
    assertClose(l2 as never, readTensor(cases.batch4.outputs.layer2), CUDA_TOLERANCE, 'layer2');
    const pair = both as unknown as Record<string, { data: Float32Array; shape: number[] }>;
    assertClose(pair.layer3, readTensor(cases.batch4.outputs.layer3), CUDA_TOLERANCE, 'optimized layer3');
    assertClose(pair.layer4, layer4, CUDA_TOLERANCE, 'optimized layer4');
    const h = half as { data: Float32Array };
    assert.ok(maxAbsDiff(h.data, layer4.data) <= 0.02 * maxAbs(layer4.data), 'float16');
    for (const ex of extractors) ex.dispose();
  });

  it('images on the GPU: one size (one upload, one batch) and mixed sizes preprocess as on the CPU, to one uint8 level', async () => {
    // The antialiased resize's float sums differ between the GPU's and the CPU's kernels, and its
    // result is rounded back to integers as torchvision does: a value on a .5 boundary can land
    // one level apart. Everything else is the same arithmetic.
    const photos = manifest.preprocess.images.slice(0, 4).map(readImage);
    const level = 1.01 / 255 / 0.224;
    for (const images of [[photos[2], photos[2]], photos]) {
      const gpu = await new Extractor(IDENTITY, '0', { device: 'cuda' }).extract(images);
      const cpu = await new Extractor(IDENTITY, '0', { device: 'cpu' }).extract(images);
      assert.deepEqual(gpu.shape, cpu.shape);
      assert.ok(maxAbsDiff(gpu.data, cpu.data) <= level, `${images.length} images: ${maxAbsDiff(gpu.data, cpu.data)}`);
      let apart = 0;
      for (let i = 0; i < gpu.data.length; i++) if (Math.abs(gpu.data[i] - cpu.data[i]) > 1e-5) apart++;
      assert.ok(apart <= gpu.data.length * 1e-3, `${apart} of ${gpu.data.length} values a level apart`);
    }
    // The same pixels through ResNet-18 on the GPU, from images and from the CPU's preprocessed tensor.
    const same = [photos[2], photos[2]];
    const ex = new Extractor(RESNET18, 'layer3', { device: 'cuda' });
    const tensor = await new Extractor(IDENTITY, '0', { device: 'cuda' }).extract(same);
    assertClose(await ex.extract(same), await ex.extract(tensor), CUDA_TOLERANCE, 'images and their tensor');
  });

  it('dispose returns GPU memory: 8 load-extract-dispose cycles leave the process where one left it', (t) => {
    // In a child, so that this process's own allocations do not count; read with nvidia-smi (the
    // caching allocator's reserve included: what other processes on the GPU see).
    const script = `const { execFileSync } = require('node:child_process');
      const { Extractor } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
      const used = () => {
        const rows = execFileSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8' });
        const row = rows.trim().split('\\n').map((l) => l.split(',').map(Number)).find(([pid]) => pid === process.pid);
        return row ? row[1] : null;
      };
      const input = { data: new Float32Array(16 * 3 * 224 * 224).fill(0.5), shape: [16, 3, 224, 224] };
      const sizes = [];
      for (let i = 0; i < 8; i++) {
        const ex = new Extractor(${JSON.stringify(RESNET18)}, 'layer4', { device: 'cuda' });
        ex.extractSync(input);
        ex.dispose();
        sizes.push(used());
      }
      console.log(JSON.stringify(sizes));`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const sizes: (number | null)[] = JSON.parse(run.stdout.trim().split('\n').pop()!);
    if (sizes.some((s) => s === null)) {
      t.skip('nvidia-smi lists no memory for this process id here (a container), so it cannot be checked');
      return;
    }
    const [first, ...rest] = sizes as number[];
    assert.ok(Math.max(...rest) <= first + 64, `GPU MiB after each cycle: ${sizes.join(', ')}`);
  });
});
