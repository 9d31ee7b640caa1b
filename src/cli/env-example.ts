// `npm run env:example`: writes .env.example from the configuration declaration.

import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { renderEnvExample } from '../config.ts';

const file = fileURLToPath(new URL('../../.env.example', import.meta.url));
await writeFile(file, renderEnvExample());
process.stdout.write(`wrote ${file}\n`);
