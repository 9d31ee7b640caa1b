// migrate-mongo's configuration for the ops commands (`npm run migrate:up`, `migrate:down`,
// `migrate:status`, `migrate:create`). Plain ESM JavaScript, because migrate-mongo loads it
// without tsx; src/data/migrations.ts applies the same settings when code migrates.

const env = (name) => (process.env[name] === '' ? undefined : process.env[name]);
const uri = env('MONGODB_URI');

export default {
  mongodb: {
    // Read only by the commands that connect, so `migrate:create` works without a database.
    get url() {
      if (uri === undefined) {
        throw new Error(
          'MONGODB_URI is not set. Set it to the connection string of the replica set to migrate, ' +
            "e.g. MONGODB_URI='mongodb://db1:27017,db2:27017/?replicaSet=rs0' npm run migrate:status " +
            '(MONGODB_DB picks the database, default storekeeper).',
        );
      }
      return uri;
    },
    databaseName: env('MONGODB_DB') ?? 'storekeeper',
    options: {
      appName: 'storekeeper-migrate',
      writeConcern: { w: 'majority' },
      serverSelectionTimeoutMS: 10_000,
    },
  },
  migrationsDir: 'migrations',
  changelogCollectionName: 'migrations_changelog',
  lockCollectionName: 'migrations_lock',
  // A lock left by a crashed run expires after an hour; delete it by hand to retry sooner. The
  // runner in src/data/migrations.ts locks through the same collection with the same expiry.
  lockTtl: 3600,
  migrationFileExtension: '.js',
  useFileHash: false,
  moduleSystem: 'esm',
};
