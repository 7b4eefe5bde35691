// queueId() holds each ref's id on the ref: the id stays what prefix and name give, for copies and frozen refs too,
// and the ref looks the same to JSON, keys and equality.
import { describe, expect, it } from 'vitest';
import { queueId, type QueueRef } from '../src/domain/queue-ref.js';

describe('queueId', () => {
  it('is prefix NUL name, for the same ref again, a copy with another name, and a frozen ref', () => {
    const ref: QueueRef = { prefix: 'bull', name: 'email' };
    expect(queueId(ref)).toBe('bull\u0000email');
    expect(queueId(ref)).toBe('bull\u0000email');
    const copy = { ...ref, name: 'email-dlq' };
    expect(queueId(copy)).toBe('bull\u0000email-dlq');
    expect(queueId({ ...ref })).toBe('bull\u0000email');
    const frozen = Object.freeze({ prefix: 'p', name: 'n' });
    expect(queueId(frozen)).toBe('p\u0000n');
    expect(queueId(frozen)).toBe('p\u0000n');
  });

  it('leaves the ref as it was to JSON, its keys and equality', () => {
    const ref: QueueRef = { prefix: 'bull', name: 'email' };
    queueId(ref);
    expect(JSON.stringify(ref)).toBe('{"prefix":"bull","name":"email"}');
    expect(Object.keys(ref)).toEqual(['prefix', 'name']);
    expect(ref).toStrictEqual({ prefix: 'bull', name: 'email' });
  });
});
