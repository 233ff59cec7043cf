import type { Problem } from "./errors.ts";

/** One key/value pair of a `.properties` file, with the line where its logical line starts. */
export interface PropertyEntry {
  key: string;
  value: string;
  line: number;
}

/**
 * Parse `java.util.Properties` text syntax: `#`/`!` comments, `=`/`:`/whitespace separators,
 * backslash continuations and escapes. Unlike Java, surrounding whitespace of values is trimmed
 * (EFM does the same). Syntax problems are returned, never thrown.
 */
export function parseJavaProperties(
  text: string,
  file: string,
): { entries: PropertyEntry[]; problems: Problem[] } {
  const entries: PropertyEntry[] = [];
  const problems: Problem[] = [];
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const startLine = i + 1;
    let raw = (lines[i] ?? "").replace(/^[ \t\f]+/, "");
    if (raw === "" || raw.startsWith("#") || raw.startsWith("!")) continue;
    // Join continuation lines: a line ending in an odd number of backslashes continues.
    while (endsWithOddBackslashes(raw) && i + 1 < lines.length) {
      i++;
      raw = raw.slice(0, -1) + (lines[i] ?? "").replace(/^[ \t\f]+/, "");
    }
    if (endsWithOddBackslashes(raw)) raw = raw.slice(0, -1);
    const { key, rest } = splitKey(raw);
    const decodedKey = decodeEscapes(key, file, startLine, problems);
    const decodedValue = decodeEscapes(rest, file, startLine, problems);
    if (decodedKey === null || decodedValue === null) continue;
    entries.push({ key: decodedKey, value: decodedValue.trim(), line: startLine });
  }
  return { entries, problems };
}

function endsWithOddBackslashes(s: string): boolean {
  let n = 0;
  for (let i = s.length - 1; i >= 0 && s[i] === "\\"; i--) n++;
  return n % 2 === 1;
}

function splitKey(line: string): { key: string; rest: string } {
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "\\") {
      i += 2;
      continue;
    }
    if (c === "=" || c === ":" || c === " " || c === "\t" || c === "\f") break;
    i++;
  }
  const key = line.slice(0, i);
  let j = i;
  while (j < line.length && (line[j] === " " || line[j] === "\t" || line[j] === "\f")) j++;
  if (j < line.length && (line[j] === "=" || line[j] === ":")) j++;
  while (j < line.length && (line[j] === " " || line[j] === "\t" || line[j] === "\f")) j++;
  return { key, rest: line.slice(j) };
}

const SIMPLE_ESCAPES: Record<string, string> = { t: "\t", n: "\n", r: "\r", f: "\f" };

function decodeEscapes(s: string, file: string, line: number, problems: Problem[]): string | null {
  if (!s.includes("\\")) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = s[i + 1];
    if (next === undefined) break;
    if (next === "u") {
      const hex = s.slice(i + 2, i + 6);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
        problems.push({
          code: "SYNTAX",
          file,
          line,
          message: `malformed \\uXXXX escape "\\u${hex}": expected four hexadecimal digits`,
        });
        return null;
      }
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 5;
      continue;
    }
    out += SIMPLE_ESCAPES[next] ?? next;
    i++;
  }
  return out;
}

/** Escape a key or value so `parseJavaProperties` reads back exactly `s`. */
export function escapeProperty(s: string, isKey: boolean): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    const code = c.charCodeAt(0);
    if (c === "\\") out += "\\\\";
    else if (c === "\t") out += "\\t";
    else if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\f") out += "\\f";
    else if (isKey && (c === "=" || c === ":" || c === " " || c === "#" || c === "!")) out += `\\${c}`;
    else if (!isKey && i === 0 && (c === " " || c === "#" || c === "!")) out += `\\${c}`;
    else if (code < 0x20 || code > 0x7e) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += c;
  }
  return out;
}
