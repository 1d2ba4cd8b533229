// The two kinds of error the operator distinguishes.
import type { FailureReason } from './api/reasons';

/** A response of the Kubernetes API server other than 2xx. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    /** The Status's details.causes[].type, e.g. NamespaceTerminating. */
    readonly causes: readonly string[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.code === 404;
export const isAlreadyExists = (e: unknown): boolean => e instanceof ApiError && e.code === 409 && e.reason === 'AlreadyExists';
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.code === 409;
/** The API server refuses new objects in a namespace that is being deleted. */
export const isNamespaceTerminating = (e: unknown): boolean => e instanceof ApiError && e.causes.includes('NamespaceTerminating');
/** A refusal that asking again will not change: invalid, forbidden, or rejected by admission. */
export const isRefusal = (e: unknown): boolean => e instanceof ApiError && [400, 403, 422].includes(e.code);

/** The object the request returns, or undefined when the API server says 404. */
export async function ignoreNotFound<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/**
 * The migration cannot go on: it ends in phase Failed with this CamelCase reason and
 * message. Anything else a step throws is transient and retried with backoff.
 */
export class MigrationFailure extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
    this.name = 'MigrationFailure';
  }
}
