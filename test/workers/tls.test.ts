// test/integration/tls.test.ts again with the data path in two worker processes (workers: 2).
process.env.WEIR_TEST_WORKERS = '2'
await import('../integration/tls.test.ts')
