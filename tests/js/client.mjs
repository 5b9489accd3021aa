#!/usr/bin/env node
// An independent client of thatchd's Cap'n Proto API in JavaScript (capnp-es),
// to show that the API works from something other than the C++ library:
// bootstraps Thatch over thatchd's Unix socket, pings, deploys a directory,
// invokes the function, lists functions. tests/api/js_client_test.cc runs it.
//
//   node tests/js/client.mjs --socket /run/thatchd.sock --dir examples/hello \
//       [--name hello-js] [--payload '{"name":"js"}'] [--invokes 2] \
//       [--schema api/thatch.capnp] [--gen-dir build/gen/js] [--deadline-ms 20000]
//
// stdout: one JSON object per line, in call order:
//   {"call":"ping"}
//   {"call":"deploy","name":"hello-js","version":"1"}
//   {"call":"invoke","status":"ok","payload":"{...}","cold":true,"sandboxId":"3",
//    "version":"1","error":null,"logs":""}                   (one per --invokes)
//   {"call":"list","functions":[{"name":"hello-js","version":"1"}]}
// UInt64 fields are decimal strings (JSON numbers lose precision past 2^53);
// payload and logs are the bytes decoded as UTF-8; status is the schema's
// enumerant name; error is {type,message} when the result has one.
//
// Any failure, or the deadline passing, prints one line to stderr and exits
// non-zero. capnp-es leaves pending calls pending forever when the connection
// breaks, hence the deadline and the exit on a closed socket.
import { createConnection } from "node:net";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

let step = "starting";
let finished = false;

function fail(message, code = 1) {
  if (finished) return;
  finished = true;
  process.stderr.write(`js-client: ${message}\n`);
  process.exit(code);
}

function emit(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      socket: { type: "string" },
      dir: { type: "string" },
      name: { type: "string", default: "hello-js" },
      payload: { type: "string", default: '{"name":"js"}' },
      invokes: { type: "string", default: "2" },
      schema: { type: "string", default: join(repoRoot, "api/thatch.capnp") },
      "gen-dir": { type: "string", default: join(repoRoot, "build/gen/js") },
      "deadline-ms": { type: "string", default: "20000" },
    },
    strict: true,
  }));
} catch (err) {
  fail(`usage: ${err.message}`, 2);
}
const invokes = Number(options.invokes);
const deadlineMs = Number(options["deadline-ms"]);
if (!options.socket || !options.dir) fail("usage: --socket and --dir are required", 2);
if (!Number.isInteger(invokes) || invokes < 0) fail("usage: --invokes takes a count", 2);
if (!(deadlineMs > 0)) fail("usage: --deadline-ms takes a positive number", 2);
// The server takes directory deploys as paths on its own host.
const directory = isAbsolute(options.dir) ? options.dir : resolve(options.dir);

// One deadline for the whole run: every call is made under it, and it names
// the call that was pending.
setTimeout(() => fail(`deadline: ${deadlineMs} ms passed during ${step}`), deadlineMs);

const u64 = (value) => BigInt.asUintN(64, BigInt(value)).toString();
const utf8 = new TextDecoder("utf-8");

async function main() {
  step = "loading the capnp-es runtime";
  const { Conn } = await import("capnp-es");
  const { StreamTransport } = await import("./transport.mjs");
  const { loadSchema } = await import("./schema.mjs");

  step = `generating code for ${options.schema}`;
  const api = await loadSchema(options.schema, options["gen-dir"]);
  const statusNames = new Map(
    Object.entries(api.Status).map(([key, value]) => [
      value,
      key.toLowerCase().replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase()),
    ]),
  );

  step = `connecting to ${options.socket}`;
  const socket = createConnection({ path: options.socket });
  await new Promise((resolveConnect, rejectConnect) => {
    socket.once("connect", resolveConnect);
    socket.once("error", rejectConnect);
  });
  const transport = new StreamTransport(socket, (err) => {
    if (err) fail(`${step}: ${err.message}`);
  });
  const conn = new Conn(transport);
  conn.onError = (err) => fail(`${step}: rpc: ${err?.message ?? err}`);
  const thatch = conn.bootstrap(api.Thatch);

  step = "ping";
  await thatch.ping().promise();
  emit({ call: "ping" });

  step = "deploy";
  const deployed = await thatch
    .deploy((request) => {
      request.name = options.name;
      request.code.directory = directory;
    })
    .promise();
  emit({ call: "deploy", name: deployed.info.name, version: u64(deployed.info.version) });
  const fn = deployed.function;

  const payload = new TextEncoder().encode(options.payload);
  for (let i = 1; i <= invokes; i++) {
    step = `invoke #${i}`;
    const result = await fn
      .invoke((request) => {
        request._initPayload(payload.length).copyBuffer(payload);
      })
      .promise();
    emit({
      call: "invoke",
      status: statusNames.get(result.status) ?? `unknown(${result.status})`,
      payload: result._hasPayload() ? utf8.decode(result.payload.toUint8Array()) : "",
      cold: result.cold,
      sandboxId: u64(result.sandboxId),
      version: u64(result.version),
      error: result._hasError()
        ? { type: result.error.type, message: result.error.message }
        : null,
      logs: result._hasLogs() ? utf8.decode(result.logs.toUint8Array()) : "",
    });
  }

  step = "list";
  const listed = await thatch.list().promise();
  emit({
    call: "list",
    functions: [...listed.functions].map((info) => ({
      name: info.name,
      version: u64(info.version),
    })),
  });

  finished = true;
  transport.close();
  process.exit(0);
}

main().catch((err) => fail(`${step}: ${err?.message ?? err}`));
