# thatch's public RPC API. Capabilities: Thatch.deploy and Thatch.get return
# a Function, whose methods act on that function. Every method takes a named
# request struct and returns a named result struct, so that the `capnp` tool
# can encode and decode them:
#
#   capnp decode api/thatch.capnp InvokeResult < result.bin
#
# Compatibility: the file id never changes, and fields and methods are only
# ever appended (with the next ordinal); none is removed or renumbered.
@0x9078bc9c83a1d418;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("thatch::api");

interface Thatch {
  deploy @0 DeployRequest -> DeployResult;
  get @1 GetRequest -> GetResult;
  list @2 ListRequest -> ListResult;
  remove @3 RemoveRequest -> RemoveResult;
  stats @4 StatsRequest -> StatsResult;
  ping @5 PingRequest -> PingResult;   # does nothing: health checks, round-trip baselines
  publishLayer @6 PublishLayerRequest -> PublishLayerResult;
  listLayers @7 ListLayersRequest -> ListLayersResult;
  layerVersions @8 LayerVersionsRequest -> LayerVersionsResult;
  removeLayer @9 RemoveLayerRequest -> RemoveLayerResult;
  listTriggers @10 ListTriggersRequest -> ListTriggersResult;  # docs/triggers.md
  addTrigger @11 AddTriggerRequest -> AddTriggerResult;
  removeTrigger @12 RemoveTriggerRequest -> RemoveTriggerResult;
  setTriggerEnabled @13 SetTriggerEnabledRequest -> SetTriggerEnabledResult;
}

interface Function {
  invoke @0 InvokeRequest -> InvokeResult;
  prewarm @1 PrewarmRequest -> PrewarmResult;
  info @2 InfoRequest -> InfoResult;
  versions @3 VersionsRequest -> VersionsResult;
}

# --- deploying -------------------------------------------------------------

struct DeployRequest {
  name @0 :Text;                 # [a-z0-9][a-z0-9_-]{0,63}
  code :union {
    archive @1 :Data;            # a tar (plain, gz, xz, bz2, zstd) or zip archive
    directory @2 :Text;          # a directory on thatchd's host (local clients)
  }
  config @3 :FunctionConfig;
}

struct DeployResult {
  function @0 :Function;
  info @1 :FunctionInfo;         # the version just created
}

enum NetworkAccess {
  none @0;                       # only `lo`
  egress @1;                     # a veth on the host's bridge and a default route
}

struct EnvVar {
  name @0 :Text;
  value @1 :Text;
}

struct LayerRef {
  name @0 :Text;
  version @1 :UInt64;
}

struct FunctionConfig {
  runtime @0 :Text = "python3.11";
  handler @1 :Text = "handler.handler";    # module.func under the code's root
  memoryBytes @2 :UInt64;                  # 0: the daemon's default
  timeoutMs @3 :UInt32;                    # 0: the daemon's default
  concurrency @4 :UInt32;                  # 0: the daemon's default
  env @5 :List(EnvVar);
  network @6 :NetworkAccess;
  raw @7 :Bool;                            # the event is the payload's bytes, not JSON
  tmpNoexec @8 :Bool;                      # /tmp not executable (as Lambda's is, by default it is)
  layers @9 :List(LayerRef);               # merged read-only at /opt in this order, a later
                                           # one's files winning; at most 5, each stored
}

struct FunctionInfo {
  name @0 :Text;
  version @1 :UInt64;
  config @2 :FunctionConfig;
  createdUnixMs @3 :Int64;
  codeBytes @4 :UInt64;
  fileCount @5 :UInt64;
}

struct GetRequest {
  name @0 :Text;
}

struct GetResult {
  function @0 :Function;
  info @1 :FunctionInfo;         # its latest version
}

struct ListRequest {}

struct ListResult {
  functions @0 :List(FunctionInfo);   # the latest version of each, by name
}

struct RemoveRequest {
  name @0 :Text;
}

struct RemoveResult {
  removed @0 :Bool;              # false: there was no such function
}

# --- layers ----------------------------------------------------------------
# Files shown read-only under /opt in the sandboxes of the functions that
# name them (FunctionConfig.layers), as Lambda's layers are. Each publish
# makes a new, immutable version of the name: 1, 2, ..., never reused.

