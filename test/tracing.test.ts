// Trace trees with AsyncLocalStorage (QUEUELENS_TRACE_CONTEXT=async); the suite is in helpers/trace-suite.ts.
import './helpers/in-memory-tracing.js';
import { defineTraceSuite } from './helpers/trace-suite.js';

defineTraceSuite('async');
