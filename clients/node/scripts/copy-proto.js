// Copies the repository's proto/ contract into the package (proto/, not
// checked in here), so that the package carries the proto it was built from.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const file = "logbook/v1/event_store.proto";
const to = join(here, "..", "proto", file);
mkdirSync(dirname(to), { recursive: true });
copyFileSync(join(here, "..", "..", "..", "proto", file), to);
