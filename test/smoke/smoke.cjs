// A smoke test for other Node versions and for installed packages: require and import the
// package, cut a model, extract. Usage: node smoke.cjs <package dir or name> <model.pt>
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');

const [target = path.join(__dirname, '..', '..'), model = path.join(__dirname, '..', 'fixtures', 'resnet18.pt')] = process.argv.slice(2);
const { pathToFileURL } = require('node:url');

(async () => {
  const { Extractor } = require(target);
  const ex = await Extractor.create(model, 'layer4', { device: 'cpu' });
  const out = await ex.extract({ data: new Float32Array(3 * 224 * 224).fill(0.5), shape: [1, 3, 224, 224] });
  assert.deepEqual(out.shape, [1, 512, 7, 7]);
  assert.equal(ex.parameterCount, 11176512);
  const specifier =
    target.startsWith('/') || target.startsWith('.')
      ? pathToFileURL(path.join(require.resolve(target), '..', '..', '..', 'esm', 'index.mjs')).href
      : target;
  const esm = await import(specifier);
  assert.equal(esm.Extractor, Extractor, 'import and require give the same class');
  console.log(`smoke ok on Node ${process.version}: layer4 ${out.shape.join('x')}, ${Extractor.runtime().torchVersion}`);
})().catch((error) => {
  console.error(`smoke failed on Node ${process.version}: ${error.stack}`);
  process.exit(1);
});
