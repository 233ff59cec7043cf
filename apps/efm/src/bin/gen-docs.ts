// Rewrites apps/efm/man/* and apps/efm/completion/* from the commander definitions.
import { fileURLToPath } from "node:url";
import { writeDocs } from "../gen-docs.ts";

writeDocs(fileURLToPath(new URL("../..", import.meta.url)));
