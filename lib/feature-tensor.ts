/** The result of an extraction. */
import ndarray = require('ndarray');

/** Features of one layer: row-major float32 values in JavaScript memory, and their shape. */
export class FeatureTensor {
  /** The values, row-major (C order). Owned by JavaScript: safe to keep, transfer or modify. */
  readonly data: Float32Array;
  /** The shape, e.g. `[1, 512, 7, 7]` for ResNet-18's layer4 on one 224x224 image. */
  readonly shape: readonly number[];

  constructor(data: Float32Array, shape: readonly number[]) {
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  /** A view of the same values as an ndarray (no copy). */
  toNdarray(): ndarray.NdArray<Float32Array> {
    return ndarray(this.data, [...this.shape]);
  }
}
