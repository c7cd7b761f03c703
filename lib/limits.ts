/**
 * The limits on what callers pass, shared with the native addon: one table,
 * native/common/limits.json, read here and by CMakeLists.txt (native/common/limits.h).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Limits {
  /** A side of an image given as pixels, and of `preprocess.resize` / `crop`. */
  maxImageSide: number;
  /** A layer name, in characters. */
  maxLayerName: number;
  /** A side of the input shape given to `summary()`. */
  maxShapeSide: number;
  /** A side of the `inputShape` the `verify` child runs zeros of. */
  maxVerifySide: number;
  /** `maxBatch`. */
  maxBatch: number;
  /** `maxQueue`. */
  maxQueue: number;
  /** The elements of a tensor given as input. */
  maxTensorElements: number;
}

export const LIMITS: Readonly<Limits> = Object.freeze(
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'native', 'common', 'limits.json'), 'utf8')) as Limits,
);
