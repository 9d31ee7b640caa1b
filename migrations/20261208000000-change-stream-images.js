// The change feed (src/data/change-feed.ts) hands its clients each changed document as the change
// left it and as it was before: MongoDB keeps those images only for collections that ask for
// them (changeStreamPreAndPostImages), in config.system.preimages, expired with the oplog.
// Safe to run again. `down` stops keeping them (what is kept expires with the oplog).

const COLLECTIONS = ['products', 'customers', 'stock', 'orders'];

/** @param db {import('mongodb').Db} */
async function keepImages(db, enabled) {
  for (const name of COLLECTIONS) {
    await db.command({ collMod: name, changeStreamPreAndPostImages: { enabled } });
  }
}

/** @param db {import('mongodb').Db} */
export const up = (db) => keepImages(db, true);

/** @param db {import('mongodb').Db} */
export const down = (db) => keepImages(db, false);
