// The audit entry a write of one document carries on that document (src/data/audit-stream.ts
// stores it in the audit trail once the write has committed). Part of every stored document's
// declaration, never of the resource the API shows: it names the write, not the document.

import { Type } from 'typebox';
import { DateTime, OBJECT_ID_PATTERN, ObjectIdString } from './types.ts';

export const AuditStampSchema = Type.Object(
  {
    id: ObjectIdString({ description: 'The id its audit entry is stored under.' }),
    action: Type.String({ minLength: 1, maxLength: 32, description: 'What the write did.' }),
    keyId: Type.String({ pattern: OBJECT_ID_PATTERN, description: 'Id of the API key that made the write.' }),
    keyName: Type.String({ minLength: 1, maxLength: 100, description: 'Name of that key at the time.' }),
    requestId: Type.String({ minLength: 1, maxLength: 128, description: 'The request that made the write.' }),
    at: DateTime({ description: 'When the write was made.' }),
  },
  { additionalProperties: false, description: 'The audit entry of the last write that carried one.' },
);
