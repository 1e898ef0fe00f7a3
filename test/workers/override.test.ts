// test/integration/override.test.ts again with the data path in two worker processes (workers: 2):
// the smoke token and the override's secret and sources hold on every worker.
process.env.WEIR_TEST_WORKERS = '2'
await import('../integration/override.test.ts')
