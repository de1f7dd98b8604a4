#!/usr/bin/env node
// Build a JavaScript projection into a WebAssembly component of the `projector` world.
//
//   node build.mjs <projection.js> <out.wasm> [--wit <dir>] [--quiet]
//
// <projection.js> is an ES module whose default export is a `defineProjection({...})`. It may
// import other modules by relative path, and the SDK as `@prism/projection` (as installed by
// `prism new`) or by a relative path into this folder's `src/`.
//
// componentize-js (StarlingMonkey) resolves only relative imports, and only of files below its
// working directory. So the build parses each module (acorn: a syntax error is reported at
// once, with its line and column) and stages a copy first, in a folder next to <out.wasm>: every
// module the projection reaches, with each SDK import pointed at one staged copy of the SDK
// (the projection and the component glue must share its module state: the log sink and the
// error classes), and an entry module that wraps the default export with `component.js` and
// exports it as the `projection` interface. componentize-js then runs in that folder. All WASI
// features of the engine are disabled: the component imports nothing but the
// interfaces of the `prism:projection` world.

import { realpathSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';
import { parse } from 'acorn';

const sdkDir = dirname(fileURLToPath(import.meta.url));
const sdkSrc = join(sdkDir, 'src');
const sdkPackage = JSON.parse(await readFile(join(sdkDir, 'package.json'), 'utf8'));

const args = process.argv.slice(2);
const quiet = args.includes('--quiet');
if (quiet) args.splice(args.indexOf('--quiet'), 1);
const witFlag = args.indexOf('--wit');
let witPath = resolve(sdkDir, '..', '..', 'wit');
if (witFlag >= 0) {
  witPath = resolve(args[witFlag + 1]);
  args.splice(witFlag, 2);
}
if (args.length !== 2) {
  console.error('usage: node build.mjs <projection.js> <out.wasm> [--wit <dir>] [--quiet]');
  process.exit(2);
}

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

function realpath(path, importedFrom) {
  try {
    return realpathSync(path);
  } catch {
    return fail(importedFrom ? `${importedFrom} imports ${path}, which does not exist` : `${path} does not exist`);
  }
}

const source = realpath(resolve(args[0]));
const out = resolve(args[1]);
const name = basename(out).replace(/\.wasm$/, '');
const stage = join(dirname(out), `.${name}.js-build`);

/** The file `specifier` names, imported from `file`; null for what componentize-js resolves (WIT imports). */
function resolveImport(specifier, file) {
  if (specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/')) {
    return realpath(resolve(dirname(file), specifier), file);
  }
  if (specifier === sdkPackage.name || specifier.startsWith(`${sdkPackage.name}/`)) {
    const target = sdkPackage.exports[`.${specifier.slice(sdkPackage.name.length)}`];
    if (typeof target !== 'string') fail(`${file} imports ${specifier}, which the SDK does not export`);
    return realpath(join(sdkDir, target), file);
  }
  // `prism:projection/view@0.5.0` and the like: interfaces of the WIT world.
  if (specifier.includes(':')) return null;
  return fail(
    `${file} imports ${specifier}: a projection may import relative files and ${sdkPackage.name} ` +
      '(componentize-js resolves nothing else; bundle other packages into a file first)',
  );
}

const inSdk = (file) => file.startsWith(sdkSrc + sep);

/** Every node of an ESTree syntax tree. */
function* nodes(node) {
  if (Array.isArray(node)) {
    for (const child of node) yield* nodes(child);
  } else if (node !== null && typeof node === 'object') {
    if (typeof node.type === 'string') yield node;
    for (const [key, child] of Object.entries(node)) if (key !== 'loc') yield* nodes(child);
  }
}

// Every module the entry reaches, with its imports: file -> {text, imports: [{start, end, target}]},
// `start` and `end` spanning the specifier's string literal, quotes included.
const modules = new Map();
const pending = [source, join(sdkSrc, 'component.js')];
while (pending.length > 0) {
  const file = pending.pop();
  if (modules.has(file)) continue;
  const text = await readFile(file, 'utf8');
  let tree;
  try {
    tree = parse(text, { ecmaVersion: 'latest', sourceType: 'module', locations: true });
  } catch (e) {
    const where = e.loc ? `:${e.loc.line}:${e.loc.column + 1}` : '';
    fail(`${relative(process.cwd(), file)}${where}: ${e.message.replace(/ \(\d+:\d+\)$/, '')}`);
  }
  const imports = [];
  for (const node of nodes(tree.body)) {
    const literal =
      node.type === 'ImportDeclaration' ||
      node.type === 'ExportAllDeclaration' ||
      node.type === 'ExportNamedDeclaration' ||
      node.type === 'ImportExpression'
        ? node.source
        : null;
    // A dynamic import of anything but a string literal is left to the engine.
    if (literal?.type !== 'Literal' || typeof literal.value !== 'string') continue;
    const target = resolveImport(literal.value, file);
    if (target === null) continue;
    imports.push({ start: literal.start, end: literal.end, target });
    pending.push(target);
  }
  modules.set(file, { text, imports });
}

// Where each module goes: the SDK under sdk/, the projection's own files under app/, laid out
// as they are relative to the folder that holds them all.
function commonAncestor(paths) {
  const split = paths.map((p) => p.split(sep));
  const common = [];
  for (let i = 0; split.every((parts) => i < parts.length - 1 && parts[i] === split[0][i]); i++) {
    common.push(split[0][i]);
  }
  return common.join(sep) || sep;
}
const appFiles = [...modules.keys()].filter((file) => !inSdk(file));
const appRoot = commonAncestor(appFiles);
const staged = new Map(
  [...modules.keys()].map((file) => [
    file,
    inSdk(file) ? join(stage, 'sdk', relative(sdkSrc, file)) : join(stage, 'app', relative(appRoot, file)),
  ]),
);

function importPath(fromFile, toFile) {
  const rel = relative(dirname(fromFile), toFile).split(sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

const started = Date.now();
await rm(stage, { recursive: true, force: true });
for (const [file, { text, imports }] of modules) {
  let rewritten = '';
  let at = 0;
  for (const { start, end, target } of imports.sort((a, b) => a.start - b.start)) {
    rewritten += text.slice(at, start) + JSON.stringify(importPath(staged.get(file), staged.get(target)));
    at = end;
  }
  rewritten += text.slice(at);
  await mkdir(dirname(staged.get(file)), { recursive: true });
  await writeFile(staged.get(file), rewritten);
}
const entry = join(stage, 'entry.js');
await writeFile(
  entry,
  [
    `import definition from ${JSON.stringify(importPath(entry, staged.get(source)))};`,
    `import { exportProjection } from ${JSON.stringify(importPath(entry, staged.get(join(sdkSrc, 'component.js'))))};`,
    'export const projection = exportProjection(definition);',
    '',
  ].join('\n'),
);

const previousCwd = process.cwd();
process.chdir(stage);
try {
  const { component } = await componentize({
    sourcePath: entry,
    witPath,
    worldName: 'projector',
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  });
  await writeFile(out, component);
  if (!quiet) console.log(`built ${relative(previousCwd, out)} (${component.length} bytes) in ${Date.now() - started} ms`);
} finally {
  process.chdir(previousCwd);
  await rm(stage, { recursive: true, force: true });
}
