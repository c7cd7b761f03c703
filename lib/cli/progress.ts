/**
 * Progress of a long extraction: a bar with rate and ETA on a terminal, a plain line every few
 * seconds otherwise (logs, CI), nothing with --quiet.
 */
import { SingleBar } from 'cli-progress';

export interface Progress {
  /** Adds `count` items done. */
  tick(count: number): void;
  /** Ends the display; a final line only when the work completed. */
  stop(completed: boolean): void;
}

// A plain line at most this often, so that logs stay short.
const LINE_INTERVAL_MS = 2000;

function seconds(value: number): string {
  if (!Number.isFinite(value)) return '?';
  return value < 90 ? `${Math.round(value)}s` : `${Math.floor(value / 60)}m${String(Math.round(value % 60)).padStart(2, '0')}s`;
}

/** A progress display on `stream` for `total` items (an estimate for videos). */
export function createProgress(total: number, options: { quiet: boolean; stream?: NodeJS.WriteStream; label?: string }): Progress {
  const stream = options.stream ?? process.stderr;
  const label = options.label ?? 'extract';
  if (options.quiet) return { tick: () => undefined, stop: () => undefined };

  if (stream.isTTY) {
    const bar = new SingleBar({
      stream,
      format: `${label} {bar} {percentage}% | {value}/{total} | {rate} items/s | ETA {eta_formatted}`,
      hideCursor: true,
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      etaBuffer: 20,
      clearOnComplete: false,
    });
    const started = Date.now();
    bar.start(total, 0, { rate: '0.0' });
    let done = 0;
    return {
      tick(count) {
        done += count;
        if (done > bar.getTotal()) bar.setTotal(done);
        bar.update(done, { rate: (done / Math.max(1e-3, (Date.now() - started) / 1000)).toFixed(1) });
      },
      stop: () => bar.stop(),
    };
  }

  const started = Date.now();
  let done = 0;
  let shown = 0;
  const line = () => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = done / Math.max(elapsed, 1e-3);
    const left = Math.max(total - done, 0) / rate;
    stream.write(
      `${label}: ${done}/${total} items (${Math.round((100 * done) / Math.max(total, 1))}%), ${rate.toFixed(1)} items/s, ETA ${seconds(left)}\n`,
    );
    shown = Date.now();
  };
  return {
    tick(count) {
      done += count;
      if (Date.now() - shown >= LINE_INTERVAL_MS) line();
    },
    stop(completed) {
      total = Math.max(total, done);
      if (completed) line();
    },
  };
}
