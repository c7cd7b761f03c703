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

/** A message on one line: its lines trimmed and joined, so that stderr gets one line per error. */
export function oneLine(message: string): string {
  return message
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' ');
}
