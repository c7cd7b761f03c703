/**
 * libtorch-features: features from any intermediate layer of a TorchScript CNN, in Node.js and
 * Electron, through LibTorch.
 */
export { Extractor } from './extractor';
export { FeatureTensor } from './feature-tensor';
export { ModelSummary, type SummaryRow } from './summary';
export { ExtractorError, ERROR_CODES, type ErrorCode } from './errors';
export { IMAGENET_MEAN, IMAGENET_STD } from './options';
export type { VerifyOptions, VerifyReport } from './isolate';
export type {
  Device,
  ExtractInput,
  ExtractOptions,
  ExtractorOptions,
  Features,
  ImageInput,
  LayerInfo,
  LayerKind,
  LayerSpec,
  ModelSource,
  OneDnnCaches,
  OneDnnReport,
  OptimizationReport,
  PreprocessOptions,
  RuntimeInfo,
  TensorInput,
} from './types';
