/** A torchsummary-style table of what an extractor runs. */

/** One module call of the cut, as torchsummary lists it. */
export interface SummaryRow {
  /** The call's name: `'layer1.0.relu_1'`. */
  name: string;
  /** Its class: `'ReLU'`. */
  type: string;
  /** Its output shape without the batch dimension: `[64, 56, 56]`. */
  outputShape: number[];
  /** The module's own parameters (not its children's), as torchsummary counts them. */
  parameters: number;
}

// torchsummary reports sizes in MiB of float32 values.
const BYTES = 4;
const MIB = 1024 * 1024;

/**
 * The rows and totals torchsummary prints for the same model and input (`summary(model,
 * input_size)`): for ResNet-18 up to layer4 at [3, 224, 224], 11,176,512 parameters, 42.64 MB of
 * parameters and an output of [512, 7, 7].
 */
export class ModelSummary {
  /** Every module call the outputs depend on, in the order their outputs are complete. */
  readonly rows: readonly SummaryRow[];
  /** The input shape, without the batch dimension. */
  readonly inputShape: readonly number[];
  /** The output shape of each layer asked for, by output name, without the batch dimension. */
  readonly outputShapes: Readonly<Record<string, readonly number[]>>;
  /** The output shape of the (first) layer asked for. */
  readonly outputShape: readonly number[];
  /** Parameters kept, each counted once. */
  readonly totalParameters: number;
  /** Input size in MB (MiB) of float32: torchsummary's "Input size (MB)". */
  readonly inputMB: number;
  /** torchsummary's "Forward/backward pass size (MB)": twice the float32 outputs of every row. */
  readonly forwardBackwardMB: number;
  /** torchsummary's "Params size (MB)": the parameters as float32. */
  readonly parametersMB: number;
  /** torchsummary's "Estimated Total Size (MB)". */
  readonly totalMB: number;

  constructor(rows: SummaryRow[], inputShape: number[], outputShapes: Record<string, number[]>, totalParameters: number) {
    const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
    this.rows = Object.freeze(rows.map((row) => Object.freeze({ ...row, outputShape: [...row.outputShape] })));
    this.inputShape = Object.freeze([...inputShape]);
    this.outputShapes = Object.freeze({ ...outputShapes });
    this.outputShape = Object.values(outputShapes)[0];
    this.totalParameters = totalParameters;
    this.inputMB = (product(inputShape) * BYTES) / MIB;
    this.forwardBackwardMB = (2 * rows.reduce((sum, row) => sum + product(row.outputShape), 0) * BYTES) / MIB;
    this.parametersMB = (totalParameters * BYTES) / MIB;
    this.totalMB = this.inputMB + this.forwardBackwardMB + this.parametersMB;
  }

  /** The table as torchsummary prints it, with each call's name added. */
  toString(): string {
    const rule = '-'.repeat(96);
    const line = (a: string, b: string, c: string, d: string) => `${a.padStart(20)}  ${b.padEnd(30)}  ${c.padStart(25)}  ${d.padStart(15)}`;
    const shape = (s: readonly number[]) => `[${[-1, ...s].join(', ')}]`;
    const lines = [rule, line('Layer (type)', 'Name', 'Output Shape', 'Param #'), '='.repeat(96)];
    this.rows.forEach((row, i) => {
      lines.push(line(`${row.type}-${i + 1}`, row.name, shape(row.outputShape), row.parameters.toLocaleString('en-US')));
    });
    const mb = (v: number) => v.toFixed(2);
    lines.push(
      '='.repeat(96),
      `Total params: ${this.totalParameters.toLocaleString('en-US')}`,
      `Output shape: ${Object.entries(this.outputShapes)
        .map(([k, s]) => `${k} ${shape(s)}`)
        .join(', ')}`,
      rule,
      `Input size (MB): ${mb(this.inputMB)}`,
      `Forward/backward pass size (MB): ${mb(this.forwardBackwardMB)}`,
      `Params size (MB): ${mb(this.parametersMB)}`,
      `Estimated Total Size (MB): ${mb(this.totalMB)}`,
      rule,
    );
    return lines.join('\n');
  }
}
