// A function's code directory as a tar archive, for deploys over a socket
// (thatchd may not be able to read the client's files, and must not read
// the host's on a client's say-so).
#pragma once

#include <stdexcept>
#include <string>

namespace thatch::pack {

bool isDirectory(const std::string& path);

// A gzip'd tar of the regular files, directories and symlinks under `dir`
// (paths relative to it, sorted; owners and times dropped). Throws
// std::runtime_error naming the entry it cannot read or store (a socket, a
// device, an unreadable file).
std::string packDirectory(const std::string& dir);

}  // namespace thatch::pack
