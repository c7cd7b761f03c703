/**
 * The folder of parts that `extract --out DIR/` and the queue's workers write: manifest.json says
 * which model (and its sha256), layers, options and inputs made it, and how the inputs split into
 * parts of a fixed number of inputs each. The manifest is written once, exclusively, and never
 * changes: every process that works on the folder (shards, workers, --resume) checks that it
 * describes the same extraction, and refuses the folder otherwise.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ExtractorError } from '../errors';
import { LIMITS } from '../limits';
import { CliError, PartsError, UsageError, oneLine } from './errors';
import { indexPath, outputPaths } from './extract';
import { kindOf } from './sources';

export const MANIFEST_FILE = 'manifest.json';
const FORMAT = 'libtorch-features/parts';
const VERSION = 1;
/** The default inputs per part: a multiple of every power-of-two --batch up to 1024 (see README, "Identical"). */
export const DEFAULT_PART_SIZE = 1024;
/** The most inputs per part: a part is one job and one retry; millions would make neither small. */
export const MAX_PART_SIZE = 1_000_000;
/** The most shards (`--shard K/N`). */
export const MAX_SHARDS = 1_000_000;

/** The options that change what a part holds: a folder is continued only with the same ones. */
export interface PartOptions {
  pool: 'avg' | 'max' | null;
  normalize: 'l2' | null;
  dtype: 'float32' | 'float16' | 'bfloat16';
  optimize: boolean;
  winograd: boolean;
  batch: number;
  fps: number;
  skipUnreadable: boolean;
}

export interface PartInfo {
  /** `part-00000`: the files are `part-00000.npy` (`part-00000.<layer>.npy` for several layers) and `part-00000.index.csv`. */
  name: string;
  /** The index of its first input in `inputs`. */
  first: number;
  /** How many inputs it holds. */
  count: number;
}

export interface Manifest {
  format: typeof FORMAT;
  version: typeof VERSION;
  /** The model's absolute path when the folder was made (workers load it from there), and its sha256. */
  model: { path: string; sha256: string };
  layers: string[];
  options: PartOptions;
  partSize: number;
  /** The folder relative inputs are read from (where the command ran). */
  base: string;
  /** Every input file in order, as listed (folders expanded): the index's `source` column. */
  inputs: string[];
  parts: PartInfo[];
}

/** Which slice of the parts a process takes: parts i with i % count === index. */
export interface Shard {
  index: number;
  count: number;
}

export function partName(i: number): string {
  return `part-${String(i).padStart(5, '0')}`;
}

/** The parts of `inputs` inputs, `size` each (the last holds the rest). */
export function planParts(inputs: number, size: number): PartInfo[] {
  const parts: PartInfo[] = [];
  for (let first = 0, i = 0; first < inputs; first += size, i++)
    parts.push({ name: partName(i), first, count: Math.min(size, inputs - first) });
  return parts;
}

/** A part's files: the .npy of each layer (as extract names them), then the index, which is renamed last. */
export function partFiles(dir: string, layers: readonly string[], part: PartInfo): string[] {
  const npy = path.join(dir, `${part.name}.npy`);
  return [...outputPaths(npy, layers), indexPath(npy)];
}

/** The parts of shard `shard` (all parts without one): round-robin, so that every shard gets about as many. */
export function shardParts(parts: readonly PartInfo[], shard?: Shard): PartInfo[] {
  return shard ? parts.filter((_, i) => i % shard.count === shard.index) : [...parts];
}

/** Parses `K/N` (K counted from 0, as Kubernetes' JOB_COMPLETION_INDEX); throws a usage CliError. */
export function parseShard(value: string): Shard {
  const match = /^(\d{1,7})\/(\d{1,7})$/.exec(value.trim());
  const usage = (why: string) => new UsageError('--shard', value, why);
  if (!match) throw usage('expected K/N, such as 0/4 (the first of 4)');
  const [index, count] = [Number(match[1]), Number(match[2])];
  if (count < 1 || count > MAX_SHARDS) throw usage(`N must be 1 to ${MAX_SHARDS.toLocaleString('en')}`);
  if (index >= count) throw usage(`K must be less than N: shards are counted from 0 (0/${count} to ${count - 1}/${count})`);
  return { index, count };
}