struct PublishLayerRequest {
  name @0 :Text;                 # as a function's name
  code :union {
    archive @1 :Data;            # as DeployRequest's
    directory @2 :Text;
  }
}

struct PublishLayerResult {
  info @0 :LayerInfo;            # the version just created
}

struct LayerInfo {
  name @0 :Text;
  version @1 :UInt64;
  createdUnixMs @2 :Int64;
  codeBytes @3 :UInt64;
  fileCount @4 :UInt64;
}

struct ListLayersRequest {}

struct ListLayersResult {
  layers @0 :List(LayerInfo);    # the latest version of each, by name
}

struct LayerVersionsRequest {
  name @0 :Text;
}

struct LayerVersionsResult {
  versions @0 :List(LayerInfo);  # ascending
}

# Every version of the layer. Refused while a stored function version uses
# one of them (the message names the functions).
struct RemoveLayerRequest {
  name @0 :Text;
}

struct RemoveLayerResult {
  removed @0 :Bool;              # false: there was no such layer
}

# --- invoking --------------------------------------------------------------

enum Status {
  ok @0;
  handlerError @1;               # the handler raised, or returned what JSON cannot encode
  badRequest @2;                 # the payload is not what the function accepts
  timeout @3;                    # past its deadline: the sandbox was killed
  outOfMemory @4;
  tooManyProcesses @5;
  resultTooLarge @6;
  crashed @7;                    # the sandbox died (signal, exit) or broke its channel
  startFailed @8;                # confinement or the handler's import failed
  overloaded @9;                 # over the function's concurrency and queue, or the host's caps
  notFound @10;
  shuttingDown @11;
}

struct Error {
  type @0 :Text;                 # e.g. the Python exception's class name
  message @1 :Text;
  traceback @2 :Text;
}

struct Timings {
  queuedNs @0 :UInt64;           # waiting for admission
  startNs @1 :UInt64;            # getting a sandbox (a cold start, or ~0 when warm)
  runNs @2 :UInt64;              # the handler call, measured inside the sandbox
}

struct InvokeRequest {
  payload @0 :Data;              # JSON, or raw bytes for raw functions
}

struct InvokeResult {
  status @0 :Status;
  payload @1 :Data;              # the JSON result when ok
  error @2 :Error;
  logs @3 :Data;                 # stdout, stderr and logging, bounded
  logsTruncated @4 :Bool;
  timings @5 :Timings;
  cold @6 :Bool;                 # a new sandbox was started for it
  sandboxId @7 :UInt64;
  version @8 :UInt64;
}

struct PrewarmRequest {
  count @0 :UInt32;              # warm sandboxes to have ready
}

struct PrewarmResult {
  started @0 :UInt32;
}

struct InfoRequest {}

struct InfoResult {
  info @0 :FunctionInfo;
}

struct VersionsRequest {}

struct VersionsResult {
  versions @0 :List(FunctionInfo);   # ascending
}

# --- statistics ------------------------------------------------------------

struct Counter {
  name @0 :Text;
  value @1 :UInt64;
}

# Power-of-two buckets of microseconds: counts[i] is [2^i, 2^(i+1)) µs.
struct Histogram {
  name @0 :Text;                 # "queued", "start", "run"
  counts @1 :List(UInt64);
}

struct StatsRequest {}

struct StatsResult {
  invocationsByStatus @0 :List(Counter);
  coldStarts @1 :UInt64;
  warmStarts @2 :UInt64;
  liveSandboxes @3 :UInt64;
  idleSandboxes @4 :UInt64;
  idleMemoryBytes @5 :UInt64;
  killsByReason @6 :List(Counter);
  evictions @7 :UInt64;
  expirations @8 :UInt64;
  queued @9 :UInt64;
  queueTimeouts @10 :UInt64;
  zygoteRestarts @11 :UInt64;
  histograms @12 :List(Histogram);
  sentAhead @13 :UInt64;         # queued invocations sent ahead into a busy sandbox
  sentAheadStarted @14 :UInt64;  # of those, how many started there
  answeredInPage @15 :UInt64;    # answers that came through a sandbox's shared
                                 # page while thatchd polled for them
  startingSandboxes @16 :UInt64; # live, not ready yet (asked of a zygote, or importing)
  frozenSandboxes @17 :UInt64;   # idle and frozen ([pool] freeze_idle)
}

