/**
 * libtorch-features: features from any intermediate layer of a TorchScript CNN, in Node.js and
 * Electron, through LibTorch.
 */
export { Extractor } from './extractor';
export { FeatureTensor } from './feature-tensor';
export { ExtractorError, ERROR_CODES, type ErrorCode } from './errors';
export type { Device, ExtractInput, ExtractorOptions, LayerInfo, RuntimeInfo, TensorInput } from './types';
