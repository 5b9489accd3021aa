// The seccomp policy: an allowlist of the system calls CPython programs need.
// Compiled to BPF once with libseccomp in the parent and loaded raw in each
// child, because compiling per child costs milliseconds.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

namespace sandbox {

// A compiled BPF program. A plain value: copy it, share it, load it.
struct SeccompProgram {
  std::vector<sock_filter> instructions;
};

class SeccompPolicy {
 public:
  // What untrusted Python code may call. Unknown system calls fail with
  // ENOSYS (so libc falls back); known-dangerous ones fail with EPERM.
  static SeccompPolicy forPython();

  // Compiles with libseccomp. Throws on failure.
  SeccompProgram compile() const;

  // The names of the system calls this policy denies with EPERM, and why.
  struct Denial {
    std::string syscall;
    std::string reason;
  };
  const std::vector<Denial>& denials() const { return denied_; }
  const std::vector<std::string>& allowed() const { return allowed_; }

 private:
  std::vector<std::string> allowed_;
  std::vector<Denial> denied_;
};

// Child side: installs `program` with seccomp(SECCOMP_SET_MODE_FILTER).
// Requires no_new_privs (or CAP_SYS_ADMIN). Throws SysError on failure.
void loadSeccomp(const SeccompProgram& program);

}  // namespace sandbox
