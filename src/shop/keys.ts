// The API-key operations of the HTTP API: creating a key (its secret is in the answer and nowhere
// else) and revoking one, each one unit of work, so that both are in the audit trail. The ops
// command (src/cli/keys.ts) manages keys through the same store, outside any request.

import { AppError } from '../errors.ts';
import { UnknownScopeError } from '../domain/access.ts';
import type { ApiKeyInfo, ApiKeyStore, NewApiKey } from '../data/api-keys.ts';
import type { UnitOfWork, WriteContext } from '../data/unit-of-work.ts';

export class KeyOperations {
  constructor(
    private readonly work: UnitOfWork,
    private readonly keys: ApiKeyStore,
  ) {}

  /** A 400 pointing at what the store refused (an unknown scope, a past expiry...). */
  async create(input: NewApiKey, context: WriteContext): Promise<ApiKeyInfo & { key: string }> {
    try {
      return await this.work.run(context, (tx) => this.keys.create(input, tx));
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw AppError.validation([
        { in: 'body', pointer: error instanceof UnknownScopeError ? '/scopes' : '', message: error.message },
      ]);
    }
  }

  /** The key as revoked (revoking twice keeps the first time), or null when there is none. */
  async revoke(idOrPrefix: string, context: WriteContext): Promise<ApiKeyInfo | null> {
    const revocation = await this.work.run(context, (tx) => this.keys.revoke(idOrPrefix, tx));
    return revocation?.key ?? null;
  }
}
