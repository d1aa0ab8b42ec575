#!/usr/bin/env node
/** The `srs-hooks` command (see cli/main.ts). Nothing imports this file: importing it runs the command. */
import { main } from './cli/main.js'

// No top-level await: the production build makes this file a CommonJS bundle (build.mjs).
void main(process.argv.slice(2), {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  env: process.env
}).then((code) => { process.exitCode = code })
