import t from 'tap'
import { readFileSync } from 'node:fs'
import { renderSchema, SCHEMA_FILE } from '../../scripts/render-schema.ts'

t.test('config/weir.schema.json is generated from the current schema (run npm run schema)', async (t) => {
  t.equal(readFileSync(SCHEMA_FILE, 'utf8'), renderSchema())
})
