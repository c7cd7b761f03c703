/**
 * `libtorch-features maps`: the feature maps of one image at a layer as one picture, a tile per
 * channel, each scaled to its own range (the article shows layer4's 512 maps of 7x7 so), and
 * optionally the mean activation as a heat map over the image the network saw.
 */
import * as path from 'node:path';

import { Extractor } from '../extractor';
import type { FeatureTensor } from '../feature-tensor';
import type { ExtractorOptions, ImageInput } from '../types';
import { CliError } from './errors';
import { Outputs, writeAll } from './outputs';
import { decodeImage } from './sources';

export interface MapsOptions {
  layer: string;
  out: string;
  overlay?: string;
  device: NonNullable<ExtractorOptions['device']>;
}

// Colour maps as a few anchors, interpolated linearly: matplotlib's viridis for the tiles (a
// perceptually even scale), inferno for the heat map.
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
const INFERNO = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];
// Tiles are drawn at least this many pixels wide, with this gap between them.
const MIN_TILE = 32;
const GAP = 2;

function colour(map: number[][], t: number): number[] {
  const x = Math.min(Math.max(t, 0), 1) * (map.length - 1);
  const i = Math.min(Math.floor(x), map.length - 2);
  const f = x - i;
  return map[i].map((c, k) => Math.round(c + f * (map[i + 1][k] - c)));
}

/** Values scaled to [0, 1] by their own minimum and maximum (a constant map is all 0). */
function normalized(values: Float32Array): Float32Array {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min;
  return values.map((v) => (range > 0 ? (v - min) / range : 0));
}

/** The grid picture of maps [C, H, W]: RGB pixels and their size. */
export function mapGrid(maps: FeatureTensor): { data: Uint8Array; width: number; height: number; columns: number } {
  const [, channels, h, w] = maps.shape;
  const scale = Math.max(1, Math.ceil(MIN_TILE / Math.max(h, w)));
  const columns = Math.ceil(Math.sqrt(channels));
  const rows = Math.ceil(channels / columns);
  const width = columns * (w * scale + GAP) + GAP;
  const height = rows * (h * scale + GAP) + GAP;
  const data = new Uint8Array(width * height * 3).fill(255);
  for (let c = 0; c < channels; c++) {
    const tile = normalized(maps.data.subarray(c * h * w, (c + 1) * h * w));
    const left = GAP + (c % columns) * (w * scale + GAP);
    const top = GAP + Math.floor(c / columns) * (h * scale + GAP);
    for (let y = 0; y < h * scale; y++) {
      for (let x = 0; x < w * scale; x++) {
        const rgb = colour(VIRIDIS, tile[Math.floor(y / scale) * w + Math.floor(x / scale)]);
        data.set(rgb, ((top + y) * width + left + x) * 3);
      }
    }
  }
  return { data, width, height, columns };
}

/**
 * Runs the command; returns what it wrote. The outputs are checked before anything else and
 * written through temporary files renamed at the end (see outputs.ts): a failure leaves none.
 */
export async function runMaps(model: string, imagePath: string, options: MapsOptions): Promise<{ files: string[]; shape: number[] }> {
  if (options.overlay && path.resolve(options.overlay) === path.resolve(options.out)) {
    throw new CliError(`--overlay and --out name the same file: ${options.out}`);
  }
  const outputs = new Outputs(options.overlay ? [options.out, options.overlay] : [options.out]);
  let ex: Extractor | undefined;
  try {
    const sharp = (await import('sharp')).default;
    const image = await decodeImage(imagePath);
    ex = await Extractor.create(model, options.layer, { device: options.device });
    const maps = await ex.extract(image);
    if (maps.shape.length !== 4) {
      throw new CliError(`layer ${options.layer} gives shape [${maps.shape.join(', ')}], not feature maps [1, C, H, W]`);
    }
    const grid = mapGrid(maps);
    const png = await sharp(grid.data, { raw: { width: grid.width, height: grid.height, channels: 3 } })
      .png()
      .toBuffer();
    writeAll(outputs.fds[0], png);
    if (options.overlay) writeAll(outputs.fds[1], await overlayPng(sharp, image, maps));
    outputs.commit();
    return { files: [...outputs.finals], shape: [...maps.shape] };
  } finally {
    ex?.dispose();
    outputs.discard();
  }
}

/** The mean activation over channels, as a heat map blended over the 224x224 crop the network saw. */
type Sharp = (typeof import('sharp'))['default'];

async function overlayPng(sharp: Sharp, image: ImageInput, maps: FeatureTensor): Promise<Buffer> {
  const [, channels, h, w] = maps.shape;
  const mean = new Float32Array(h * w);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < h * w; i++) mean[i] += maps.data[c * h * w + i] / channels;
  }
  const heat = normalized(mean);
  const heatRgb = new Uint8Array(h * w * 3);
  heat.forEach((v, i) => heatRgb.set(colour(INFERNO, v), i * 3));
  const side = 224;
  // The same resize (shorter side 256) and centre crop as the default preprocessing.
  const base = await sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize({ width: image.width <= image.height ? 256 : undefined, height: image.height < image.width ? 256 : undefined })
    .resize(side, side, { fit: 'cover', position: 'centre' })
    .raw()
    .toBuffer();
  const heatUp = await sharp(Buffer.from(heatRgb), { raw: { width: w, height: h, channels: 3 } })
    .resize(side, side, { kernel: 'linear', fit: 'fill' })
    .raw()
    .toBuffer();
  const blended = Buffer.alloc(side * side * 3);
  for (let i = 0; i < blended.length; i++) blended[i] = Math.round(0.5 * base[i] + 0.5 * heatUp[i]);
  return sharp(blended, { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();
}
