// A sandbox's spec on its way to the zygote: every mount kind, an overlay's
// lower directories included, comes back as it was sent, and a kind this
// side does not know is refused rather than guessed.
#include "runtime/spec_codec.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace runtime {
namespace {

using sandbox::MountEntry;

TEST(SpecCodec, MountsComeBackAsTheyWereSent) {
  sandbox::Spec spec;
  MountEntry code;
  code.kind = MountEntry::Kind::kBind;
  code.source = "/state/functions/app/1/code";
  code.target = "/var/task";
  MountEntry opt;
  opt.kind = MountEntry::Kind::kOverlay;
  opt.target = "/opt";
  opt.lowerDirs = {"/state/layers/b/2/code", "/state/layers/a/1/code"};
  spec.mounts = {code, opt};

  capnp::MallocMessageBuilder message;
  auto wire = message.initRoot<wire::SandboxSpec>();
  encodeSpec(spec, {"sbx-1", ""}, wire);
  SpawnNames names;
  sandbox::Spec decoded = decodeSpec(wire.asReader(), &names);
  ASSERT_EQ(decoded.mounts.size(), 2u);
  EXPECT_EQ(decoded.mounts[0].kind, MountEntry::Kind::kBind);
  EXPECT_EQ(decoded.mounts[0].source, code.source);
  EXPECT_TRUE(decoded.mounts[0].lowerDirs.empty());
  EXPECT_EQ(decoded.mounts[1].kind, MountEntry::Kind::kOverlay);
  EXPECT_EQ(decoded.mounts[1].target, "/opt");
  EXPECT_EQ(decoded.mounts[1].lowerDirs, opt.lowerDirs);
  EXPECT_TRUE(decoded.mounts[1].readOnly);
  EXPECT_EQ(names.cgroupName, "sbx-1");

  wire.getMounts()[1].setKind(static_cast<uint8_t>(MountEntry::Kind::kOverlay) + 1);
  EXPECT_THROW(decodeSpec(wire.asReader(), nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace runtime
