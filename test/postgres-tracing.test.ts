// Trace trees on BullMQ's PostgreSQL backend, with the explicit job context of `queuelens worker`: from the add to
// the completion (the suite is in helpers/trace-suite.ts, the same as on Redis).
import './helpers/in-memory-tracing-job.js';
import { defineTraceSuite } from './helpers/trace-suite.js';

defineTraceSuite('job', 'postgres');
