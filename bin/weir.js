#!/usr/bin/env node
// In a checkout, run the TypeScript source (Node >= 24 strips types); in an installed package
// or the container image, where only dist/ ships, run the compiled CLI.
import { existsSync } from 'node:fs'

const source = new URL('../src/cli/main.ts', import.meta.url)
await import(existsSync(source) ? source.href : new URL('../dist/cli/main.js', import.meta.url).href)
