# thatch — top-level build. `make` builds everything, `make test` runs every
# test (installing Debian dependencies first), `make bench` measures.

NPROC := $(shell nproc 2>/dev/null || echo 2)
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(NPROC)
endif
MAKEFLAGS += --no-print-directory

CXX      ?= g++
BUILD    ?= build
PKGS     := libnl-route-3.0 libseccomp libcap
# Recursively expanded on purpose: `make deps` must work before pkg-config
# knows these packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Werror -MMD -MP -I. -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS)

# runtime/: Cap'n Proto for its channels; the zygote links Debian's static
# libpython (not PIC, hence -no-pie; --export-dynamic so that lib-dynload
# extension modules find the interpreter's symbols). Every page a sandbox
# touches after the fork costs it a fault, so the C libraries are linked in
# statically (fewer mappings, no lazy binding in them) and -z now binds the
# binary's symbols once in the zygote rather than in every sandbox (measured:
# ~45 faults fewer per cold start). libstdc++ stays shared: extension
# modules may load it too.
PY_CONFIG  := /usr/bin/python3.11-config
PY_CFLAGS   = $(shell $(PY_CONFIG) --includes 2>/dev/null)
PY_STATIC  := /usr/lib/x86_64-linux-gnu/libpython3.11.a
CAPNP_LIBS  = $(shell pkg-config --libs capnp kj 2>/dev/null)

