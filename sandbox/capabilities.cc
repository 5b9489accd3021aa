#include "sandbox/capabilities.h"

#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include <memory>
#include <string>

#include "base/sys_error.h"

namespace sandbox {

using base::check;
using base::throwSysError;
namespace {

void clearBoundingAndAmbient() {
  check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl PR_CAP_AMBIENT_CLEAR_ALL");
  for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    // Capabilities newer than this kernel report EINVAL: nothing to drop.
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      throwSysError("prctl PR_CAPBSET_DROP " + std::to_string(cap));
  }
}

void lockSecurebits() {
  // NOROOT: uid 0 gains nothing on exec; NO_SETUID_FIXUP: uid changes do not
  // touch capabilities; KEEP_CAPS_LOCKED: no way back. Needs CAP_SETPCAP,
  // so it comes before the sets are cleared.
  constexpr unsigned long kBits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                  SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                  SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  check(prctl(PR_SET_SECUREBITS, kBits, 0, 0, 0), "prctl PR_SET_SECUREBITS");
}

void clearProcessSets() {
  std::unique_ptr<_cap_struct, int (*)(void*)> empty(cap_init(), cap_free);
  if (!empty) throwSysError("cap_init");
  check(cap_set_proc(empty.get()), "cap_set_proc");
}

}  // namespace

void dropCapabilities() {
  clearBoundingAndAmbient();
  lockSecurebits();
  clearProcessSets();
  check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl PR_SET_NO_NEW_PRIVS");
}

}  // namespace sandbox
