#!/usr/bin/env node
// The `efm` command of an installed package (`npm install -g @efm/cli`).
import { main } from "../main.ts";

await main(process.argv);
