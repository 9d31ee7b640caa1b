// The cast of the batch's insert path against the Mongoose schema it stands in for: for the same
// valid document both give the same stored values.

import { describe, expect, it } from 'vitest';
import mongoose from 'mongoose';
import { compileCaster } from '../../src/data/casting.ts';
import { toMongooseSchema } from '../../src/data/mongoose-schema.ts';
import { ENTITIES, Order } from '../../src/domain/entities/index.ts';

const { ObjectId } = mongoose.Types;

describe('compileCaster', () => {
  const order = {
    _id: new ObjectId(),
    ...Order.serverExample,
    customerId: '6650f0c2a1b2c3d4e5f60718',
    history: [
      { status: 'placed', at: '2026-11-25T09:30:00.000Z' },
      { status: 'paid', at: '2026-11-25T09:31:00.000Z', note: 'card' },
    ],
  };

  it('turns date-time strings into Dates and objectid strings into ObjectIds, nested ones included, without changing its input', () => {
    const input = structuredClone(order);
    const cast = compileCaster(Order.stored)(input) as Record<string, any>;
    expect(cast.customerId).toEqual(new ObjectId(order.customerId));
    expect(cast.history.map((entry: { at: unknown }) => entry.at)).toEqual([
      new Date('2026-11-25T09:30:00.000Z'),
      new Date('2026-11-25T09:31:00.000Z'),
    ]);
    expect(cast.history[1].note).toBe('card');
    expect(cast.lines).toEqual(order.lines);
    expect(input).toEqual(order);
  });

  it.each(ENTITIES.map((entity) => [entity.collection, entity] as const))(
    'casts %s example documents as their Mongoose model does',
    (collection, entity) => {
      const model = mongoose.model(`Cast_${collection}`, toMongooseSchema(entity.stored, { collection }));
      const now = new Date('2026-11-25T10:00:00.000Z');
      const example = {
        _id: new ObjectId(),
        ...entity.example,
        ...entity.serverExample,
        version: 1,
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
      };
      expect(compileCaster(entity.stored)(example)).toEqual(new model(example).toObject());
    },
  );
});
