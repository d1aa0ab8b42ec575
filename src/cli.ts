#!/usr/bin/env node
/** The `srs-hooks` command (see cli/main.ts). Nothing imports this file: importing it runs the command. */
import { main } from './cli/main.js'

process.exitCode = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  env: process.env
})
