#!/usr/bin/env node
// The `efm-agent` command of an installed @efm/agent package.
import { main } from "../main.ts";

await main(process.argv);
