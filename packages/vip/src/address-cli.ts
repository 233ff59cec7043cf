#!/usr/bin/env node
// Entry of the efm-address program; the logic lives in cli.ts so tests can call it.
import { main } from "./cli.ts";

main(process.argv.slice(2), (text) => process.stderr.write(text)).then((code) => {
  process.exitCode = code;
});
