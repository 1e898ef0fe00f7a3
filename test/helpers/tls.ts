// A throwaway self-signed certificate for 127.0.0.1/localhost, made with openssl per test run.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCert { certFile: string; keyFile: string; cert: Buffer; key: Buffer }

export function makeCert (commonName = 'localhost'): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'weir-tls-'))
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${commonName}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) }
}
