#!/usr/bin/env node
// Build a JavaScript projection into a WebAssembly component of the `projector` world.
//
//   node guest-sdk/js/build.mjs <projection.js> <out.wasm> [--wit <dir>]
//
// <projection.js> is an ES module whose default export is a `defineProjection({...})`.
// This writes a small entry module that wraps it with `component.js` and exports it as the
// `projection` interface, then runs componentize-js (StarlingMonkey) on it. The entry
// imports the projection and the SDK by relative path, and componentize-js only sees files
// under the working directory, so the build runs from the nearest folder that holds the
// projection, the SDK and the entry. All WASI features of the engine are disabled: the
// component imports nothing but `prism:projection/{view,logging}`.

import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';

const sdkDir = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const witFlag = args.indexOf('--wit');
let witPath = resolve(sdkDir, '..', '..', 'wit');
if (witFlag >= 0) {
  witPath = resolve(args[witFlag + 1]);
  args.splice(witFlag, 2);
}
if (args.length !== 2) {
  console.error('usage: node build.mjs <projection.js> <out.wasm> [--wit <dir>]');
  process.exit(2);
}
const source = resolve(args[0]);
const out = resolve(args[1]);
await stat(source);

const name = basename(out).replace(/\.wasm$/, '');
const workDir = join(dirname(out), `.${name}.js-entry`);

function commonAncestor(paths) {
  const split = paths.map((p) => p.split(sep));
  const common = [];
  for (let i = 0; split.every((parts) => i < parts.length && parts[i] === split[0][i]); i++) {
    common.push(split[0][i]);
  }
  return common.join(sep) || sep;
}

function importPath(from, to) {
  const rel = relative(from, to).split(sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

const started = Date.now();
await mkdir(workDir, { recursive: true });
const entry = join(workDir, 'entry.js');
await writeFile(
  entry,
  [
    `import definition from ${JSON.stringify(importPath(workDir, source))};`,
    `import { exportProjection } from ${JSON.stringify(importPath(workDir, join(sdkDir, 'src', 'component.js')))};`,
    `export const projection = exportProjection(definition);`,
    '',
  ].join('\n'),
);

const workspace = commonAncestor([workDir, dirname(source), sdkDir]);
if (workspace === sep) {
  // componentize-js maps the working directory into the engine and cannot map `/` itself.
  console.error('build.mjs: the projection, the SDK and the output must share a folder other than /');
  process.exit(2);
}
const previousCwd = process.cwd();
process.chdir(workspace);
try {
  const { component } = await componentize({
    sourcePath: entry,
    witPath,
    worldName: 'projector',
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  });
  await writeFile(out, component);
  console.log(`built ${relative(previousCwd, out)} (${component.length} bytes) in ${Date.now() - started} ms`);
} finally {
  process.chdir(previousCwd);
  await rm(workDir, { recursive: true, force: true });
}
