// test/integration/request-targets.test.ts again with the data path in two worker processes
// (workers: 2): maxHeaders travels in the snapshot, and each worker's server keeps enough fields.
process.env.WEIR_TEST_WORKERS = '2'
await import('../integration/request-targets.test.ts')
