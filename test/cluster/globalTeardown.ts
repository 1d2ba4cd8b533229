import { release } from './provider';

export default function globalTeardown(): void {
  release();
}
