#include "runtime/spec_codec.h"

#include <stdexcept>

namespace runtime {

using sandbox::MountEntry;

void encodeSpec(const sandbox::Spec& spec, const SpawnNames& names,
                wire::SandboxSpec::Builder out) {
  out.setHostname(spec.hostname);
  out.setInsideUid(spec.ids.insideUid);
  out.setInsideGid(spec.ids.insideGid);
  out.setHostUid(spec.ids.hostUid);
  out.setHostGid(spec.ids.hostGid);
  out.setMemoryBytes(spec.limits.memoryBytes);
  out.setPids(spec.limits.pids);
  out.setCpus(spec.limits.cpus);
  auto mounts = out.initMounts(spec.mounts.size());
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    const MountEntry& e = spec.mounts[i];
    auto m = mounts[i];
    m.setKind(static_cast<uint8_t>(e.kind));
    m.setSource(e.source);
    m.setTarget(e.target);
    m.setReadOnly(e.readOnly);
    m.setNoexec(e.noexec);
    m.setSizeBytes(e.sizeBytes);
    m.setMode(e.mode);
    m.setContents(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(e.contents.data()), e.contents.size()));
    if (!e.lowerDirs.empty()) {
      auto lowerDirs = m.initLowerDirs(e.lowerDirs.size());
      for (size_t d = 0; d < e.lowerDirs.size(); ++d) lowerDirs.set(d, e.lowerDirs[d]);
    }
  }
  auto rlimits = out.initRlimits(spec.rlimits.size());
  for (size_t i = 0; i < spec.rlimits.size(); ++i) {
    rlimits[i].setResource(spec.rlimits[i].resource);
    rlimits[i].setSoft(spec.rlimits[i].soft);
    rlimits[i].setHard(spec.rlimits[i].hard);
  }
  out.setNetMode(static_cast<uint8_t>(spec.net.mode));
  out.setEgressBridge(spec.net.egress.bridge);
  out.setEgressBridgeAddress(spec.net.egress.bridgeAddress);
  out.setEgressSandboxAddress(spec.net.egress.sandboxAddress);
  out.setCwd(spec.cwd);
  out.setCgroupName(names.cgroupName);
  out.setHostVethName(names.hostVethName);
}

sandbox::Spec decodeSpec(wire::SandboxSpec::Reader in, SpawnNames* names) {
  sandbox::Spec spec;
  spec.hostname = in.getHostname();
  spec.ids = {in.getInsideUid(), in.getInsideGid(), in.getHostUid(), in.getHostGid()};
  spec.limits = {in.getMemoryBytes(), in.getPids(), in.getCpus()};
  for (auto m : in.getMounts()) {
    if (m.getKind() > static_cast<uint8_t>(MountEntry::Kind::kOverlay))
      throw std::invalid_argument("unknown mount kind " + std::to_string(m.getKind()));
    MountEntry e;
    e.kind = static_cast<MountEntry::Kind>(m.getKind());
    e.source = m.getSource();
    e.target = m.getTarget();
    e.readOnly = m.getReadOnly();
    e.noexec = m.getNoexec();
    e.sizeBytes = m.getSizeBytes();
    e.mode = m.getMode();
    auto contents = m.getContents();
    e.contents.assign(reinterpret_cast<const char*>(contents.begin()), contents.size());
    for (capnp::Text::Reader dir : m.getLowerDirs())
      e.lowerDirs.emplace_back(dir.cStr(), dir.size());
    spec.mounts.push_back(std::move(e));
  }
  for (auto r : in.getRlimits())
    spec.rlimits.push_back({r.getResource(), r.getSoft(), r.getHard()});
  if (in.getNetMode() > static_cast<uint8_t>(sandbox::NetMode::kEgress))
    throw std::invalid_argument("unknown network mode");
  spec.net.mode = static_cast<sandbox::NetMode>(in.getNetMode());
  spec.net.egress = {in.getEgressBridge(), in.getEgressBridgeAddress(),
                     in.getEgressSandboxAddress()};
  spec.cwd = in.getCwd();
  if (names) *names = {in.getCgroupName(), in.getHostVethName()};
  return spec;
}

}  // namespace runtime
