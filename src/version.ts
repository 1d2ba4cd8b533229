// The operator's version: package.json's, which the image ships beside dist/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function read(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export const VERSION = read();
