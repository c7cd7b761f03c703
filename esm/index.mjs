// The ES module entry point: the same objects as the CommonJS one (dist/lib/index.js), so that
// `import` and `require` in one process share one addon and one Extractor class.
import cjs from '../dist/lib/index.js';

export const { Extractor, FeatureTensor, ModelSummary, ExtractorError, ERROR_CODES, IMAGENET_MEAN, IMAGENET_STD } = cjs;
export default cjs;
