// A consumer's code, type-checked by `npm test` (tsc -p test/types): what must compile, and, under
// expect-error directives, what must not. An expected error that does not happen fails the check.
import { Extractor, ExtractorError, type ErrorCode, type FeatureTensor, type LayerInfo } from 'libtorch-features';

export async function uses(photo: Uint8Array): Promise<void> {
  const one = new Extractor('resnet18.pt', 'layer4', { device: 'cuda:0', dtype: 'float16', channelsLast: true });
  const features: FeatureTensor = await one.extract({ data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] });
  const shape: readonly number[] = features.shape;
  void shape;
  one.extractSync({ data: photo, width: 10, height: 10, channels: 3 });

  const many = await Extractor.create('resnet18.pt', ['layer2', 'layer4'] as const, { pool: 'avg', normalize: 'l2' });
  const record = await many.extract([{ data: photo, width: 10, height: 10, channels: 4 }]);
  const deep: FeatureTensor = record.layer4;
  void deep;

  const renamed = new Extractor(photo, { layer2: 'mid', layer4: 'deep' } as const);
  const r = renamed.extractSync({ data: new Float32Array(1), shape: [1, 1, 1, 1] });
  void r.mid;

  const fast = new Extractor('resnet18.pt', 'layer4', { device: 'cpu', optimize: true, winograd: false });
  const fused: number = fast.onednn.convolutions + fast.onednn.winograd;
  const built: boolean = Extractor.runtime().onednnFusion;
  const bf16Fused: boolean = Extractor.runtime().pointwiseFusion;
  const ownWinograd: boolean = Extractor.runtime().winograd;
  void fused;
  void built;
  void bf16Fused;
  void ownWinograd;
  // @ts-expect-error: the report is read-only
  fast.onednn.winograd = 3;
  const gpu = new Extractor('resnet18.pt', 'layer4', { device: 'cuda', tf32: true });
  void gpu;
  // @ts-expect-error: tf32 is a boolean
  new Extractor('resnet18.pt', 'layer4', { tf32: 'on' });

  const layers: LayerInfo[] = Extractor.listLayers('resnet18.pt', { nested: true });
  void layers;
  const summary = one.summary([3, 224, 224]);
  void summary.totalParameters;
  try {
    one.dispose();
  } catch (error) {
    if (error instanceof ExtractorError) {
      const code: ErrorCode = error.code;
      void code;
    }
  }

  // @ts-expect-error: the device is 'cpu', 'cuda', 'cuda:N' or 'auto'
  new Extractor('m.pt', 'layer4', { device: 'gpu' });
  // @ts-expect-error: dtype is a string union
  new Extractor('m.pt', 'layer4', { dtype: 16 });
  // @ts-expect-error: a layer is a name, a list or a record of names
  new Extractor('m.pt', 4);
  // @ts-expect-error: pool is 'avg' or 'max'
  new Extractor('m.pt', 'layer4', { pool: 'mean' });
  // @ts-expect-error: a Float64Array is not an input
  one.extractSync({ data: new Float64Array(1), shape: [1, 1, 1, 1] });
  // @ts-expect-error: the record has layer2 and layer4, not layer3
  void record.layer3;
  // @ts-expect-error: a single layer gives a tensor, not a record
  void features.layer4;
}
