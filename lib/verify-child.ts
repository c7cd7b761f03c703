/**
 * The child process of verifyModel (lib/isolate.ts): loads the model, cuts it, runs one forward on
 * zeros, and prints one JSON line. Whatever happens in here cannot take the parent down.
 */
import { Extractor } from './extractor';
import type { ExtractorError } from './errors';
import type { FeatureTensor } from './feature-tensor';

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2]) as {
    file: string;
    layer?: string | string[];
    inputShape: number[];
    allowUnsafeOperations: boolean;
  };
  // For the tests: a child that dies the way a loader crash would.
  if (process.env.LTF_VERIFY_TEST_ABORT === '1') process.abort();
  const started = performance.now();
  try {
    const layers = Extractor.listLayers(request.file);
    const layer = request.layer ?? layers[layers.length - 1]?.name;
    const ex = await Extractor.create(request.file, layer ?? '', { device: 'cpu', allowUnsafeOperations: request.allowUnsafeOperations });
    const size = request.inputShape.reduce((a, b) => a * b, 1);
    const out = await ex.extract({ data: new Float32Array(size), shape: request.inputShape });
    const tensors = (typeof layer === 'string' ? [out] : Object.values(out)) as FeatureTensor[];
    const report = {
      layers,
      outputShapes: tensors.map((t) => [...t.shape]),
      parameterCount: ex.parameterCount,
      milliseconds: performance.now() - started,
      peakMemoryMiB: process.resourceUsage().maxRSS / 1024,
    };
    process.stdout.write(`${JSON.stringify({ ok: true, report })}\n`);
  } catch (error) {
    const e = error as ExtractorError;
    process.stdout.write(`${JSON.stringify({ ok: false, code: e.code ?? 'MODEL_REJECTED', message: e.message })}\n`);
  }
}

void main();
