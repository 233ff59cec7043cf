import { ScriptsRunnerError } from "./errors.ts";

/**
 * The line protocol between the agent and the long-lived privileged helper, on the helper's
 * stdin and stdout. One request per line: `<id> <verb> <arg>...`, tokens of printable ASCII
 * separated by single spaces (nothing the request grammar accepts needs a blank or a quote,
 * so there is no quoting to get wrong). One answer per line: a JSON object carrying the same
 * `id`. The first line the helper writes says whether it is ready (`{"ready":true,...}`) or why
 * it refused to start (`{"ready":false,"code","message"}`).
 */

/** Longest request line accepted, newline excluded; a longer one is answered with an error. */
export const MAX_REQUEST_BYTES = 4096;

/** Longest answer line the agent reads; a report is a few KiB. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/** A request line taken apart; the tokens still have to pass the request grammar. */
export interface RequestLine {
  readonly id: string;
  readonly tokens: string[];
}

function bad(message: string): ScriptsRunnerError {
  return new ScriptsRunnerError("HELPER_USAGE", message);
}

/**
 * Splits one request line (without its newline) into id and tokens. Rejects, naming what is
 * wrong and where (the byte position), an empty line, a bad id, a control or non-ASCII byte,
 * a double or edge blank, or no verb.
 */
export function parseRequestLine(line: string): RequestLine {
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) {
    throw bad(`request line of ${Buffer.byteLength(line)} bytes is longer than ${MAX_REQUEST_BYTES}`);
  }
  const at = line.search(/[^\x21-\x7e ]/);
  if (at !== -1) {
    throw bad(
      `request line: byte ${at + 1} is ${JSON.stringify(line[at])}; only printable ASCII and single blanks are allowed`,
    );
  }
  if (line === "") throw bad("request line is empty; expected <id> <verb> <arg>...");
  const parts = line.split(" ");
  const blank = parts.indexOf("");
  if (blank !== -1) {
    const column = parts.slice(0, blank).reduce((n, p) => n + p.length + 1, 0) + 1;
    throw bad(`request line: unexpected blank at column ${column}; tokens are separated by one blank`);
  }
  const [id, ...tokens] = parts as [string, ...string[]];
  if (!/^[0-9]{1,12}$/.test(id)) {
    throw bad(`request id ${JSON.stringify(id.slice(0, 40))} is not a number of 1 to 12 digits`);
  }
  if (tokens.length === 0) throw bad(`request ${id} names no verb`);
  return { id, tokens };
}

/** The id of a request line when it has a well-formed one, to answer even a bad request by id. */
export function requestIdOf(line: string): string | null {
  const m = /^([0-9]{1,12})(?: |$)/.exec(line);
  return m ? m[1]! : null;
}

/** The line for `id` and `tokens`, checked as the helper will check it. */
export function formatRequestLine(id: string, tokens: readonly string[]): string {
  const line = [id, ...tokens].join(" ");
  parseRequestLine(line);
  return line;
}

/** A line longer than allowed: how many bytes were seen, and its first bytes (for its id). */
export interface TooLong {
  readonly tooLong: number;
  readonly head: string;
}

/**
 * Cuts a byte stream into lines of at most `maxBytes` (newline excluded). A longer line is
 * reported once as a {@link TooLong} and the rest of it, up to its newline, is
 * dropped, so a runaway writer costs bounded memory and never desynchronises the lines after
 * it. A trailing partial line is returned by `end()`.
 */
export class LineSplitter {
  private chunks: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(private readonly maxBytes: number) {}

  /** The complete lines in `chunk`, in order. */
  push(chunk: Buffer): Array<string | TooLong> {
    const out: Array<string | TooLong> = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const piece = chunk.subarray(start, nl === -1 ? chunk.length : nl);
      if (!this.skipping) {
        if (this.size + piece.length > this.maxBytes) {
          // Reported once; the rest of this line is dropped up to its newline.
          const head = Buffer.concat([...this.chunks, piece])
            .subarray(0, 32)
            .toString("latin1");
          out.push({ tooLong: this.size + piece.length, head });
          this.chunks = [];
          this.size = 0;
          this.skipping = true;
        } else if (piece.length > 0) {
          this.chunks.push(piece);
          this.size += piece.length;
        }
      }
      if (nl === -1) break;
      if (this.skipping) this.skipping = false;
      else out.push(this.take());
      start = nl + 1;
    }
    return out;
  }

  /** What is left after the last newline (a writer that closed mid-line), or null. */
  end(): string | null {
    if (this.skipping) return null;
    return this.size > 0 ? this.take() : null;
  }

  private take(): string {
    const line = Buffer.concat(this.chunks, this.size).toString("utf8");
    this.chunks = [];
    this.size = 0;
    return line;
  }
}
