#include "supervisor/staging.h"

#include "supervisor/store_files.h"

namespace supervisor {

StagedCode::~StagedCode() {
  if (!dir_.empty()) removeStagedTree(dir_);
}

std::unique_ptr<StagedCode> StagingArea::stage(
    const std::function<void(const std::string&)>& fill) const {
  StagingDir staging(dir);
  std::string code = staging.path() + "/code";
  makeDirectory(code, 0700);
  try {
    fill(code);
  } catch (const ArchiveError& e) {
    throw DeployError(e.what());
  }
  std::unique_ptr<StagedCode> staged(new StagedCode);
  staged->stats_ = sealTree(code);
  fsyncPath(staging.path());
  staged->dir_ = staging.path();
  staging.release();
  return staged;
}

std::unique_ptr<StagedCode> StagingArea::directory(const std::string& sourceDir) const {
  return stage([&](const std::string& code) { copyTree(sourceDir, code, limits); });
}

std::unique_ptr<StagedCode> StagingArea::archive(const std::string& archivePath) const {
  return stage([&](const std::string& code) { extractArchive(archivePath, code, limits); });
}

std::unique_ptr<StagedCode> StagingArea::archiveBytes(std::string_view archive) const {
  return stage([&](const std::string& code) { extractArchive(archive, code, limits); });
}

}  // namespace supervisor
