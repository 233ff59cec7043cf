import { ScriptsRunnerError } from "./errors.ts";

/** One `name = value` line of postgresql.conf / postgresql.auto.conf / recovery.conf. */
export interface ConfigSetting {
  /** Lower-cased parameter name (PostgreSQL names are case-insensitive). */
  readonly name: string;
  /** The value after quote processing. */
  readonly value: string;
  /** Zero-based line index in the file. */
  readonly line: number;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*/;

/**
 * Parses a PostgreSQL configuration file with the server's rules (guc-file.l): one setting
 * per line, optional `=`, values quoted with `'` where `''` is a quote and backslash escapes
 * \b \f \n \r \t and octal, `#` comments. `file` only names the file in errors.
 */
export function parseConfigFile(text: string, file: string): ConfigSetting[] {
  const settings: ConfigSetting[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const where = `${file}:${index + 1}`;
    let rest = raw.replace(/^\s+/, "");
    if (rest === "" || rest.startsWith("#")) return;
    const name = NAME.exec(rest)?.[0];
    if (name === undefined) {
      throw new ScriptsRunnerError(
        "CONFIG_FILE_INVALID",
        `${where}: syntax error near "${rest.slice(0, 20)}"`,
      );
    }
    rest = rest.slice(name.length).replace(/^\s*(=\s*)?/, "");
    let value: string;
    if (rest.startsWith("'")) {
      const parsed = readQuoted(rest, where);
      value = parsed.value;
      rest = rest.slice(parsed.length);
    } else {
      const token = /^[^\s#']*/.exec(rest)?.[0] ?? "";
      if (token === "") {
        throw new ScriptsRunnerError("CONFIG_FILE_INVALID", `${where}: missing value for "${name}"`);
      }
      value = token;
      rest = rest.slice(token.length);
    }
    rest = rest.replace(/^\s+/, "");
    if (rest !== "" && !rest.startsWith("#")) {
      throw new ScriptsRunnerError("CONFIG_FILE_INVALID", `${where}: unexpected "${rest.slice(0, 20)}"`);
    }
    settings.push({ name: name.toLowerCase(), value, line: index });
  });
  return settings;
}

function readQuoted(text: string, where: string): { value: string; length: number } {
  let value = "";
  let i = 1;
  for (;;) {
    const c = text[i];
    if (c === undefined || c === "\r") {
      throw new ScriptsRunnerError("CONFIG_FILE_INVALID", `${where}: unterminated quoted string`);
    }
    if (c === "'") {
      if (text[i + 1] === "'") {
        value += "'";
        i += 2;
        continue;
      }
      return { value, length: i + 1 };
    }
    if (c === "\\") {
      const e = text[i + 1];
      if (e === undefined) {
        throw new ScriptsRunnerError("CONFIG_FILE_INVALID", `${where}: unterminated quoted string`);
      }
      const simple: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (simple[e] !== undefined) {
        value += simple[e];
        i += 2;
      } else if (/[0-7]/.test(e)) {
        const digits = /^[0-7]{1,3}/.exec(text.slice(i + 1))![0];
        value += String.fromCharCode(Number.parseInt(digits, 8) & 0xff);
        i += 1 + digits.length;
      } else {
        value += e;
        i += 2;
      }
      continue;
    }
    value += c;
    i++;
  }
}

/** Quotes a value the way ALTER SYSTEM writes it: `'` and `\` doubled. */
export function quoteConfigValue(value: string): string {
  if (/[\n\r]/.test(value)) {
    throw new ScriptsRunnerError("CONFIG_FILE_INVALID", "a configuration value cannot contain a line break");
  }
  return `'${value.replace(/'/g, "''").replace(/\\/g, "\\\\")}'`;
}

/** The effective value of `name` in the file (the last occurrence wins), or undefined. */
export function configValue(text: string, file: string, name: string): string | undefined {
  let found: string | undefined;
  for (const s of parseConfigFile(text, file)) if (s.name === name.toLowerCase()) found = s.value;
  return found;
}

/**
 * Sets `name` to `value`: the line of its last occurrence is rewritten in place (other lines
 * stay byte for byte), or `name = 'value'` is appended.
 */
export function setConfigValue(text: string, file: string, name: string, value: string): string {
  const settings = parseConfigFile(text, file).filter((s) => s.name === name.toLowerCase());
  const line = `${name} = ${quoteConfigValue(value)}`;
  const last = settings.at(-1);
  if (last === undefined) {
    return text === "" || text.endsWith("\n") ? `${text}${line}\n` : `${text}\n${line}\n`;
  }
  const lines = text.split("\n");
  lines[last.line] = line;
  return lines.join("\n");
}
