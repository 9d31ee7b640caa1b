// Reads whose documents the driver hands over as BSON bytes, decoded here once.
//
// With command monitoring on (MONGODB_COMMAND_MONITORING), the driver builds a CommandSucceededEvent
// for every reply, and for a cursor reply (find, getMore, aggregate) that means decoding the whole
// reply into objects a second time, only for the event: the cursor decodes its documents again
// when they are read. Asked for `raw` documents, the driver leaves the batch as bytes in the
// event's copy too (its `fieldsAsRaw` of the batch field), so each document is decoded once, here,
// with the driver's own BSON library and its defaults for reads (promoted values, UTF-8 checked):
// what the driver would have returned, at the cost of one decoding instead of two. The event
// still carries the batch, as one buffer per document, so documents returned stay countable.

import mongoose from 'mongoose';

const { BSON } = mongoose.mongo;

/** The read option that keeps documents as bytes until decode(). */
export const RAW = { raw: true } as const;

/** A document read with RAW, as the driver would have returned it without. */
export function decode(bytes: unknown): mongoose.mongo.Document {
  return BSON.deserialize(bytes as Uint8Array);
}

/** Documents read with RAW, each decoded. */
export function decodeAll(batch: readonly unknown[]): mongoose.mongo.Document[] {
  const documents = new Array<mongoose.mongo.Document>(batch.length);
  for (let i = 0; i < batch.length; i++) documents[i] = decode(batch[i]);
  return documents;
}
