// The one classification of MongoDB errors, on the shapes the driver really produces: labelled,
// unlabelled, by server code, and wrapped in a MongoBulkWriteError (whose network errors were 500s).

import { describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { failureKind } from '../../src/data/failures.ts';

const { mongo } = mongoose;

const serverError = (code: number, labels: string[] = []) =>
  new mongo.MongoServerError({ message: `code ${code}`, code, errorLabels: labels });
const bulkWrapping = (inner: Error) => new mongo.MongoBulkWriteError(inner, {} as never);

describe('failureKind', () => {
  it('says transient for an error labelled TransientTransactionError, however it arrives', () => {
    expect(failureKind(serverError(112, ['TransientTransactionError']))).toBe('transient');
    const network = new mongo.MongoNetworkError('connection reset');
    network.addErrorLabel('TransientTransactionError');
    expect(failureKind(bulkWrapping(network))).toBe('transient');
  });

  it('says unavailable for network errors, cleared pools, server selection and client timeouts, labelled or not', () => {
    expect(failureKind(new mongo.MongoNetworkError('connection 3 to 127.0.0.1:27017 closed'))).toBe('unavailable');
    expect(failureKind(new mongo.MongoNetworkTimeoutError('timed out'))).toBe('unavailable');
    expect(failureKind(new mongo.MongoOperationTimeoutError('Timed out during socket read'))).toBe('unavailable');
    expect(
      failureKind(
        new mongo.MongoServerSelectionError('Server selection timed out', {
          type: 'Unknown',
          servers: new Map(),
        } as never),
      ),
    ).toBe('unavailable');
    // The driver does not export its pool errors: a cleared pool's is a MongoNetworkError, the wait queue's is known by name.
    class WaitQueueTimeout extends mongo.MongoDriverError {
      override get name() {
        return 'MongoWaitQueueTimeoutError';
      }
    }
    expect(failureKind(new WaitQueueTimeout('Timed out while checking out a connection from connection pool'))).toBe(
      'unavailable',
    );
  });

  it('says unavailable for a network error wrapped in a MongoBulkWriteError (an insertMany that lost its connection)', () => {
    expect(failureKind(bulkWrapping(new mongo.MongoNetworkError('read ECONNRESET')))).toBe('unavailable');
  });

  it('says unavailable for the server codes of a stepdown, a shutdown and an interruption', () => {
    for (const code of [91, 189, 10107, 11600, 11602, 13435, 13436])
      expect(failureKind(serverError(code)), `code ${code}`).toBe('unavailable');
  });

  it("says query-timeout for MaxTimeMSExpired, and other for what is the request's doing or a bug", () => {
    expect(failureKind(serverError(50))).toBe('query-timeout');
    expect(failureKind(serverError(11000))).toBe('other');
    expect(failureKind(serverError(121))).toBe('other');
    expect(failureKind(new TypeError('x is undefined'))).toBe('other');
    expect(failureKind('not an error')).toBe('other');
  });
});
