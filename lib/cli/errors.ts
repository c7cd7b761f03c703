/** Errors the command line reports as one line, without a stack. */
export class CliError extends Error {
  /** The process exit code: 1 for failures, 2 for bad usage. */
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** A value of an option that is not valid: exit 2, `--option value: reason`. */
export class UsageError extends CliError {
  /** Why, without the option: what commander shows after its own words. */
  readonly reason: string;

  constructor(option: string, value: string, reason: string) {
    super(`${option} ${value}: ${reason}`, 2);
    this.name = 'UsageError';
    this.reason = reason;
  }
}

/** A message on one line: its lines trimmed and joined, so that stderr gets one line per error. */
export function oneLine(message: string): string {
  return message
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' ');
}

/** The codes of {@link PartsError}: extraction to a folder of parts, merge, and the job queue. */
export const PARTS_ERROR_CODES = [
  /** The folder holds something else: files without a manifest, or an extraction to continue with --resume. */
  'FOLDER_IN_USE',
  /** manifest.json is not one libtorch-features wrote (edited by hand, truncated, another program's). */
  'MANIFEST_INVALID',
  /** The folder was made with another model, layer, options or inputs. */
  'MANIFEST_MISMATCH',
  /** A part that merge needs is not there (never written, or not finished). */
  'PART_MISSING',
  /** A part's files are there but do not hold what the manifest says (truncated, edited, swapped). */
  'PART_DAMAGED',
  /** Redis could not be reached, or refused a command. */
  'REDIS_UNAVAILABLE',
  /** A job on the queue that libtorch-features did not add (its data is not a part of a folder). */
  'JOB_INVALID',
] as const;

export type PartsErrorCode = (typeof PARTS_ERROR_CODES)[number];

/** A CliError with a stable `code`, for the folder of parts, merge and the queue. */
export class PartsError extends CliError {
  readonly code: PartsErrorCode;

  constructor(code: PartsErrorCode, message: string) {
    super(message);
    this.name = 'PartsError';
    this.code = code;
  }
}
