// Writes src/redis/lua-embedded.ts from src/redis/lua/ (npm run gen:lua); test/lua-embedded.test.ts fails on drift.
import { writeFileSync } from 'node:fs';
import { EMBEDDED_MODULE, renderLuaModule } from './embed-lua.js';

writeFileSync(EMBEDDED_MODULE, renderLuaModule());
process.stdout.write(`wrote ${EMBEDDED_MODULE.pathname}\n`);
