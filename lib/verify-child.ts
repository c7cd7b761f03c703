/**
 * The child process of verifyModel (lib/isolate.ts): loads the model, cuts it, runs one forward on
 * zeros, and answers over the IPC channel. Whatever happens in here cannot take the parent down.
 */
import { Extractor } from './extractor';
import type { ExtractorError } from './errors';
import type { FeatureTensor } from './feature-tensor';

/** What lib/isolate.ts sends over the IPC channel. */
interface Request {
  file: string;
  layer?: string | string[];
  inputShape: number[];
  options: Record<string, unknown>;
}

// The verdict goes back over the IPC channel alone (the model's print() shares stdout); then the
// channel is closed and the process ends by itself, with code 0.
function answer(message: object): void {
  process.send!(message, () => process.disconnect());
}

async function main(request: Request): Promise<void> {
  // For the tests: a child that dies the way a loader crash would.
  if (process.env.LTF_VERIFY_TEST_ABORT === '1') process.abort();
  const started = performance.now();
  try {
    const layers = Extractor.listLayers(request.file);
    const layer = request.layer ?? layers[layers.length - 1]?.name;
    const ex = await Extractor.create(request.file, layer ?? '', request.options);
    const size = request.inputShape.reduce((a, b) => a * b, 1);
    const out = await ex.extract({ data: new Float32Array(size), shape: request.inputShape });
    const tensors = (typeof layer === 'string' ? [out] : Object.values(out)) as FeatureTensor[];
    // For the tests: a verdict of success, then a crash, as a hostile model could stage.
    if (process.env.LTF_VERIFY_TEST_CRASH_AFTER === '1') {
      process.send!({ ok: true, report: { layers, outputShapes: [], parameterCount: 0, milliseconds: 0, peakMemoryMiB: 0 } });
      setTimeout(() => process.kill(process.pid, 'SIGSEGV'), 50);
      return;
    }
    const report = {
      layers,
      outputShapes: tensors.map((t) => [...t.shape]),
      parameterCount: ex.parameterCount,
      milliseconds: performance.now() - started,
      peakMemoryMiB: process.resourceUsage().maxRSS / 1024,
    };
    answer({ ok: true, report });
  } catch (error) {
    const e = error as ExtractorError;
    answer({ ok: false, code: e.code ?? 'MODEL_REJECTED', message: e.message });
  }
}

process.once('message', (request) => void main(request as Request));
