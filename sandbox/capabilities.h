// The confinement's "capabilities" step (sandbox/confine.cc): drop every
// capability and lock it that way.
#pragma once

namespace sandbox {

// Child side, after the last privileged step: clears the bounding and ambient
// sets and the inheritable, effective and permitted sets (libcap), locks the
// securebits so that no uid change or exec can bring capabilities back, and
// sets PR_SET_NO_NEW_PRIVS (which seccomp also requires).
void dropCapabilities();

}  // namespace sandbox
