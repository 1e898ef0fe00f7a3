// Writes config/weir.schema.json from the TypeBox schema (npm run schema). A test fails when
// the committed file is stale.

import { writeFileSync } from 'node:fs'
import { renderSchema, SCHEMA_FILE } from './render-schema.ts'

writeFileSync(SCHEMA_FILE, renderSchema())
process.stdout.write(`wrote ${SCHEMA_FILE}\n`)
