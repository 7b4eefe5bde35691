// Validates /api/queues responses against the published JSON schemas in docs/api/.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const load = (name: string) => JSON.parse(readFileSync(new URL(`../../docs/api/${name}`, import.meta.url), 'utf8')) as object;

const ajv = new Ajv2020({ allErrors: true, strict: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
ajv.addSchema(load('queues.schema.json'));
ajv.addSchema(load('queue.schema.json'));

/** Throws with every violation listed when `body` does not match the schema `queues.schema.json` or `queue.schema.json`. */
export function assertMatchesSchema(schema: 'queues.schema.json' | 'queue.schema.json', body: unknown): void {
  const validate = ajv.getSchema(schema)!;
  if (!validate(body)) throw new Error(`${schema}: ${ajv.errorsText(validate.errors, { separator: '\n' })}`);
}
