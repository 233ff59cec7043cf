/** Every problem kind the parser reports, with a stable code for tooling. */
export const PROBLEM_CODES = [
  "UNREADABLE_FILE",
  "SYNTAX",
  "QUOTED_VALUE",
  "MISSING_PROPERTY",
  "INVALID_VALUE",
  "UNKNOWN_PROPERTY",
  "REPLACED_PROPERTY",
  "DUPLICATE_PROPERTY",
  "INCONSISTENT_PROPERTIES",
  "IGNORED_PROPERTY",
  "BAD_NODE_ENTRY",
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

/** One problem found in a file; `line` is 1-based, absent for whole-file problems. */
export interface Problem {
  code: ProblemCode;
  file: string;
  line?: number;
  property?: string;
  value?: string;
  message: string;
}

/** Render a problem the way an operator reads it: `file:line: property=value: message`. */
export function formatProblem(p: Problem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  const what =
    p.property === undefined ? "" : p.value === undefined ? `${p.property}: ` : `${p.property}=${p.value}: `;
  return `${where}: ${what}${p.message}`;
}

/** Thrown only for input that cannot be read at all (missing file, permissions). */
export class PropertiesError extends Error {
  readonly code: ProblemCode;
  readonly file: string;
  constructor(code: ProblemCode, file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = "PropertiesError";
    this.code = code;
    this.file = file;
  }
}