/** Checks a part size given by a user; throws a usage CliError. */
export function checkPartSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_PART_SIZE) {
    throw new UsageError('--part-size', String(size), `expected 1 to ${MAX_PART_SIZE.toLocaleString('en')} inputs per part`);
  }
  return size;
}

/** A layer name that can be part of a file name: what module paths are made of, and no path separator. */
export function checkLayerForFiles(layer: string): void {
  if (!/^[A-Za-z0-9_][\w.]*$/.test(layer) || layer.length > LIMITS.maxLayerName) {
    throw new CliError(
      `--layer ${JSON.stringify(layer.slice(0, 80))}: a folder of parts needs layer names made of letters, digits, _ and .`,
      2,
    );
  }
}

/** The sha256 of the model file, read in chunks; a missing file is MODEL_NOT_FOUND as when loading. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ExtractorError('MODEL_NOT_FOUND', `model file not found: ${file}`);
    if (code === 'EISDIR') throw new ExtractorError('MODEL_LOAD_FAILED', `${file} is a folder, not a TorchScript file`);
    throw new CliError(`cannot read model ${file}: ${oneLine((error as Error).message)}`);
  }
  return hash.digest('hex');
}

/** The manifest for an extraction (not yet written). */
export function makeManifest(
  model: { path: string; sha256: string },
  layers: readonly string[],
  options: PartOptions,
  partSize: number,
  inputs: readonly string[],
): Manifest {
  return {
    format: FORMAT,
    version: VERSION,
    model: { path: path.resolve(model.path), sha256: model.sha256 },
    layers: [...layers],
    options: { ...options },
    partSize,
    base: process.cwd(),
    inputs: [...inputs],
    parts: planParts(inputs.length, partSize),
  };
}

/** A short hash of what the folder holds (model, layers, options, inputs), for job ids and workers' checks. */
export function manifestId(manifest: Manifest): string {
  const { model, layers, options, partSize, base, inputs } = manifest;
  return createHash('sha256')
    .update(JSON.stringify([model.sha256, layers, options, partSize, base, inputs]))
    .digest('hex')
    .slice(0, 16);
}

function describeOption(value: unknown): string {
  return value === null ? 'none' : String(value);
}

/** Why `found` (the folder's) is not the extraction `wanted`, or undefined when it is the same. */
export function mismatch(found: Manifest, wanted: Manifest): string | undefined {
  if (found.model.sha256 !== wanted.model.sha256) {
    return `another model (sha256 ${found.model.sha256.slice(0, 12)}…, ${found.model.path}; this one is ${wanted.model.sha256.slice(0, 12)}…)`;
  }
  if (found.layers.join('\n') !== wanted.layers.join('\n')) return `layer ${found.layers.join(', ')} (not ${wanted.layers.join(', ')})`;
  const keys = Object.keys(wanted.options) as (keyof PartOptions)[];
  const differ = keys.filter((key) => found.options[key] !== wanted.options[key]);
  if (differ.length > 0) {
    return `other options (${differ.map((key) => `${key} ${describeOption(found.options[key])} there, ${describeOption(wanted.options[key])} now`).join('; ')})`;
  }
  if (found.partSize !== wanted.partSize) return `--part-size ${found.partSize} (not ${wanted.partSize})`;
  if (found.base !== wanted.base) return `inputs listed from ${found.base} (not ${wanted.base}): run it there, or give absolute paths`;
  const differs = found.inputs.findIndex((input, i) => input !== wanted.inputs[i]);
  if (differs >= 0 || found.inputs.length !== wanted.inputs.length) {
    const at = differs >= 0 ? differs : Math.min(found.inputs.length, wanted.inputs.length);
    return `other inputs (${found.inputs.length} there, ${wanted.inputs.length} now; input ${at} is ${found.inputs[at] ?? 'absent'} there, ${wanted.inputs[at] ?? 'absent'} now)`;
  }
  return undefined;
}

