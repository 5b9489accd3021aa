#include "runtime/interpreter.h"

#include <dirent.h>

#include <stdexcept>

extern const char kThatchRuntimePy[];

namespace runtime {
namespace {

const std::vector<std::string> kStandardModules = {
    "json",         "re",     "datetime", "decimal", "email",  "email.message", "http.client",
    "urllib.parse", "base64", "hashlib",  "logging", "typing", "dataclasses",   "asyncio"};

void checkStatus(PyStatus status, const char* what) {
  if (PyStatus_Exception(status))
    throw std::runtime_error(std::string(what) + ": " +
                             (status.err_msg ? status.err_msg : "failed"));
}

PyObject* importOrThrow(const std::string& name) {
  PyObject* module = PyImport_ImportModule(name.c_str());
  if (!module) throw std::runtime_error("import " + name + ": " + takePythonError());
  return module;
}

void callOrThrow(PyObject* module, const char* function) {
  PyObject* result = PyObject_CallMethod(module, function, nullptr);
  if (!result) throw std::runtime_error(std::string(function) + ": " + takePythonError());
  Py_DECREF(result);
}

}  // namespace

std::optional<RuntimeConfig> builtinRuntime(const std::string& name) {
  if (name == "python3.11") return RuntimeConfig{name, kStandardModules, {}};
  if (name == "python3.11-numpy") {
    RuntimeConfig config{name, kStandardModules, {}};
    config.modules.push_back("numpy");
    return config;
  }
  return std::nullopt;
}

std::vector<std::string> builtinRuntimeNames() {
  return {"python3.11", "python3.11-numpy"};
}

std::string takePythonError() {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  if (!type) return "unknown error";
  PyErr_NormalizeException(&type, &value, &traceback);
  std::string text = reinterpret_cast<PyTypeObject*>(type)->tp_name;
  if (value) {
    if (PyObject* str = PyObject_Str(value)) {
      if (const char* utf8 = PyUnicode_AsUTF8(str)) text += std::string(": ") + utf8;
      Py_DECREF(str);
    }
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  PyErr_Clear();
  return text;
}

Interpreter::Interpreter(const RuntimeConfig& runtime) : config_(runtime) {
  // UTF-8 mode, as Lambda's UTF-8 locale gives its Python: file names,
  // open(), os.environ and subprocess in UTF-8. An isolated interpreter in
  // the C locale would use ASCII, and fail on the first non-ASCII byte.
  PyPreConfig preconfig;
  PyPreConfig_InitIsolatedConfig(&preconfig);
  preconfig.utf8_mode = 1;
  checkStatus(Py_PreInitialize(&preconfig), "Py_PreInitialize");
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  // Debian's site module adds /usr/lib/python3/dist-packages (numpy lives
  // there); isolation already keeps the user site and PYTHON* out.
  config.site_import = 1;
  // The zygote and its sandboxes keep default signal dispositions.
  config.install_signal_handlers = 0;
  // /var/task is read-only: do not even try to write bytecode caches.
  config.write_bytecode = 0;
  // A static interpreter cannot locate its stdlib from its own path.
  checkStatus(PyConfig_SetString(&config, &config.home, L"/usr"), "PyConfig home");
  checkStatus(PyConfig_SetString(&config, &config.program_name, L"thatch-zygote"),
              "PyConfig program_name");
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  checkStatus(status, "Py_InitializeFromConfig");

  PyObject* sys = importOrThrow("sys");
  PyObject* path = PyObject_GetAttrString(sys, "path");
  for (const std::string& dir : config_.paths) {
    PyObject* item = PyUnicode_FromString(dir.c_str());
    PyList_Append(path, item);
    Py_DECREF(item);
  }
  Py_XDECREF(path);
  Py_DECREF(sys);

  PyObject* code = Py_CompileString(kThatchRuntimePy, "<thatch_runtime>", Py_file_input);
  if (!code) throw std::runtime_error("compile the runtime module: " + takePythonError());
  runtimeModule_ = PyImport_ExecCodeModule("_thatch_runtime", code);
  Py_DECREF(code);
  if (!runtimeModule_) throw std::runtime_error("load the runtime module: " + takePythonError());

  for (const std::string& module : config_.modules) Py_DECREF(importOrThrow(module));
  // A cold start's paths once here, so that what they create on first use
  // (caches, codecs, the JSON scanner...) is made once, not in every sandbox.
  callOrThrow(runtimeModule_, "warm_up");

  // Objects that exist now are never collected or moved by the collector:
  // sandboxes forked later do not dirty their pages by scanning them.
  PyObject* gc = importOrThrow("gc");
  callOrThrow(gc, "collect");
  callOrThrow(gc, "freeze");
  Py_DECREF(gc);

  if (int threads = countThreads(); threads != 1)
    throw std::runtime_error("runtime " + config_.name + " left " + std::to_string(threads) +
                             " threads running after its imports; the zygote must stay "
                             "single-threaded because it forks");
}

int countThreads() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* e = readdir(dir))
      if (e->d_name[0] != '.') ++count;
    closedir(dir);
  }
  return count;
}

}  // namespace runtime
