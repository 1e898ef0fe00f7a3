// test/integration/tracing.test.ts again with the data path in two worker processes (workers: 2):
// trace settings reach the workers, and their access-log lines come through their own logger.
process.env.WEIR_TEST_WORKERS = '2'
await import('../integration/tracing.test.ts')