# base/: the vocabulary every layer speaks (owned fds, system errors, sizes
# and durations, text for messages).
BASE_SRCS    := $(wildcard base/*.cc)
SANDBOX_MAINS := sandbox/seccomp_gen_main.cc
SANDBOX_SRCS := $(filter-out $(SANDBOX_MAINS),$(wildcard sandbox/*.cc))
ROOTFS_SRCS  := $(wildcard rootfs/*.cc)
LIB_OBJS     := $(patsubst %.cc,$(BUILD)/%.o,$(BASE_SRCS) $(SANDBOX_SRCS) $(ROOTFS_SRCS))
# run/: thatch-run, the one-shot runner composed of sandbox/ and rootfs/.
RUN_MAINS    := run/thatch_run_main.cc
RUN_OBJS     := $(patsubst %.cc,$(BUILD)/%.o,$(filter-out $(RUN_MAINS),$(wildcard run/*.cc)))
LIB          := $(BUILD)/libthatch-sandbox.a

RUNTIME_CAPNP := $(BUILD)/gen/runtime/runtime.capnp.h
RUNTIME_LIB_SRCS := runtime/framing.cc runtime/spec_codec.cc runtime/zygote_control.cc \
                    runtime/shared_answer.cc runtime/channel_messages.cc runtime/sandbox_channel.cc \
                    runtime/blocking_channel.cc
ZYGOTE_SRCS  := runtime/interpreter.cc runtime/sandbox_body.cc runtime/fork_server.cc \
                runtime/zygote_main.cc
RUNTIME_LIB  := $(BUILD)/libthatch-runtime.a
RUNTIME_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(RUNTIME_LIB_SRCS)) $(BUILD)/gen/runtime/runtime.capnp.o
ZYGOTE_OBJS  := $(patsubst %.cc,$(BUILD)/%.o,$(ZYGOTE_SRCS)) $(BUILD)/gen/runtime/thatch_runtime_py.o

# supervisor/: thatchd's core, a library; its config is TOML (toml++), its
# code archives tar or zip (libarchive).
SUPERVISOR_SRCS  := $(wildcard supervisor/*.cc)
SUPERVISOR_OBJS  := $(patsubst %.cc,$(BUILD)/%.o,$(SUPERVISOR_SRCS))
SUPERVISOR_LIB   := $(BUILD)/libthatch-supervisor.a
SUPERVISOR_LIBS   = $(shell pkg-config --libs tomlplusplus libarchive 2>/dev/null)
SUPERVISOR_CFLAGS = $(shell pkg-config --cflags tomlplusplus 2>/dev/null)
SUPERVISOR_TEST_SRCS := $(wildcard tests/supervisor/*.cc)

UNIT_SRCS    := $(wildcard tests/unit/*.cc)
SBX_TEST_SRCS := $(wildcard tests/sandbox/*.cc)
TEST_OBJS    := $(patsubst %.cc,$(BUILD)/%.o,$(UNIT_SRCS) $(SBX_TEST_SRCS) $(wildcard tests/runtime/*.cc) $(SUPERVISOR_TEST_SRCS) $(wildcard tests/api/*.cc) $(wildcard tests/security/*.cc) $(wildcard tests/fault/*.cc) tests/daemon.cc tests/probe/probe.cc tests/testing.cc)

BINS := $(BUILD)/bin/thatch-run $(BUILD)/bin/thatch-zygote $(BUILD)/bin/thatchd $(BUILD)/bin/thatch \
        $(BUILD)/bin/thatch-replay
RUNTIME_TEST_SRCS := $(wildcard tests/runtime/*.cc)
TEST_BINS := $(BUILD)/tests/unit-tests $(BUILD)/tests/sandbox-tests $(BUILD)/tests/thatch-probe \
             $(BUILD)/tests/runtime-tests $(BUILD)/tests/supervisor-tests $(BUILD)/tests/api-tests \
             $(BUILD)/tests/security-tests $(BUILD)/tests/fault-tests
BENCH_BINS := $(BUILD)/bench/kill-latency $(BUILD)/bench/cold-start $(BUILD)/bench/api-bench \
              $(BUILD)/bench/http-bench $(BUILD)/bench/scale-bench $(BUILD)/bench/soak
EXAMPLE_BINS := $(BUILD)/examples/client $(BUILD)/examples/embed

.PHONY: all deps demo test check-layers unit-test sandbox-test bench clean format check-format check fuzz fuzz-build soak
all: $(BINS) $(TEST_BINS) $(BENCH_BINS) $(EXAMPLE_BINS)

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# The seccomp policy is compiled to BPF at build time for thatch-run.
SECCOMP_GEN := $(BUILD)/tools/seccomp-gen
PYTHON_BPF  := $(BUILD)/gen/python_seccomp.o

$(SECCOMP_GEN): $(BUILD)/sandbox/seccomp_gen_main.o $(BUILD)/sandbox/seccomp.o $(BUILD)/base/sys_error.o
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/gen/python_seccomp.cc: $(SECCOMP_GEN)
	@mkdir -p $(dir $@)
	$(SECCOMP_GEN) > $@.tmp && mv $@.tmp $@

$(PYTHON_BPF): $(BUILD)/gen/python_seccomp.cc
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS) $(PYTHON_BPF)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/gen/runtime/runtime.capnp.c++ $(RUNTIME_CAPNP) &: runtime/runtime.capnp
	@mkdir -p $(BUILD)/gen
	capnp compile -oc++:$(BUILD)/gen $<

# api/: the public schema, the client library behind include/thatch/thatch.h,
# and the `thatch` CLI. libthatch.a holds the client alone: a client program
# (the CLI among them) links none of the daemon's layers or libraries.
API_CAPNP := $(BUILD)/gen/api/thatch.capnp.h
$(BUILD)/gen/api/thatch.capnp.c++ $(API_CAPNP) &: api/thatch.capnp
	@mkdir -p $(BUILD)/gen
	capnp compile -oc++:$(BUILD)/gen $<

$(BUILD)/gen/api/thatch.capnp.o: $(BUILD)/gen/api/thatch.capnp.c++
	$(CXX) $(CXXFLAGS) -x c++ -c $< -o $@

CLIENT_SRCS := api/client.cc api/pack.cc api/wire.cc
CLIENT_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(CLIENT_SRCS)) $(BUILD)/gen/api/thatch.capnp.o \
               $(BUILD)/base/socket_stream.o
THATCH_LIB  := $(BUILD)/libthatch.a
# What a program linking libthatch.a needs after it (thatch.pc says the same).
# kj-tls and OpenSSL for tls: addresses.
CLIENT_LIBS  = -larchive -lcapnp-rpc -lkj-tls -lkj-async $(CAPNP_LIBS) -lssl -lcrypto -lpthread
# The CLI but its main(), which the API tests link too.
CLI_OBJS    := $(patsubst %.cc,$(BUILD)/%.o,$(filter-out api/cli_main.cc,$(wildcard api/cli_*.cc))) \
               $(BUILD)/base/units.o $(BUILD)/base/text.o $(BUILD)/base/json.o
API_TEST_SRCS := $(wildcard tests/api/*.cc)
SECURITY_TEST_SRCS := $(wildcard tests/security/*.cc)
FAULT_TEST_SRCS := $(wildcard tests/fault/*.cc)

$(BUILD)/api/%.o: api/%.cc | $(API_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(THATCH_LIB): $(CLIENT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# Static, as thatch-run: loading the shared libraries was most of a `thatch
# --help` (libarchive alone brings ten more, ICU among them). With
# --gc-sections, because libarchive's table of formats refers to every
# writer and those to libraries (libxml2, nettle, lzma, ...) that the
# gzip'd tar writer never reaches. kj calls getaddrinfo for tcp: addresses,
# which works with this glibc's own NSS modules. `make check` links it
# dynamically (CLI_LINK=): AddressSanitizer does not link static programs.
CLI_LINK ?= -static -Wl,--gc-sections
$(BUILD)/bin/thatch: $(BUILD)/api/cli_main.o $(CLI_OBJS) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	@echo "$(CXX) $(CLI_LINK) $(LDFLAGS) $^ $(CLIENT_LIBS) -lz -o $@"; \
	  $(CXX) $(CLI_LINK) $(LDFLAGS) $^ $(CLIENT_LIBS) -lz -o $@ 2>$@.log; rc=$$?; \
	  grep -v "statically linked applications requires\|in function .kj::" $@.log; \
	  rm -f $@.log; exit $$rc

# daemon/: what serves the API, assembled once (daemon/daemon.h) for thatchd
# and for the in-process mode (include/thatch/embedded.h).
# libthatch-embedded.a holds it and every layer below it (supervisor,
# runtime client, sandbox) for programs that run thatch in process; they
# link libthatch.a after it for the client.
DAEMON_MAINS := daemon/thatchd_main.cc
DAEMON_SRCS  := $(filter-out $(DAEMON_MAINS),$(wildcard daemon/*.cc))
DAEMON_OBJS  := $(patsubst %.cc,$(BUILD)/%.o,$(DAEMON_SRCS))
EMBEDDED_LIB := $(BUILD)/libthatch-embedded.a
# What follows libthatch-embedded.a and libthatch.a (thatch-embedded.pc says the same).
# libnftables loads the egress firewall (daemon/egress_firewall.h).
# kj-http and capnp-json serve the Lambda HTTP API, libcrypto checks its
# signatures (daemon/lambda_api.h, daemon/sigv4.h); libhiredis speaks to the
# brokers of Redis stream triggers (daemon/redis_stream.h).
EMBEDDED_LIBS = $(SUPERVISOR_LIBS) $(shell pkg-config --libs libnftables 2>/dev/null) $(LDLIBS) \
                -lkj-http -lcapnp-json -lcrypto -lhiredis $(CLIENT_LIBS)

# thatch's version: the pkg-config files', and thatch_build_info on /metrics.
THATCH_VERSION := 0.1.0
$(BUILD)/daemon/lambda_api.o: CXXFLAGS += -DTHATCH_VERSION='"$(THATCH_VERSION)"'

$(BUILD)/daemon/%.o: daemon/%.cc | $(API_CAPNP) $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(SUPERVISOR_CFLAGS) -c $< -o $@

$(EMBEDDED_LIB): $(DAEMON_OBJS) $(SUPERVISOR_OBJS) $(RUNTIME_OBJS) $(LIB_OBJS) $(PYTHON_BPF)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/thatchd: $(BUILD)/daemon/thatchd_main.o $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -o $@

$(BUILD)/tests/api/%.o: tests/api/%.cc | $(API_CAPNP) $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -Iinclude $(SUPERVISOR_CFLAGS) -c $< -o $@

$(BUILD)/tests/api-tests: $(patsubst %.cc,$(BUILD)/%.o,$(API_TEST_SRCS) tests/daemon.cc tests/testing.cc) \
    $(CLI_OBJS) $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -lgtest -lgtest_main -o $@

$(BUILD)/tests/security/%.o: tests/security/%.cc | $(API_CAPNP) $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -Iinclude $(SUPERVISOR_CFLAGS) -c $< -o $@

$(BUILD)/tests/fault/%.o: tests/fault/%.cc | $(API_CAPNP) $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -Iinclude $(SUPERVISOR_CFLAGS) -c $< -o $@

$(BUILD)/tests/security-tests: $(patsubst %.cc,$(BUILD)/%.o,$(SECURITY_TEST_SRCS) tests/daemon.cc tests/testing.cc) \
    $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -lgtest -lgtest_main -o $@

$(BUILD)/tests/fault-tests: $(patsubst %.cc,$(BUILD)/%.o,$(FAULT_TEST_SRCS) tests/daemon.cc tests/testing.cc) \
    $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -lgtest -lgtest_main -o $@

$(BUILD)/tests/unit/api_schema_test.o: | $(API_CAPNP)

$(BUILD)/gen/runtime/runtime.capnp.o: $(BUILD)/gen/runtime/runtime.capnp.c++
	$(CXX) $(CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/runtime/%.o: runtime/%.cc | $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(PY_CFLAGS) -c $< -o $@

$(BUILD)/tools/embed-gen: $(BUILD)/runtime/embed_gen_main.o
	@mkdir -p $(dir $@)
	$(CXX) $^ -o $@

$(BUILD)/gen/runtime/thatch_runtime_py.cc: runtime/thatch_runtime.py $(BUILD)/tools/embed-gen
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed-gen $< kThatchRuntimePy > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/runtime/thatch_runtime_py.o: $(BUILD)/gen/runtime/thatch_runtime_py.cc
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(RUNTIME_LIB): $(RUNTIME_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/thatch-zygote: $(ZYGOTE_OBJS) $(RUNTIME_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) -no-pie -Wl,-z,now $(LDFLAGS) $^ $(PY_STATIC) -Wl,--export-dynamic \
	  -Wl,-Bstatic $(LDLIBS) $(CAPNP_LIBS) -lexpat -lz -Wl,-Bdynamic -lm -ldl -lpthread -lutil -o $@

# Static: no dynamic loading or relocation on every run (measured: ~16.6 ms
# -> ~11 ms per `thatch-run -- /bin/true`, half the page faults). libnl's
# static archive warns about getprotobyname; thatch never calls it.
$(BUILD)/bin/thatch-run: $(BUILD)/run/thatch_run_main.o $(RUN_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@$(CXX) -static $(LDFLAGS) $^ $(LDLIBS) -lpthread -o $@.tmp 2>$@.log; rc=$$?; \
	  grep -v "statically linked applications requires\|in function .nl_" $@.log; \
	  rm -f $@.log; [ $$rc -eq 0 ] && mv $@.tmp $@ && echo "linked $@ (static)"

$(BUILD)/tests/unit-tests: $(patsubst %.cc,$(BUILD)/%.o,$(UNIT_SRCS) tests/testing.cc) $(RUN_OBJS) $(LIB) \
    $(BUILD)/gen/api/thatch.capnp.o
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lcapnp-rpc -lkj-async $(CAPNP_LIBS) -lgtest -lgtest_main -lpthread -o $@

$(BUILD)/tests/sandbox-tests: $(patsubst %.cc,$(BUILD)/%.o,$(SBX_TEST_SRCS) tests/testing.cc) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lgtest -lgtest_main -lpthread -o $@

$(BUILD)/bench/kill-latency: $(BUILD)/bench/kill_latency.o $(RUN_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/runtime/%.o: tests/runtime/%.cc | $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/tests/runtime-tests: $(patsubst %.cc,$(BUILD)/%.o,$(RUNTIME_TEST_SRCS) tests/testing.cc) $(RUNTIME_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lcapnp-rpc -lkj-async $(CAPNP_LIBS) -lgtest -lgtest_main -lpthread -o $@

$(BUILD)/bench/cold_start.o: | $(RUNTIME_CAPNP)
$(BUILD)/bench/cold-start: $(BUILD)/bench/cold_start.o $(RUNTIME_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -lcapnp-rpc -lkj-async $(CAPNP_LIBS) -o $@

# api-bench and scale-bench: thatchd's clients, its load generator shared
# (bench/load.h), each starting its own thatchd as the tests do.
BENCH_CLIENT_OBJS := $(BUILD)/bench/load.o $(BUILD)/tests/daemon.o $(BUILD)/tests/testing.o
SCALE_BENCH_OBJS  := $(patsubst %.cc,$(BUILD)/%.o,$(wildcard bench/scale_*.cc))
$(BUILD)/bench/api_bench.o $(BUILD)/bench/load.o $(SCALE_BENCH_OBJS): | $(API_CAPNP)
$(BUILD)/bench/api-bench: $(BUILD)/bench/api_bench.o $(BENCH_CLIENT_OBJS) $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -o $@

# http-bench: the Lambda HTTP API beside the Cap'n Proto one; kj-http for
# its clients, libcrypto for their SigV4 signatures.
$(BUILD)/bench/http_bench.o: | $(API_CAPNP)
$(BUILD)/bench/http-bench: $(BUILD)/bench/http_bench.o $(BENCH_CLIENT_OBJS) $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -o $@

$(BUILD)/bench/scale-bench: $(SCALE_BENCH_OBJS) $(BENCH_CLIENT_OBJS) $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -o $@

# soak: a thatchd under a mixed load (bench/soak.cc); `make soak` runs it
# for SOAK_SECONDS (600) and plots its samples (build/bench/soak.png).
$(BUILD)/bench/soak.o: | $(API_CAPNP)
$(BUILD)/bench/soak: $(BUILD)/bench/soak.o $(BENCH_CLIENT_OBJS) $(EMBEDDED_LIB) $(THATCH_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -o $@

SOAK_SECONDS ?= 600
soak: deps
	@$(MAKE) all
	$(BUILD)/bench/soak $(SOAK_SECONDS) $(BUILD)/bench/soak; status=$$?; \
	  /usr/bin/python3 bench/soak_plot.py $(BUILD)/bench/soak.tsv $(BUILD)/bench/soak.png && \
	  echo "soak: plot in $(BUILD)/bench/soak.png"; exit $$status

$(BUILD)/supervisor/%.o: supervisor/%.cc | $(RUNTIME_CAPNP) $(API_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(SUPERVISOR_CFLAGS) -c $< -o $@

$(SUPERVISOR_LIB): $(SUPERVISOR_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/tests/supervisor/%.o: tests/supervisor/%.cc | $(RUNTIME_CAPNP)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(SUPERVISOR_CFLAGS) -c $< -o $@

# thatch-replay: a trace replayed through the warm pools (bench/replay.h);
# pure code, so it needs only the supervisor's pools and policies.
$(BUILD)/bin/thatch-replay: $(BUILD)/bench/replay_main.o $(BUILD)/bench/replay.o $(SUPERVISOR_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(SUPERVISOR_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/supervisor-tests: $(patsubst %.cc,$(BUILD)/%.o,$(SUPERVISOR_TEST_SRCS) tests/daemon.cc tests/testing.cc) \
    $(BUILD)/bench/replay.o $(SUPERVISOR_LIB) $(RUNTIME_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(SUPERVISOR_LIBS) $(LDLIBS) -lcapnp-rpc -lkj-async $(CAPNP_LIBS) -lgtest -lgtest_main -lpthread -o $@

# The probe runs inside sandboxes and reports what it observes; static so that
# it depends on nothing the sandbox's root may lack.
$(BUILD)/tests/thatch-probe: $(BUILD)/tests/probe/probe.o
	@mkdir -p $(dir $@)
	$(CXX) -static $^ -o $@

# examples/embed: a client of thatchd (client.cc, libthatch.a) and a program
# running thatch in process (embed.cc, libthatch-embedded.a too), built here
# from the in-tree archives; docs/install.md builds them against an
# installed tree. Their objects sit beside them, not in
# $(BUILD)/examples/embed/, which is a binary.
$(BUILD)/examples/%.o: examples/embed/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/examples/client: $(BUILD)/examples/client.o $(THATCH_LIB)
	$(CXX) $(LDFLAGS) $^ $(CLIENT_LIBS) -o $@

$(BUILD)/examples/embed: $(BUILD)/examples/embed.o $(EMBEDDED_LIB) $(THATCH_LIB)
	$(CXX) $(LDFLAGS) $^ $(EMBEDDED_LIBS) -o $@

-include $(BUILD)/examples/embed.d $(BUILD)/examples/client.d

# `make install [PREFIX=/usr/local] [DESTDIR=staging]`; docs/install.md.
# thatchd and the in-process mode find thatch-zygote beside their own
# binary, so all four programs go to one directory. The config goes to
# /etc/thatch for the system prefixes, where operators look for it, and
# inside the tree for a self-contained one (/opt/thatch, a test's directory).
PREFIX         ?= /usr/local
SYSCONFDIR     ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL_SUBST   = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                  -e 's|@VERSION@|$(THATCH_VERSION)|g'
INSTALL_CONFIG  = $(DESTDIR)$(SYSCONFDIR)/thatch/thatchd.toml
PUBLIC_HEADERS := include/thatch/thatch.h include/thatch/types.h include/thatch/embedded.h
INSTALL_FILES   = $(addprefix $(DESTDIR)$(PREFIX)/,$(patsubst $(BUILD)/%,%,$(BINS)) $(PUBLIC_HEADERS) \
                    bin/thatch-check-host bin/thatch-tune-host \
                    lib/libthatch.a lib/libthatch-embedded.a lib/pkgconfig/thatch.pc \
                    lib/pkgconfig/thatch-embedded.pc) \
                  $(DESTDIR)$(SYSTEMDUNITDIR)/thatchd.service

.PHONY: install uninstall
# The templates are expanded straight into the destination: a `sudo make
# install` must not leave root-owned files in the build directory.
install: $(BINS) $(THATCH_LIB) $(EMBEDDED_LIB)
	install -D -m 0755 -t $(DESTDIR)$(PREFIX)/bin $(BINS)
	install -m 0755 scripts/check-host $(DESTDIR)$(PREFIX)/bin/thatch-check-host
	install -m 0755 scripts/tune-host $(DESTDIR)$(PREFIX)/bin/thatch-tune-host
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/include/thatch $(PUBLIC_HEADERS)
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/lib $(THATCH_LIB) $(EMBEDDED_LIB)
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(SYSTEMDUNITDIR)
	for pc in thatch thatch-embedded; do \
	  $(INSTALL_SUBST) scripts/$$pc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc && \
	  chmod 0644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc || exit 1; \
	done
	$(INSTALL_SUBST) scripts/thatchd.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/thatchd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/thatchd.service
	@if [ -e $(INSTALL_CONFIG) ]; then \
	  echo "kept $(INSTALL_CONFIG); the current defaults are in scripts/thatchd.toml"; \
	else \
	  echo "install -D -m 0644 scripts/thatchd.toml $(INSTALL_CONFIG)"; \
	  install -D -m 0644 scripts/thatchd.toml $(INSTALL_CONFIG); \
	fi

# Leaves the config: its operator may have edited it.
uninstall:
	rm -f $(INSTALL_FILES)
	rmdir $(DESTDIR)$(PREFIX)/include/thatch 2>/dev/null || true

demo: deps
	@$(MAKE) $(BINS)
	@scripts/demo.sh $(BUILD)

# Before the build: a crossing include fails in a second, not after the suites.
test: deps
	@$(MAKE) check-layers
	@$(MAKE) all fuzz-build
	@scripts/run-tests.sh $(BUILD)

# Every quoted #include against the table in docs/architecture.md.
check-layers:
	@scripts/check-layers

unit-test: $(BUILD)/tests/unit-tests
	$(BUILD)/tests/unit-tests

sandbox-test: all
	$(BUILD)/tests/sandbox-tests

bench: deps
	@$(MAKE) all
	@bench/run.sh $(BUILD)

# AddressSanitizer: thatchd, the CLI and the runtime, supervisor and API
# suites built with it in $(BUILD)-asan and run (the zygote, with its static
# CPython, is the one in $(BUILD)), with LeakSanitizer on (a thatchd that
# leaks exits non-zero, which the API tests check as they stop it). Not
# part of `make test`: it doubles the time. Left out: the tests that build
# or run other programs. The shared page's tests run here too: they force
# the page path ([testing] answer_page_always) rather than need fast calls.
ASAN := $(BUILD)-asan
check: deps
	@$(MAKE) all
	CXXFLAGS="-O1 -g -fsanitize=address -fno-omit-frame-pointer -Wno-maybe-uninitialized" \
	  LDFLAGS="-fsanitize=address" $(MAKE) BUILD=$(ASAN) CLI_LINK= $(ASAN)/bin/thatchd $(ASAN)/bin/thatch \
	  $(ASAN)/tests/runtime-tests $(ASAN)/tests/supervisor-tests $(ASAN)/tests/api-tests
	ln -sf $(abspath $(BUILD))/bin/thatch-zygote $(ASAN)/bin/thatch-zygote
	ASAN_OPTIONS=detect_leaks=1 $(ASAN)/tests/runtime-tests --gtest_filter='MessageStream*:InvocationMessage*:SharedAnswer*:SandboxChannel*'
	ASAN_OPTIONS=detect_leaks=1 $(ASAN)/tests/supervisor-tests
	ASAN_OPTIONS=detect_leaks=1 $(ASAN)/tests/api-tests --gtest_filter='-Install.*:JsClient.*'

# Fuzz targets (tests/fuzz, libFuzzer with clang 14, AddressSanitizer and
# UndefinedBehaviorSanitizer), built in $(BUILD)-fuzz with the sources each
# decodes. `make fuzz` runs each for FUZZ_SECONDS (default 600) on a copy
# of its corpus and merges what it found into tests/fuzz/corpus; `make test`
# runs each over its corpus and a fixed number of mutations
# (scripts/run-tests.sh).
FUZZ        := $(BUILD)-fuzz
FUZZ_CXX    := clang++-14
FUZZ_FLAGS   = -g -O1 -std=c++20 -I. -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS) $(SUPERVISOR_CFLAGS) \
               -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -MMD -MP
FUZZ_TARGETS := config archive channel shared_answer rpc
FUZZ_BINS   := $(patsubst %,$(FUZZ)/%-fuzz,$(FUZZ_TARGETS))
# Their headers' changes rebuild them (a stale object compiled against an
# older struct layout than the libraries it links with misreads them).
-include $(shell find $(FUZZ)/obj -name '*.d' 2>/dev/null)
# The config's own files instrumented; what they call of the rest of the
# supervisor (the allow words, the keep-alive names, function names) as it
# ships.
FUZZ_SRCS_config        := supervisor/config.cc supervisor/config_keys.cc supervisor/config_check.cc \
                           base/units.cc base/text.cc sandbox/egress_rules.cc
FUZZ_DEPS_config        := $(SUPERVISOR_LIB) $(LIB)
FUZZ_LIBS_config         = -ltomlplusplus $(SUPERVISOR_LIBS) $(CAPNP_LIBS) $(LDLIBS)
FUZZ_SRCS_archive       := supervisor/archive.cc base/sys_error.cc base/text.cc
FUZZ_LIBS_archive        = -larchive
FUZZ_SRCS_channel       := runtime/channel_messages.cc $(BUILD)/gen/runtime/runtime.capnp.c++
FUZZ_LIBS_channel        = $(CAPNP_LIBS)
FUZZ_SRCS_shared_answer := runtime/shared_answer.cc runtime/channel_messages.cc \
                           $(BUILD)/gen/runtime/runtime.capnp.c++ base/sys_error.cc
FUZZ_LIBS_shared_answer  = $(CAPNP_LIBS)
# The RPC server and the capabilities it serves, instrumented; the rest of
# the daemon (built by `make all`, with g++) as it ships. It runs a real
# daemon, with the zygote of $(BUILD).
FUZZ_SRCS_rpc           := daemon/server.cc daemon/capabilities.cc
FUZZ_DEPS_rpc           := $(EMBEDDED_LIB) $(THATCH_LIB)
FUZZ_LIBS_rpc            = $(EMBEDDED_LIBS)
$(FUZZ)/obj/tests/fuzz/rpc_fuzz.cc.o: FUZZ_FLAGS += -DTHATCH_REPO='"$(CURDIR)"' \
    -DTHATCH_ZYGOTE='"$(abspath $(BUILD))/bin/thatch-zygote"'

$(FUZZ)/obj/%.o: % | $(RUNTIME_CAPNP) $(API_CAPNP)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -x c++ -c $< -o $@

.SECONDEXPANSION:
$(FUZZ)/%-fuzz: $(FUZZ)/obj/tests/fuzz/%_fuzz.cc.o $$(addprefix $(FUZZ)/obj/,$$(addsuffix .o,$$(FUZZ_SRCS_$$*))) \
    $$(FUZZ_DEPS_$$*)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer $^ $(FUZZ_LIBS_$*) -o $@

fuzz-build: $(FUZZ_BINS)

FUZZ_SECONDS ?= 600
fuzz: deps
	@$(MAKE) fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  found=$$(mktemp -d) && \
	  echo "== fuzz $$t: $(FUZZ_SECONDS) s" && \
	  $(FUZZ)/$$t-fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$found tests/fuzz/corpus/$$t || exit 1; \
	  $(FUZZ)/$$t-fuzz -merge=1 tests/fuzz/corpus/$$t $$found >/dev/null 2>&1; rm -rf $$found; \
	done

format:
	clang-format -i $(wildcard */*.cc */*.h include/*/*.h tests/*/*.cc tests/*/*.h tests/*.cc tests/*.h)

check-format:
	clang-format --dry-run --Werror $(wildcard */*.cc */*.h include/*/*.h tests/*/*.cc tests/*/*.h tests/*.cc tests/*.h)

clean:
	rm -rf $(BUILD)

-include $(CLIENT_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(BUILD)/api/cli_main.d $(RUNTIME_OBJS:.o=.d) $(ZYGOTE_OBJS:.o=.d) $(LIB_OBJS:.o=.d) $(SUPERVISOR_OBJS:.o=.d) $(DAEMON_OBJS:.o=.d) $(patsubst %.cc,$(BUILD)/%.d,$(DAEMON_MAINS)) $(TEST_OBJS:.o=.d) $(BUILD)/bench/kill_latency.d $(BUILD)/bench/cold_start.d $(BUILD)/bench/api_bench.d $(BUILD)/bench/http_bench.d $(BUILD)/bench/soak.d $(BUILD)/bench/load.d $(BUILD)/bench/replay.d $(BUILD)/bench/replay_main.d $(SCALE_BENCH_OBJS:.o=.d) $(patsubst %.cc,$(BUILD)/%.d,$(SANDBOX_MAINS) $(RUN_MAINS)) $(RUN_OBJS:.o=.d)
