# The zygote's two wire formats. Fields are only ever appended.
#
# Control channel (supervisor <-> zygote): a SOCK_SEQPACKET socket, one
# message per packet (flat array), the invocation channel's fd attached to a
# SpawnRequest with SCM_RIGHTS.
#
# Invocation channel (supervisor <-> one sandbox): a SOCK_STREAM socketpair
# carrying Cap'n Proto's standard stream framing (segment table, then
# segments). The supervisor sends Invocations; the sandbox sends one
# SandboxMessage saying `ready` or `loadFailed`, then one `result` per
# Invocation, in order (one that asked for `answerShared` may come through
# the shared answer page instead, runtime/shared_answer.h).

@0xe72e0ee47c0d4557;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("runtime::wire");

# --- the sandbox, as sandbox::Spec describes it ---------------------------

struct Mount {
  kind @0 :UInt8;        # sandbox::MountEntry::Kind
  source @1 :Text;
  target @2 :Text;
  readOnly @3 :Bool;
  noexec @4 :Bool;
  sizeBytes @5 :UInt64;
  mode @6 :UInt32;
  contents @7 :Data;
  lowerDirs @8 :List(Text);   # kOverlay only
}

struct Rlimit {
  resource @0 :Int32;
  soft @1 :UInt64;
  hard @2 :UInt64;
}

struct SandboxSpec {
  hostname @0 :Text;
  insideUid @1 :UInt32;
  insideGid @2 :UInt32;
  hostUid @3 :UInt32;
  hostGid @4 :UInt32;
  memoryBytes @5 :UInt64;
  pids @6 :UInt64;
  cpus @7 :Float64;
  mounts @8 :List(Mount);
  rlimits @9 :List(Rlimit);
  netMode @10 :UInt8;            # sandbox::NetMode
  egressBridge @11 :Text;
  egressBridgeAddress @12 :Text;
  egressSandboxAddress @13 :Text;
  cwd @14 :Text;
  cgroupName @15 :Text;          # unique among live sandboxes
  hostVethName @16 :Text;        # egress only
}

# What the handler's context reports (Lambda's names).
struct FunctionInfo {
  name @0 :Text;
  version @1 :Text;
  memoryLimitMb @2 :UInt32;
  invokedFunctionArn @3 :Text;
  logGroupName @4 :Text;
  logStreamName @5 :Text;
  raw @6 :Bool;                  # event is the payload's bytes, not JSON
  logLimitBytes @7 :UInt64;
}

# --- control channel ------------------------------------------------------

struct SpawnRequest {
  id @0 :UInt64;                 # chosen by the supervisor, unique
  spec @1 :SandboxSpec;
  handler @2 :Text;              # "module.func" under /var/task
  env @3 :List(Text);            # K=V, the process environment of the handler
  function @4 :FunctionInfo;
  receivedNs @5 :UInt64;         # set by the zygote when it hands a request to a stem cell
}

struct ZygoteRequest {
  union {
    spawn @0 :SpawnRequest;      # the invocation channel's fd rides along
    kill @1 :UInt64;             # sandbox id
    shutdown @2 :Void;           # kill every sandbox, then exit
    stemCells @3 :StemCells;     # keep pre-forked sandboxes ready
  }
}

# Stem cells: sandboxes forked, confined and warmed up before any request.
# A spawn request whose spec matches `template` (all but the host ids, the
# limits and the code bound at /var/task) claims one: the zygote applies the
# request's limits, binds its code at /var/task and hands it the channel.
struct StemCells {
  count @0 :UInt32;              # the most kept (the zygote sizes the pool); 0: none
  template @1 :SandboxSpec;
  idSlotDir @2 :Text;            # the stems lease their host ids here
  idFirst @3 :UInt32;
  idCount @4 :UInt32;
}

struct ExitInfo {
  enum Kind {
    exited @0;
    signaled @1;
    timeout @2;
    outOfMemory @3;
    pidsLimit @4;
    killed @5;                   # on request
  }
  kind @0 :Kind;
  code @1 :Int32;                # exit status or signal number
  elapsedNs @2 :UInt64;
}

struct ZygoteEvent {
  id @0 :UInt64;
  union {
    spawned @1 :UInt32;          # the sandbox's pid on the host
    spawnFailed @2 :SpawnFailure;
    exited @3 :ExitInfo;
    ready @4 :Void;              # sent when the zygote is initialised, and
                                 # again (id 0) each time a stem cell turns warm
  }
  warmStems @5 :UInt32;          # stem cells warm and unclaimed as this was sent
}

struct SpawnFailure {
  step @0 :Text;                 # the confinement step, or "request"
  errno @1 :Int32;
  message @2 :Text;
}

# --- invocation channel ---------------------------------------------------

struct Invocation {
  requestId @0 :Text;
  payload @1 :Data;
  deadlineNs @2 :UInt64;         # CLOCK_MONOTONIC; 0 = none
  busyPollNs @3 :UInt64;         # after answering, poll this long for the next
                                 # request before sleeping; 0 = sleep at once
  timeoutNs @4 :UInt64;          # with deadlineNs 0: the deadline is this long
                                 # after the sandbox starts it (a request sent
                                 # ahead, behind the one it is running); 0 = none
  answerShared @5 :Bool;         # answer in the shared answer page if thatchd
                                 # still watches it (runtime/shared_answer.h)
}

struct Error {
  type @0 :Text;
  message @1 :Text;
  traceback @2 :Text;
}

struct Timing {
  step @0 :Text;
  ns @1 :UInt64;                 # CLOCK_MONOTONIC when the step ended
  minorFaults @2 :UInt64;        # of the sandbox process then (0: not measured)
}

struct InvocationResult {
  enum Status {
    ok @0;
    handlerError @1;
    badPayload @2;
    resultNotSerializable @3;
    runtimeError @4;             # the runtime itself failed (a bug)
  }
  status @0 :Status;
  payload @1 :Data;
  error @2 :Error;
  logs @3 :Data;
  logsTruncated @4 :Bool;
  runNs @5 :UInt64;              # the handler call, measured inside
  minorFaults @6 :UInt64;        # of the sandbox process so far, on its first invocation (else 0)
  cpu @7 :Int32 = -1;            # the core it answered from, for busy polling (-1: unknown)
  overran @8 :Bool;              # it ended past its deadline: the sandbox exits after
                                 # this answer and starts nothing sent after it
}

struct SandboxMessage {
  union {
    ready @0 :Ready;
    loadFailed @1 :Error;
    result @2 :InvocationResult;
  }
}

struct Ready {
  startNs @0 :UInt64;            # CLOCK_MONOTONIC when the zygote got the request
  timings @1 :List(Timing);      # each confinement step, the handler import
  minorFaults @2 :UInt64;
}