/** Reads and checks a folder's manifest; undefined when there is none. Throws MANIFEST_INVALID. */
export function readManifest(dir: string): Manifest | undefined {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PartsError('MANIFEST_INVALID', `cannot read ${file}: ${oneLine((error as Error).message)}`);
  }
  const invalid = (why: string) =>
    new PartsError('MANIFEST_INVALID', `${file} is not a manifest libtorch-features wrote (${why}); start again in an empty folder`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(oneLine((error as Error).message));
  }
  const why = manifestProblem(value);
  if (why) throw invalid(why);
  return value as Manifest;
}

const OPTION_CHECKS: Record<keyof PartOptions, (v: unknown) => boolean> = {
  pool: (v) => v === null || v === 'avg' || v === 'max',
  normalize: (v) => v === null || v === 'l2',
  dtype: (v) => v === 'float32' || v === 'float16' || v === 'bfloat16',
  optimize: (v) => typeof v === 'boolean',
  winograd: (v) => typeof v === 'boolean',
  batch: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= LIMITS.maxBatch,
  fps: (v) => typeof v === 'number' && v > 0 && Number.isFinite(v),
  skipUnreadable: (v) => typeof v === 'boolean',
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sameKeys(value: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Object.keys(value).sort();
  return own.length === keys.length && [...keys].sort().every((k, i) => own[i] === k);
}

const isPath = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 4096 && !v.includes('\0');

/** What is wrong with a parsed manifest (a hand edit, another program's file), or undefined. */
function manifestProblem(m: unknown): string | undefined {
  const keys = ['format', 'version', 'model', 'layers', 'options', 'partSize', 'base', 'inputs', 'parts'];
  if (!isRecord(m) || !sameKeys(m, keys)) return `expected an object with ${keys.join(', ')}`;
  if (m.format !== FORMAT) return `format ${JSON.stringify(m.format)}`;
  if (m.version !== VERSION) return `version ${JSON.stringify(m.version)}: this libtorch-features reads version ${VERSION}`;
  const model = m.model;
  if (!isRecord(model) || !sameKeys(model, ['path', 'sha256']) || !isPath(model.path) || !path.isAbsolute(model.path)) return 'model';
  if (typeof model.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(model.sha256)) return 'model.sha256';
  if (!Array.isArray(m.layers) || m.layers.length === 0 || new Set(m.layers).size !== m.layers.length) return 'layers';
  for (const layer of m.layers) {
    if (typeof layer !== 'string') return 'layers';
    try {
      checkLayerForFiles(layer);
    } catch {
      return `layer ${JSON.stringify(layer.slice(0, 80))}`;
    }
  }
  const options = m.options;
  if (!isRecord(options) || !sameKeys(options, Object.keys(OPTION_CHECKS))) return 'options';
  for (const [key, check] of Object.entries(OPTION_CHECKS)) if (!check(options[key])) return `options.${key}`;
  if (!Number.isInteger(m.partSize) || (m.partSize as number) < 1 || (m.partSize as number) > MAX_PART_SIZE) return 'partSize';
  if (!isPath(m.base) || !path.isAbsolute(m.base)) return 'base';
  if (!Array.isArray(m.inputs) || m.inputs.length === 0) return 'inputs';
  const bad = m.inputs.findIndex((input) => !isPath(input) || !kindOf(input));
  if (bad >= 0) return `input ${bad}`;
  const parts = planParts(m.inputs.length, m.partSize as number);
  if (JSON.stringify(m.parts) !== JSON.stringify(parts)) return `parts: not ${parts.length} parts of ${m.partSize} inputs`;
  return undefined;
}

/** The absolute path of an input of the manifest. */
export function inputPath(manifest: Manifest, input: string): string {
  return path.resolve(manifest.base, input);
}
