/**
 * What `extract` reads: image files, folders of them (recursively, in sorted order), and videos
 * (frames sampled with ffmpeg). Each item becomes one row of the output.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { ImageInput } from '../types';
import { CliError, oneLine } from './errors';

/** The formats sharp decodes (libvips' loaders in sharp's prebuilt binaries). */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif', '.svg', '.jp2']);
const VIDEO_EXTENSIONS = new Set(['.mp4', '.m4v', '.mov', '.avi', '.mkv', '.webm', '.mpg', '.mpeg', '.wmv', '.flv', '.ogv']);

export interface Source {
  kind: 'image' | 'video';
  path: string;
  /** How the index names it, when not by `path`: a folder of parts keeps the inputs as listed, and its workers read them from elsewhere. */
  name?: string;
}

/** One decoded item and where it came from. */
export interface Frame {
  image: ImageInput;
  source: string;
  /** The frame's index in a video; 0 for an image. */
  frame: number;
  /** Its time in seconds in a video; 0 for an image. */
  time: number;
  /** Whether it is a frame of a video. */
  video: boolean;
}

export function kindOf(file: string): Source['kind'] | undefined {
  const ext = path.extname(file).toLowerCase();
  return IMAGE_EXTENSIONS.has(ext) ? 'image' : VIDEO_EXTENSIONS.has(ext) ? 'video' : undefined;
}

function walk(dir: string, out: Source[]): void {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else if (entry.isFile() && kindOf(full)) out.push({ kind: kindOf(full)!, path: full });
  }
}

/** Expands the command line's inputs; throws CliError for what does not exist or is not media. */
export function listSources(inputs: readonly string[]): Source[] {
  const sources: Source[] = [];
  for (const input of inputs) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(input);
    } catch {
      throw new CliError(`no such file or folder: ${input}`);
    }
    if (stat.isDirectory()) {
      const before = sources.length;
      walk(input, sources);
      if (sources.length === before) throw new CliError(`no images or videos in folder ${input}`);
    } else {
      const kind = kindOf(input);
      if (!kind) throw new CliError(`not an image or video file (by its extension): ${input}`);
      sources.push({ kind, path: input });
    }
  }
  return sources;
}

/** Whether ffmpeg and ffprobe can be run. */
export function hasFfmpeg(): boolean {
  return ['ffmpeg', 'ffprobe'].every((tool) => spawnSync(tool, ['-version'], { stdio: 'ignore' }).status === 0);
}

/** An image file that cannot be decoded; `reason` is sharp's, on one line. */
export class UnreadableImage extends CliError {
  readonly file: string;
  readonly reason: string;

  constructor(file: string, reason: string) {
    super(`cannot read image ${file}: ${reason}`);
    this.file = file;
    this.reason = reason;
  }
}

/** Decodes an image file into RGB pixels with sharp; throws UnreadableImage. */
export async function decodeImage(file: string): Promise<ImageInput> {
  // Loaded here so that `layers` works where sharp's binary is missing.
  const sharp = (await import('sharp')).default;
  try {
    const { data, info } = await sharp(file).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
      channels: info.channels as 3,
    };
  } catch (error) {
    throw new UnreadableImage(file, oneLine((error as Error).message));
  }
}

function probe(file: string): { width: number; height: number } {
  const run = spawnSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', file],
    { encoding: 'utf8' },
  );
  const [width, height] = run.stdout.trim().split(',').map(Number);
  if (run.status !== 0 || !(width > 0 && height > 0)) {
    throw new CliError(`cannot read video ${file}: ${run.stderr.trim().split('\n')[0] || 'no video stream'}`);
  }
  return { width, height };
}

/** The frames of a video sampled at `fps`, decoded by ffmpeg into RGB. */
export async function* videoFrames(file: string, fps: number, signal: AbortSignal, name = file): AsyncGenerator<Frame> {
  const { width, height } = probe(file);
  const size = width * height * 3;
  const ffmpeg = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-vf', `fps=${fps}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () => ffmpeg.kill('SIGKILL');
  signal.addEventListener('abort', stop, { once: true });
  let errors = '';
  ffmpeg.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => ffmpeg.on('close', resolve));
  let pending: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  let index = 0;
  try {
    for await (const chunk of ffmpeg.stdout) {
      pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
      while (pending.length >= size) {
        const data = new Uint8Array(pending.subarray(0, size));
        pending = pending.subarray(size);
        yield { image: { data, width, height, channels: 3 }, source: name, frame: index, time: index / fps, video: true };
        index++;
      }
    }
    const code = await exited;
    if (code !== 0 && !signal.aborted)
      throw new CliError(`cannot read video ${file}: ${errors.trim().split('\n')[0] || `ffmpeg exited with ${code}`}`);
  } finally {
    signal.removeEventListener('abort', stop);
    if (ffmpeg.exitCode === null) stop();
  }
}

/**
 * Every item of every source, in order. An image that cannot be decoded throws UnreadableImage, or,
 * with `onUnreadable`, is passed to it and left out.
 */
export async function* frames(
  sources: readonly Source[],
  fps: number,
  signal: AbortSignal,
  onUnreadable?: (error: UnreadableImage) => void,
): AsyncGenerator<Frame> {
  for (const source of sources) {
    if (signal.aborted) return;
    if (source.kind === 'image') {
      let image: ImageInput;
      try {
        image = await decodeImage(source.path);
      } catch (error) {
        if (!onUnreadable || !(error instanceof UnreadableImage)) throw error;
        onUnreadable(error);
        continue;
      }
      yield { image, source: source.name ?? source.path, frame: 0, time: 0, video: false };
    } else {
      yield* videoFrames(source.path, fps, signal, source.name);
    }
  }
}

/** About how many rows the sources give (videos: duration x fps, from ffprobe). */
export function estimateRows(sources: readonly Source[], fps: number): number {
  let rows = 0;
  for (const source of sources) {
    if (source.kind === 'image') {
      rows += 1;
      continue;
    }
    const run = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', source.path], {
      encoding: 'utf8',
    });
    const duration = Number(run.stdout.trim());
    rows += Number.isFinite(duration) && duration > 0 ? Math.max(1, Math.round(duration * fps)) : 1;
  }
  return rows;
}
