#!/usr/bin/env node
// The agent ships with the command line, so one `npm install -g @efm/cli` gives a host both.
import { main } from "@efm/agent/main";

await main(process.argv);
