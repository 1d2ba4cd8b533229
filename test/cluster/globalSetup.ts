import { execFileSync } from 'node:child_process';
import { ROOT, provide } from './provider';

export default function globalSetup(): void {
  // The operator runs as its own process, from the compiled output.
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  provide();
}
