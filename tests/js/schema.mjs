// Generates capnp-es's JavaScript for api/thatch.capnp into a build
// directory and imports it, so that no generated code is committed and the
// client always speaks the schema in the tree.
//
// `capnp compile -o-` writes the CodeGeneratorRequest that capnp-es's compiler
// turns into JavaScript (it type-checks through TypeScript, hence the pinned
// `typescript` dependency). The output imports the bare specifier "capnp-es",
// which Node resolves only from a directory below tests/js/node_modules; it is
// rewritten to the absolute URL of the very module this client imports, so
// that both share one capnp-es (its Registry and classes are per module
// instance).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const capnpEsUrl = import.meta.resolve("capnp-es");
const capnpEsPackage = fileURLToPath(new URL("../package.json", capnpEsUrl));

function cacheKey(schemaPath) {
  // The schema, this generator, the compiler's version and where the runtime
  // lives: a change to any of them makes the generated file stale.
  return createHash("sha256")
    .update(readFileSync(schemaPath))
    .update("\0")
    .update(readFileSync(fileURLToPath(import.meta.url)))
    .update("\0")
    .update(JSON.parse(readFileSync(capnpEsPackage, "utf8")).version)
    .update("\0")
    .update(capnpEsUrl)
    .digest("hex");
}

async function generate(schemaPath) {
  let request;
  try {
    // Run from the schema's directory so that its display name, and so the
    // generated file's name, is "thatch.capnp"; /capnp/c++.capnp comes from
    // the standard import path (/usr/include).
    request = execFileSync("capnp", ["compile", "-o-", basename(schemaPath)], {
      cwd: dirname(schemaPath),
      maxBuffer: 64 * 1024 * 1024,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    const detail = err.stderr?.toString().trim() || err.message;
    throw new Error(`capnp compile ${schemaPath} failed: ${detail}`);
  }
  // Loaded only here: TypeScript takes about a second to import.
  const { compileAll } = await import("capnp-es/compiler");
  const typings = fileURLToPath(capnpEsUrl).replace(/\.mjs$/, ".d.mts");
  const { files } = await compileAll(request, {
    js: true,
    // The type check runs against in-memory files named relative to the
    // current directory; point it at capnp-es's typings from anywhere.
    tsconfig: { paths: { "capnp-es": [typings] } },
  });
  const js = [...files].filter(([name]) => name.endsWith(".js"));
  if (js.length !== 1) {
    throw new Error(`capnp-es generated ${js.length} JavaScript files, expected 1`);
  }
  const source = js[0][1];
  const bare = 'from "capnp-es";';
  const count = source.split(bare).length - 1;
  if (count !== 1) {
    throw new Error(`generated code imports "capnp-es" ${count} times, expected once`);
  }
  return source.replace(bare, `from ${JSON.stringify(capnpEsUrl)};`);
}

// Imports the generated module for `schemaPath`, generating it into
// `outDir` first unless an up-to-date one is there.
export async function loadSchema(schemaPath, outDir) {
  schemaPath = resolve(schemaPath);
  const name = basename(schemaPath).replace(/\.capnp$/, "");
  const outPath = join(resolve(outDir), `${name}.js`);
  const stamp = `// thatch-schema-key: ${cacheKey(schemaPath)}\n`;
  const current = existsSync(outPath) && readFileSync(outPath, "utf8").startsWith(stamp);
  if (!current) {
    const source = stamp + (await generate(schemaPath));
    mkdirSync(dirname(outPath), { recursive: true });
    // Atomic, for concurrent clients sharing the build directory.
    const tmp = `${outPath}.${process.pid}.tmp`;
    writeFileSync(tmp, source);
    renameSync(tmp, outPath);
  }
  return import(pathToFileURL(outPath).href);
}
