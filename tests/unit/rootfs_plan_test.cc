#include <gtest/gtest.h>

#include <algorithm>

#include "rootfs/plan.h"

namespace rootfs {
namespace {

using sandbox::MountEntry;
using Kind = MountEntry::Kind;

const MountEntry* find(const std::vector<MountEntry>& plan, const std::string& target) {
  for (const auto& e : plan)
    if (e.target == target) return &e;
  return nullptr;
}

TEST(DefaultPlan, HasTheDocumentedLayout) {
  Options options;
  options.codeDir = "/srv/code";
  auto plan = defaultPlan(options);

  const MountEntry* usr = find(plan, "/usr");
  ASSERT_NE(usr, nullptr);
  EXPECT_EQ(usr->kind, Kind::kBind);
  EXPECT_TRUE(usr->readOnly);

  const MountEntry* tmp = find(plan, "/tmp");
  ASSERT_NE(tmp, nullptr);
  EXPECT_EQ(tmp->kind, Kind::kTmpfs);
  EXPECT_EQ(tmp->sizeBytes, 64ull << 20);
  EXPECT_FALSE(tmp->noexec);  // as Lambda's
  EXPECT_FALSE(tmp->readOnly);
  options.tmpNoexec = true;
  EXPECT_TRUE(find(defaultPlan(options), "/tmp")->noexec);

  const MountEntry* shm = find(plan, "/dev/shm");
  ASSERT_NE(shm, nullptr);
  EXPECT_TRUE(shm->noexec);

  const MountEntry* task = find(plan, "/var/task");
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(task->source, "/srv/code");
  EXPECT_TRUE(task->readOnly);

  for (const char* node : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}) {
    const MountEntry* e = find(plan, node);
    ASSERT_NE(e, nullptr) << node;
    EXPECT_EQ(e->kind, Kind::kDevBind);
  }
  ASSERT_NE(find(plan, "/proc"), nullptr);
  EXPECT_EQ(find(plan, "/proc")->kind, Kind::kProc);
  // Nothing of the host's /etc but kHostEtc, nothing of /root, /home or /var.
  for (const auto& e : plan) {
    if (e.kind == Kind::kBind) {
      if (e.source.rfind("/etc", 0) == 0) {
        EXPECT_NE(std::find(std::begin(kHostEtc), std::end(kHostEtc), e.source), std::end(kHostEtc))
            << e.source;
        EXPECT_EQ(e.target, e.source);
        EXPECT_TRUE(e.readOnly);
      }
      EXPECT_NE(e.source, "/root");
      EXPECT_NE(e.source, "/home");
      EXPECT_NE(e.source.rfind("/var", 0), 0u) << e.source;
    }
  }
  const MountEntry* localtime = find(plan, "/etc/localtime");
  ASSERT_NE(localtime, nullptr);
  EXPECT_EQ(localtime->kind, Kind::kSymlink);
  EXPECT_EQ(localtime->source, "/usr/share/zoneinfo/Etc/UTC");
  EXPECT_EQ(find(plan, "/etc/resolv.conf"), nullptr) << "no resolv.conf without network";
}

TEST(DefaultPlan, ResolvConfOnlyWithNetwork) {
  Options options;
  options.network = true;
  options.resolvConf = "nameserver 10.0.0.1\n";
  auto plan = defaultPlan(options);
  const MountEntry* resolv = find(plan, "/etc/resolv.conf");
  ASSERT_NE(resolv, nullptr);
  EXPECT_EQ(resolv->contents, "nameserver 10.0.0.1\n");
}

TEST(DefaultPlan, MergedUsrBecomesSymlinks) {
  // Debian 12 (this host) has /lib -> usr/lib.
  auto plan = defaultPlan({});
  const MountEntry* lib = find(plan, "/lib");
  ASSERT_NE(lib, nullptr);
  EXPECT_EQ(lib->kind, Kind::kSymlink);
  EXPECT_EQ(lib->source, "usr/lib");
}

TEST(DefaultPlan, ExtraBindsComeLastAndAreValidated) {
  Options options;
  options.binds = {{"/data", "/srv//data/", true}};
  auto plan = defaultPlan(options);
  EXPECT_EQ(plan.back().target, "/srv/data");
  EXPECT_FALSE(plan.back().readOnly);
  options.binds = {{"/data", "/proc/sys", false}};
  EXPECT_THROW(defaultPlan(options), std::invalid_argument);
  options.binds = {{"/data", "/", false}};
  EXPECT_THROW(defaultPlan(options), std::invalid_argument);
}

// Lambda's layers: none, no /opt; one, bound; more, merged by overlayfs with
// the last one on top (overlayfs lists the top lower directory first).
TEST(DefaultPlan, LayersAreMergedReadOnlyAtOpt) {
  Options options;
  EXPECT_EQ(find(defaultPlan(options), "/opt"), nullptr);

  options.layerDirs = {"/state/layers/deps/1/code"};
  auto plan = defaultPlan(options);
  const MountEntry* opt = find(plan, "/opt");
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->kind, Kind::kBind);
  EXPECT_EQ(opt->source, "/state/layers/deps/1/code");
  EXPECT_TRUE(opt->readOnly);

  options.layerDirs = {"/l/first", "/l/second", "/l/third"};
  plan = defaultPlan(options);
  opt = find(plan, "/opt");
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->kind, Kind::kOverlay);
  EXPECT_EQ(opt->lowerDirs, (std::vector<std::string>{"/l/third", "/l/second", "/l/first"}));
  EXPECT_TRUE(opt->readOnly);
  EXPECT_FALSE(opt->noexec);  // layers hold programs (/opt/bin) and libraries
  EXPECT_EQ(std::count_if(plan.begin(), plan.end(),
                          [](const MountEntry& e) { return e.target.rfind("/opt", 0) == 0; }),
            1);
}

TEST(GeneratedEtc, NamesTheSandboxUser) {
  Options options;
  options.uid = 1234;
  options.gid = 4321;
  options.hostname = "fn-1";
  EXPECT_NE(passwdFile(options).find("sandbox:x:1234:4321:"), std::string::npos);
  EXPECT_NE(groupFile(options).find("sandbox:x:4321:"), std::string::npos);
  EXPECT_NE(hostsFile(options).find("fn-1"), std::string::npos);
}

TEST(NormalizeTarget, CleansAndRejects) {
  EXPECT_EQ(normalizeTarget("/a//b/./c/"), "/a/b/c");
  EXPECT_EQ(normalizeTarget("/"), "/");
  EXPECT_THROW(normalizeTarget("a/b"), std::invalid_argument);
  EXPECT_THROW(normalizeTarget("/a/../b"), std::invalid_argument);
}

}  // namespace
}  // namespace rootfs
