// The service's name and version as package.json states them: what the OpenAPI document and /docs
// show, and what a backup's manifest records. A module of its own so that the backup commands read
// them without loading the app. The same relative path from src/ and from the built dist/.

import { readFileSync } from 'node:fs';

interface PackageJson {
  name: string;
  version: string;
}

const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as PackageJson;

export const SERVICE: Readonly<PackageJson> = { name: packageJson.name, version: packageJson.version };
