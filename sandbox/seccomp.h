// The seccomp policy: an allowlist of the system calls CPython programs need.
// Compiled to BPF once with libseccomp in the parent and loaded raw in each
// child, because compiling per child costs milliseconds.
#pragma once

#include <linux/filter.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
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
  // x86_64 only: any other system call ABI, x32 and i386 included, kills the
  // process.
  static SeccompPolicy forPython();

  // Compiles with libseccomp. Throws on failure.
  SeccompProgram compile() const;

  // The system calls this policy denies (some only for certain arguments),
  // why, and the errno the caller sees: EPERM, except clone3 (ENOSYS, so that
  // libc falls back to clone) and unlisted socket families (EAFNOSUPPORT).
  struct Denial {
    std::string syscall;
    std::string reason;
    int error = EPERM;
  };
  const std::vector<Denial>& denials() const { return denied_; }
  // The system calls this policy allows; clone, socket, ioctl and
  // personality only for some arguments.
  const std::vector<std::string>& allowed() const { return allowed_; }

  // A test on one 64-bit argument register (not its C type):
  // `(arg & mask) == datum`, `arg <= datum` or `arg >= datum`. The defaults
  // test the first argument for equality.
  struct ArgCheck {
    enum class Op { kMaskedEqual, kLessEqual, kGreaterEqual };
    unsigned index = 0;
    Op op = Op::kMaskedEqual;
    uint64_t datum = 0;
    uint64_t mask = ~uint64_t{0};
  };
  // One filter rule. Rules for one system call with different outcomes never
  // overlap, so the filter's meaning does not depend on the order in which
  // libseccomp emits their comparisons.
  struct Rule {
    std::string syscall;
    std::optional<int> error;       // empty: allow
    std::optional<ArgCheck> check;  // empty: every call
    std::optional<ArgCheck> also;   // a second argument's test, both to hold
  };
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  void allow(std::string syscall);
  void deny(std::string syscall, int error, std::string reason);
  void addRule(std::string syscall, std::optional<int> error, std::optional<ArgCheck> test = {},
               std::optional<ArgCheck> also = {});
  // Adds rules giving `error` when argument `index` is in [0, last] but not
  // in `except`, which must be sorted.
  void addRulesOutside(const std::string& syscall, std::optional<int> error, unsigned index,
                       const std::vector<uint64_t>& except, uint64_t last);
  void addRangeRules(const std::string& syscall, std::optional<int> error, unsigned index,
                     uint64_t first, uint64_t last);

  void allowCloneWithoutNamespaces();
  void allowSocketFamilies();
  void allowIoctlExceptTerminalInjection();
  void allowDefaultPersonalityOnly();

  std::vector<std::string> allowed_;
  std::vector<Denial> denied_;
  std::vector<Rule> rules_;
};

// Child side: installs `program` with seccomp(SECCOMP_SET_MODE_FILTER).
// Requires no_new_privs (or CAP_SYS_ADMIN). Throws base::SysError on failure.
void loadSeccomp(const SeccompProgram& program);

// forPython() compiled at build time (build/gen/python_seccomp.cc, linked
// into thatch-run and the unit tests only).
extern const sock_filter kPythonPolicyBpf[];
extern const size_t kPythonPolicyBpfLength;

}  // namespace sandbox
