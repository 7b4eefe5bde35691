// Owns the error a command ends with when PostgreSQL cannot be reached. On its own, free of BullMQ and pg, so the
// CLI can recognise it without loading either (a Redis sidecar never does).
export class PostgresUnreachableError extends Error {
  readonly code = 'E_POSTGRES_UNREACHABLE';
  readonly exitCode = 1;
}
