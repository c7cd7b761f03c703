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
