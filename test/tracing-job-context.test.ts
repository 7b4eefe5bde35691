// Trace trees with the explicit job context `queuelens worker` runs with (no AsyncLocalStorage); the suite is in
// helpers/trace-suite.ts.
import './helpers/in-memory-tracing-job.js';
import { defineTraceSuite } from './helpers/trace-suite.js';

defineTraceSuite('job');
