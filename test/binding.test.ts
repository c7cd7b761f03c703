/** Loading the addon: a missing build is an error that says how to build, not a bare dlopen failure. */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.join(__dirname, '..', '..');

describe('binding', () => {
  it('ADDON_LOAD_FAILED, with the commands to build it, when no binary is there', () => {
    // A copy of the compiled package without build/ or prebuilds/.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ltf-nobuild-'));
    try {
      fs.cpSync(path.join(ROOT, 'dist', 'lib'), path.join(dir, 'dist', 'lib'), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
      // What an installed package holds beside dist/: the limits table lib/limits.ts reads.
      fs.cpSync(path.join(ROOT, 'native', 'common', 'limits.json'), path.join(dir, 'native', 'common', 'limits.json'));
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
      const script = `
        const { Extractor } = require(${JSON.stringify(path.join(dir, 'dist', 'lib'))});
        try { Extractor.listLayers('model.pt'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
      const env = { ...process.env };
      delete env.LIBTORCH_FEATURES_BINARY;
      const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env });
      assert.equal(run.status, 0, run.stderr);
      const error = JSON.parse(run.stdout);
      assert.equal(error.code, 'ADDON_LOAD_FAILED');
      assert.match(error.message, /npm rebuild libtorch-features/);
      assert.match(error.message, /npm install-scripts approve libtorch-features/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the binary finds LibTorch without LD_LIBRARY_PATH', () => {
    const env = { ...process.env };
    delete env.LD_LIBRARY_PATH;
    const run = spawnSync(
      process.execPath,
      ['-e', `console.log(require(${JSON.stringify(path.join(ROOT, 'dist', 'lib'))}).Extractor.runtime().torchVersion)`],
      { encoding: 'utf8', env },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^\d+\.\d+/);
  });

  it('only native/binding/ includes Node-API: the core can be built and tested without Node', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (file !== path.join(ROOT, 'native', 'binding')) walk(file);
        } else if (/\.(cc|h)$/.test(entry.name) && /#include <napi\.h>|Napi::/.test(fs.readFileSync(file, 'utf8'))) {
          offenders.push(path.relative(ROOT, file));
        }
      }
    };
    walk(path.join(ROOT, 'native'));
    assert.deepEqual(offenders, []);
  });
});
