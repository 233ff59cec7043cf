import { encrypt } from "@efm/password-crypto";

/** Where the dialogue reads and writes; injectable so tests drive it without a terminal. */
export interface Io {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** Exit status and text of one CLI command. */
export type Outcome = number;

/**
 * `efm encrypt <cluster>` (guide 3.2.1.2): ask twice, print the token and the line to paste.
 * `--from-env` reads EFMPASS and prints only the token, for scripts.
 */
export async function runEncrypt(cluster: string, opts: { fromEnv?: boolean }, io: Io): Promise<Outcome> {
  if (opts.fromEnv) {
    const pw = io.env.EFMPASS;
    if (pw === undefined || pw === "") {
      io.output.write("EFMPASS is not set: export the password in EFMPASS to use --from-env.\n");
      return 1;
    }
    io.output.write(`${encrypt(pw, cluster)}\n`);
    return 0;
  }
  io.output.write("This utility will generate an encrypted password for you to place\n");
  // The blank lines are the guide's (3.2.1.2): the dialogue reads as its example does.
  io.output.write(" in your EFM cluster property file.\n\n");
  const reader = io.input.isTTY ? new TerminalReader(io) : new LineReader(io.input, io.output);
  try {
    const first = await reader.read("Please enter the password and hit enter: ");
    if (first === null || first === "") {
      io.output.write("\nNo password was entered.\n");
      return 1;
    }
    const second = await reader.read("Please enter the password again to confirm: ");
    if (second !== first) {
      io.output.write("\nThe passwords do not match. No encrypted password was generated.\n");
      return 1;
    }
    const token = encrypt(first, cluster);
    io.output.write(`\nThe encrypted password is: ${token}\n\n`);
    io.output.write("Please paste this into your cluster properties file.\n");
    io.output.write(`    db.password.encrypted=${token}\n`);
    return 0;
  } finally {
    reader.close();
  }
}

interface PasswordReader {
  read(prompt: string): Promise<string | null>;
  close(): void;
}

/** Reads lines from a pipe or file: one password per line. */
class LineReader implements PasswordReader {
  private buffered = "";
  private ended = false;
  private waiting: (() => void) | null = null;
  private readonly onData = (chunk: Buffer | string) => {
    this.buffered += chunk.toString();
    this.waiting?.();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.waiting?.();
  };
  constructor(
    private readonly input: NodeJS.ReadableStream,
    private readonly output: NodeJS.WritableStream,
  ) {
    input.on("data", this.onData);
    input.on("end", this.onEnd);
  }
  async read(prompt: string): Promise<string | null> {
    this.output.write(`${prompt}\n`);
    for (;;) {
      const nl = this.buffered.indexOf("\n");
      if (nl >= 0) {
        const line = this.buffered.slice(0, nl).replace(/\r$/, "");
        this.buffered = this.buffered.slice(nl + 1);
        return line;
      }
      if (this.ended) {
        const rest = this.buffered;
        this.buffered = "";
        return rest === "" ? null : rest;
      }
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
      this.waiting = null;
    }
  }
  close(): void {
    this.input.off("data", this.onData);
    this.input.off("end", this.onEnd);
    (this.input as NodeJS.ReadStream).pause?.();
  }
}

/** Reads from a terminal in raw mode so the password is never echoed. */
class TerminalReader implements PasswordReader {
  constructor(private readonly io: Io) {}
  read(prompt: string): Promise<string | null> {
    const { input, output } = this.io;
    output.write(prompt);
    input.setRawMode?.(true);
    input.resume();
    return new Promise((resolve) => {
      let pw = "";
      const onData = (chunk: Buffer | string) => {
        for (const ch of chunk.toString("utf8")) {
          if (ch === "\r" || ch === "\n" || ch === "\u0004") {
            input.off("data", onData);
            input.setRawMode?.(false);
            input.pause();
            output.write("\n");
            resolve(pw);
            return;
          }
          if (ch === "\u0003") {
            input.setRawMode?.(false);
            output.write("\n");
            process.exit(130);
          }
          if (ch === "\u007f" || ch === "\b") pw = pw.slice(0, -1);
          else pw += ch;
        }
      };
      input.on("data", onData);
    });
  }
  close(): void {
    this.io.input.setRawMode?.(false);
  }
}