struct PingRequest {}

struct PingResult {}

# What thatchd's TCP listener serves first (and its Unix socket, with
# socket_requires_token): a token buys a Thatch restricted to what the
# token's [[client]] may do (docs/api.md, "Access control"). A wrong or
# missing token is refused with the same words whatever it was.
interface Login {
  login @0 LoginRequest -> LoginResult;
}

struct LoginRequest {
  token @0 :Text;
}

struct LoginResult {
  thatch @0 :Thatch;
  client @1 :Text;               # the [[client]]'s name
}

# --- triggers (docs/triggers.md) -------------------------------------------
#
# What starts a function besides a client's invoke: a function URL on the
# HTTP listener, a schedule, a Redis stream. A function's triggers go
# with it (Thatch.remove).

struct Trigger {
  id @0 :Text;                   # thatchd's: "url-NAME", "schedule-N", "redis-stream-N"
  function @1 :Text;
  enabled @2 :Bool = true;       # a disabled trigger starts nothing but is kept
  createdUnixMs @3 :Int64;
  union {
    url @4 :FunctionUrl;
    schedule @5 :Schedule;
    redisStream @6 :RedisStream;
  }
  stats @7 :TriggerStats;        # since thatchd started; not kept on disk
}

# A function URL: requests to it become the function's events
# (payload format 2.0 or 1.0) and its answers the HTTP responses.
struct FunctionUrl {
  urlId @0 :Text;                # 32 lowercase letters and digits, thatchd's choice
  authType @1 :Text = "NONE";    # NONE, or AWS_IAM: signed by an [[access_key]] allowed invoke
  payloadFormat @2 :Text = "2.0";  # "2.0" (function URLs, HTTP APIs) or "1.0" (REST APIs)
  url @3 :Text;                  # where thatchd's http_listen serves it ("" when it is off)
}

# EventBridge's schedule expressions: rate(5 minutes), cron(0 12 * * ? *); UTC.
struct Schedule {
  expression @0 :Text;
  detail @1 :Text;               # JSON: the scheduled event's `detail` ("" = {})
}

struct RedisStream {
  url @0 :Text;                  # redis://HOST:PORT[/DB]
  stream @1 :Text;
  group @2 :Text;                # the consumer group ("" = thatch)
  batchSize @3 :UInt32;          # messages per invocation, 1..10000 (0 = 10)
  maxWaitMs @4 :UInt32;          # how long a batch may wait to fill (0 = 500)
  maxAttempts @5 :UInt32;        # deliveries of a message before it is dead-lettered (0 = 3)
  deadLetterStream @6 :Text;     # "" = STREAM:dead-letter
}

struct TriggerStats {
  deliveries @0 :UInt64;         # invocations it started (a stream: batches)
  messages @1 :UInt64;           # a stream's messages delivered (retries too)
  failures @2 :UInt64;           # invocations that did not succeed
  skipped @3 :UInt64;            # schedule runs skipped: the previous one still ran
  missed @4 :UInt64;             # schedule runs due while thatchd was down (not run)
  lag @5 :UInt64;                # a stream's entries the group has not read yet
  deadLettered @6 :UInt64;       # messages moved to the dead-letter stream
  lastRunUnixMs @7 :Int64;       # 0: never
  nextRunUnixMs @8 :Int64;       # a schedule's next due time (0: none, or disabled)
  lastError @9 :Text;            # why the last delivery failed, or the broker is unreachable
}

struct ListTriggersRequest {
  function @0 :Text;             # "" = every function's
}

struct ListTriggersResult {
  triggers @0 :List(Trigger);    # by function, then id
}

struct AddTriggerRequest {
  trigger @0 :Trigger;           # id, createdUnixMs and stats are thatchd's
}

struct AddTriggerResult {
  trigger @0 :Trigger;
}

struct RemoveTriggerRequest {
  id @0 :Text;
}

struct RemoveTriggerResult {
  removed @0 :Bool;              # false: there was no such trigger
}

struct SetTriggerEnabledRequest {
  id @0 :Text;
  enabled @1 :Bool;
}

struct SetTriggerEnabledResult {}
