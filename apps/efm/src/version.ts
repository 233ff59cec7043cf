import { readFileSync } from "node:fs";

/**
 * The version of the installed package. Read from package.json at run time (it sits one folder
 * above both src/ and dist/), so the number `--version` prints is the one changesets wrote.
 */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
