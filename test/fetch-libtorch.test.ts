/** scripts/fetch-libtorch's choice, with made-up machines (the download itself cannot run here). */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const fetchLibtorch = require('../../scripts/fetch-libtorch');
const SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'fetch-libtorch');

const bare = {
  libtorchEnv: null,
  libtorchEnvTorchDir: null,
  pythons: [{ python: 'python3', ok: false, why: 'python3 has no torch' }],
  systemTorchDir: null,
  aptAvailable: true,
  isRoot: true,
  driverCuda: null,
  platform: 'linux',
  arch: 'x64',
};
const defaults = { variant: null, allowApt: false, download: true, url: null };
const choose = (facts: object, options: object = {}) => fetchLibtorch.choose({ ...bare, ...facts }, { ...defaults, ...options });

describe('fetch-libtorch chooses in order', () => {
  it('1. LIBTORCH first, when it holds TorchConfig.cmake', () => {
    const plan = choose({
      libtorchEnv: '/opt/libtorch',
      libtorchEnvTorchDir: '/opt/libtorch/share/cmake/Torch',
      systemTorchDir: '/usr/lib/x86_64-linux-gnu/cmake/Torch',
    });
    assert.equal(plan.action, 'use');
    assert.equal(plan.source, 'LIBTORCH');
  });

  it('a LIBTORCH that is not a LibTorch is an error, not a hint to look elsewhere', () => {
    const plan = choose({ libtorchEnv: '/tmp/nothing', systemTorchDir: '/usr/lib/x86_64-linux-gnu/cmake/Torch' });
    assert.equal(plan.action, 'fail');
    assert.match(plan.message, /LIBTORCH=\/tmp\/nothing is not an unpacked LibTorch/);
  });

  it("2. a Python torch with CMake files (a CUDA machine's PyTorch)", () => {
    const plan = choose({
      pythons: [
        {
          python: 'python3',
          ok: true,
          version: '2.11.0',
          cuda: '13.0',
          prefix: '/p/torch/share/cmake',
          torchDir: '/p/torch/share/cmake/Torch',
        },
      ],
      systemTorchDir: '/usr/lib/x86_64-linux-gnu/cmake/Torch',
      driverCuda: [13, 0],
    });
    assert.equal(plan.action, 'use');
    assert.equal(plan.source, 'python');
    assert.ok(plan.reasons.some((r: string) => /torch 2\.11\.0 \(CUDA 13\.0\)/.test(r)));
  });

  it("skips a distribution's Python torch that ships no CMake files, saying why", () => {
    const plan = choose({
      pythons: [
        {
          python: '/usr/bin/python3',
          ok: true,
          version: '1.13.0a0',
          cuda: null,
          prefix: '/usr/lib/python3/dist-packages/torch/share/cmake',
          torchDir: null,
        },
      ],
      systemTorchDir: '/usr/lib/x86_64-linux-gnu/cmake/Torch',
    });
    assert.equal(plan.source, 'system');
    assert.ok(plan.reasons.some((r: string) => /holds no TorchConfig\.cmake/.test(r)));
  });

  it('3. a system LibTorch; 3b. apt-get install libtorch-dev only when allowed', () => {
    assert.equal(choose({ systemTorchDir: '/usr/lib/x86_64-linux-gnu/cmake/Torch' }).source, 'system');
    const allowed = choose({}, { allowApt: true });
    assert.equal(allowed.action, 'apt');
    assert.deepEqual(allowed.packages, ['libtorch-dev', 'libdnnl-dev', 'libideep-dev']);
    assert.equal(choose({ isRoot: false }, { allowApt: true }).action, 'download');
    assert.ok(choose({}).reasons.some((r: string) => /--allow-apt/.test(r)));
  });

  it('a CUDA machine does not settle for a CPU-only system LibTorch', () => {
    const plan = choose({ systemTorchDir: '/usr/lib/x86_64-linux-gnu/cmake/Torch', driverCuda: [12, 8] });
    assert.equal(plan.action, 'download');
    assert.equal(plan.variant, 'cu128');
  });

  it('4. the official archive: the newest CUDA build the driver supports, else CPU', () => {
    assert.equal(choose({ driverCuda: [13, 0] }).variant, 'cu130');
    assert.equal(choose({ driverCuda: [12, 9] }).variant, 'cu128');
    assert.equal(choose({ driverCuda: [12, 4] }).variant, 'cu124');
    assert.equal(choose({ driverCuda: [11, 4] }).variant, 'cpu');
    const cpu = choose({});
    assert.equal(cpu.variant, 'cpu');
    assert.match(cpu.url, /^https:\/\/download\.pytorch\.org\/libtorch\/cpu\/libtorch-shared-with-deps-[\d.]+%2Bcpu\.zip$/);
    assert.match(choose({}, { variant: 'cu118' }).url, /libtorch\/cu118\/libtorch-shared-with-deps-2\.7\.1%2Bcu118\.zip$/);
    assert.match(choose({}, { variant: 'cu121' }).url, /libtorch\/cu121\/libtorch-cxx11-abi-shared-with-deps-2\.5\.1%2Bcu121\.zip$/);
  });

  it('platform archives: macOS arm64 CPU only; Windows; nothing for other platforms', () => {
    assert.match(choose({ platform: 'darwin', arch: 'arm64' }).url, /libtorch-macos-arm64-/);
    assert.equal(choose({ platform: 'darwin', arch: 'arm64' }, { variant: 'cu128' }).action, 'fail');
    assert.match(choose({ platform: 'win32' }, { variant: 'cu126' }).url, /libtorch-win-shared-with-deps-[\d.]+%2Bcu126\.zip$/);
    assert.equal(choose({ platform: 'linux', arch: 'ppc64' }).action, 'fail');
  });

  it('with downloads off and nothing found, fails with what to do', () => {
    const plan = choose({}, { download: false });
    assert.equal(plan.action, 'fail');
    assert.match(plan.message, /set LIBTORCH/);
  });
});

describe('fetch-libtorch on this machine', () => {
  it('--dry-run --json prints its plan and reasons and changes nothing', () => {
    const run = spawnSync(process.execPath, [SCRIPT, '--dry-run', '--json'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const plan = JSON.parse(run.stdout);
    assert.ok(['use', 'apt', 'download'].includes(plan.action));
    assert.ok(plan.reasons.length >= 2);
    assert.match(run.stderr, /fetch-libtorch: LIBTORCH is not set|LIBTORCH=/);
  });

  it('refuses an unknown --variant with the list of variants', () => {
    const run = spawnSync(process.execPath, [SCRIPT, '--variant', 'cu999', '--dry-run'], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /--variant must be one of cpu, cu118/);
  });
});
