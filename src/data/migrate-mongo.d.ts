// Types for the part of migrate-mongo's programmatic API that src/data/migrations.ts uses (the
// package ships none). Db and MongoClient are Mongoose's driver: that is the one the app holds.

declare module 'migrate-mongo' {
  import type { mongo } from 'mongoose';

  export interface MigrateMongoConfig {
    mongodb?: { url?: string; databaseName?: string; options?: mongo.MongoClientOptions };
    migrationsDir: string;
    changelogCollectionName: string;
    lockCollectionName?: string;
    /** Seconds before a lock left by a crashed run expires; 0 disables locking. */
    lockTtl?: number;
    migrationFileExtension?: string;
    useFileHash?: boolean;
    moduleSystem?: 'commonjs' | 'esm';
  }

  export interface MigrationStatusItem {
    fileName: string;
    fileHash?: string;
    /** The changelog's date as an ISO string (`Date#toJSON`), or PENDING. */
    appliedAt: string;
    migrationBlock?: number;
  }

  export const config: {
    /** Replaces the config file for every later call in this process. */
    set(content: MigrateMongoConfig): void;
    read(): Promise<MigrateMongoConfig>;
  };
  /** Applies pending migrations in file-name order; returns the file names applied. */
  export function up(db: mongo.Db, client: mongo.MongoClient): Promise<string[]>;
  /** Reverts the last applied migration; returns the file names reverted. */
  export function down(db: mongo.Db, client: mongo.MongoClient): Promise<string[]>;
  export function status(db: mongo.Db): Promise<MigrationStatusItem[]>;
  export function create(description: string): Promise<string>;
}
