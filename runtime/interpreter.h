// The zygote's embedded CPython: initialised once, isolated, with a
// runtime's modules imported and the heap frozen, so that every sandbox
// forked from it starts with that work done.
#pragma once

// Sizes of "#" formats are Py_ssize_t (required since 3.10).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <optional>
#include <string>
#include <vector>

namespace runtime {

// A runtime: an interpreter, what it pre-imports and where it finds more.
struct RuntimeConfig {
  std::string name;
  std::vector<std::string> modules;  // imported in the zygote
  std::vector<std::string> paths;    // read-only package dirs appended to sys.path
};

// The runtimes thatch ships: "python3.11" and "python3.11-numpy".
std::optional<RuntimeConfig> builtinRuntime(const std::string& name);
std::vector<std::string> builtinRuntimeNames();

// A Python exception as text, "Type: message" (clears the error indicator).
std::string takePythonError();

class Interpreter {
 public:
  // Initialises CPython (isolated: no user site, environment ignored; the
  // stdlib is the host's /usr/lib/python3.11, which sandboxes see at the
  // same path), loads the embedded runtime module, imports the runtime's
  // modules, then gc.freeze(). Throws std::runtime_error naming what failed.
  explicit Interpreter(const RuntimeConfig& runtime);
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // The `_thatch_runtime` module (borrowed reference).
  PyObject* runtimeModule() const { return runtimeModule_; }
  const RuntimeConfig& config() const { return config_; }

 private:
  RuntimeConfig config_;
  PyObject* runtimeModule_ = nullptr;
};

// Threads of this process (the zygote must stay single-threaded: it forks).
int countThreads();

}  // namespace runtime
