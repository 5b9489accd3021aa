"""Tests of loading a handler and of the warm-up (runtime/thatch_runtime.py's load() and warm_up()).

Run with the rest, from the repository root: /usr/bin/python3 -m unittest runtime/test_thatch_runtime.py
"""

import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import unittest

# The fixture and the runtime module of test_thatch_runtime.py, as already
# imported: a second copy would replace sys.modules["_thatch_runtime"].
_main = sys.modules.get("__main__")
if hasattr(_main, "RuntimeTest") and hasattr(_main, "import_runtime"):
    RuntimeTest, rt = _main.RuntimeTest, _main.rt
else:
    try:
        from runtime.test_thatch_runtime import RuntimeTest, rt
    except ImportError:  # run from runtime/ itself
        from test_thatch_runtime import RuntimeTest, rt


class LoadTest(RuntimeTest):
    def load_error(self, expected_type, handler="handler.handler"):
        """The exception load() raised, with its traceback (assertRaises drops it)."""
        try:
            rt.load(handler)
        except expected_type as exc:
            return exc
        self.fail(f"load({handler!r}) did not raise {expected_type.__name__}")

    def test_task_dir_is_put_first_on_sys_path_once(self):
        self.load("def handler(event, context):\n    return 1\n")
        rt.load("handler.handler")
        self.assertEqual(sys.path[0], self.task_dir)
        self.assertEqual(sys.path.count(self.task_dir), 1)

    def test_layer_directories_follow_the_task_dir_in_lambdas_order(self):
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        site_packages = os.path.join(rt.OPT_DIR, "python", "lib", version, "site-packages")
        os.makedirs(os.path.join(site_packages, "deep"))
        os.makedirs(os.path.join(rt.OPT_DIR, "python", "shallow"))
        for package in (os.path.join(site_packages, "deep"),
                        os.path.join(rt.OPT_DIR, "python", "shallow")):
            with open(os.path.join(package, "__init__.py"), "w") as f:
                f.write(f"WHERE = {package!r}\n")
        self.addCleanup(lambda: [sys.modules.pop(name, None) for name in ("deep", "shallow")])
        self.load("""
            import deep, shallow
            def handler(event, context):
                return [deep.WHERE, shallow.WHERE]
        """)
        self.assertEqual(sys.path[:3], [self.task_dir, site_packages,
                                        os.path.join(rt.OPT_DIR, "python")])
        self.assertEqual(json.loads(self.invoke().result),
                         [os.path.join(site_packages, "deep"),
                          os.path.join(rt.OPT_DIR, "python", "shallow")])

    def test_only_layer_directories_that_exist_are_on_sys_path(self):
        os.makedirs(os.path.join(rt.OPT_DIR, "python"))
        self.load("def handler(event, context):\n    return 1\n")
        self.assertEqual(sys.path[:2], [self.task_dir, os.path.join(rt.OPT_DIR, "python")])
        self.assertFalse([p for p in sys.path if "site-packages" in p and p.startswith(rt.OPT_DIR)])

    def test_without_layers_nothing_of_opt_is_on_sys_path(self):
        self.load("def handler(event, context):\n    return 1\n")
        self.assertFalse([p for p in sys.path if p.startswith(rt.OPT_DIR)])

    def test_dotted_module(self):
        self.write("pkg/__init__.py", "")
        self.write("pkg/sub/__init__.py", "")
        self.load("def entry(event, context):\n    return __name__\n", handler="pkg.sub.mod.entry")
        self.assertEqual(self.invoke().result, b'"pkg.sub.mod"')

    def test_a_top_level_source_module_is_imported_without_the_path_finder(self):
        path = self.load("""
            import sys
            initializing = __spec__._initializing
            def handler(event, context):
                return [__name__, __file__, initializing]
        """)
        module = sys.modules["handler"]
        # What importlib's source loader gives a module, without a finder for
        # the task directory having been made.
        self.assertNotIn(self.task_dir, sys.path_importer_cache)
        self.assertIsInstance(module.__loader__, importlib.machinery.SourceFileLoader)
        self.assertIs(module.__spec__.loader, module.__loader__)
        self.assertEqual((module.__spec__.name, module.__spec__.origin), ("handler", path))
        self.assertTrue(module.__spec__.has_location)
        self.assertFalse(module.__spec__._initializing)
        self.assertEqual(module.__cached__, importlib.util.cache_from_source(path))
        self.assertEqual(json.loads(self.invoke().result), ["handler", path, True])

    def test_what_could_come_first_is_left_to_importlib(self):
        cases = {
            "a package of that name": ({"handler/__init__.py": "def handler(e, c):\n    return 'pkg'\n"},
                                       b'"pkg"'),
            "a __pycache__": ({"__pycache__/other.txt": ""}, b'"module"'),
        }
        for case, (files, expected) in cases.items():
            with self.subTest(case):
                self._restore(list(sys.path), logging.getLogger(), logging.getLogger().level,
                              (sys.stdout, sys.stderr))
                self.set_task_dir(tempfile.mkdtemp(dir=self._tmp.name))
                self.write("handler.py", "def handler(e, c):\n    return 'module'\n")
                for relative, source in files.items():
                    self.write(relative, source)
                rt.load("handler.handler")
                self.assertIn(self.task_dir, sys.path_importer_cache)  # the path finder ran
                self.assertEqual(self.invoke().result, expected)

    def test_a_module_that_fails_at_import_is_not_left_imported(self):
        self.write("handler.py", "raise RuntimeError('no')\n")
        self.load_error(RuntimeError)
        self.assertNotIn("handler", sys.modules)

    def test_syntax_error_propagates_and_is_described_without_import_frames(self):
        self.write("handler.py", "def handler(event, context:\n    return 1\n")
        kind, message, trace = rt.describe_exception(self.load_error(SyntaxError))
        self.assertEqual(kind, "SyntaxError")
        self.assertIn("handler.py, line 1", message)
        self.assertIn('handler.py", line 1', trace)
        self.assertNotIn("importlib", trace)
        self.assertNotIn("thatch_runtime", trace)

    def test_import_error_traceback_starts_in_the_handler_module(self):
        path = self.write("handler.py", "import json\nimport no_such_dependency_xyz\n")
        kind, message, trace = rt.describe_exception(self.load_error(ModuleNotFoundError))
        self.assertEqual((kind, message), ("ModuleNotFoundError", "No module named 'no_such_dependency_xyz'"))
        self.assertEqual(trace.splitlines()[:2], ["Traceback (most recent call last):",
                                                  f'  File "{path}", line 2, in <module>'])
        self.assertNotIn("importlib", trace)

    def test_exception_at_import_propagates(self):
        path = self.write("handler.py", """\
            def configure():
                raise RuntimeError("DATABASE_URL is not set")
            configure()
        """)
        kind, message, trace = rt.describe_exception(self.load_error(RuntimeError))
        self.assertEqual((kind, message), ("RuntimeError", "DATABASE_URL is not set"))
        self.assertEqual(re.findall(r"^  File .*", trace, re.M),
                         [f'  File "{path}", line 3, in <module>', f'  File "{path}", line 2, in configure'])

    def test_missing_module(self):
        with self.assertRaisesRegex(ModuleNotFoundError, "No module named 'absent'"):
            rt.load("absent.handler")

    def test_missing_function(self):
        self.write("handler.py", "def main(event, context):\n    pass\n")
        with self.assertRaises(rt.HandlerNotFound) as caught:
            rt.load("handler.handle")
        self.assertIn("module 'handler' has no attribute 'handle'", str(caught.exception))
        self.assertTrue(issubclass(rt.HandlerNotFound, Exception))
        self.assertEqual(rt.describe_exception(caught.exception)[0], "HandlerNotFound")

    def test_not_callable(self):
        self.write("handler.py", "handler = {'not': 'a function'}\n")
        with self.assertRaisesRegex(rt.HandlerNotFound, r"handler\.handler is a dict, not a callable"):
            rt.load("handler.handler")

    def test_bad_handler_strings(self):
        for handler in ("", "handler", ".handler", "handler.", "a..b", "1a.b", "a.b-c", "a.b c",
                        "dir/handler.handler", " a.b", None, b"a.b"):
            with self.subTest(handler=handler):
                with self.assertRaisesRegex(ValueError, "module.function"):
                    rt.load(handler)

    def test_invoke_before_load_is_a_bug(self):
        with self.assertRaises(RuntimeError):
            rt.invoke(b"{}", "r", 0)


class WarmUpTest(RuntimeTest):
    def test_warm_up_leaves_the_runtime_unconfigured(self):
        rt.warm_up()
        with self.assertRaises(RuntimeError):
            rt.invoke(b"{}", "after-warm", 0)
        self.assertNotIn("_THATCH_WARM", os.environ)

    def test_warm_up_runs_a_function_of_its_own_and_leaves_nothing(self):
        before = set(os.listdir("/tmp"))
        rt.warm_up()
        self.assertNotIn("_thatch_warm", sys.modules)
        self.assertFalse([p for p in sys.path if "thatch-warm" in p])
        self.assertFalse([d for d in set(os.listdir("/tmp")) - before if d.startswith("thatch-warm")])
        self.assertIn(rt._log_handler, logging.getLogger().handlers)

    def test_warm_up_puts_no_layer_directory_on_sys_path(self):
        # The zygote warms up outside any sandbox: what it would find in an
        # /opt is the host's, not a function's.
        os.makedirs(os.path.join(rt.OPT_DIR, "python"))
        rt.warm_up()
        self.assertFalse([p for p in sys.path if p.startswith(rt.OPT_DIR)])

    def test_warm_up_can_leave_its_function_loaded_until_forget(self):
        rt.warm_up(forget=False)
        result = self.invoke(b'[1]', "warm-again")
        self.assertEqual(json.loads(result.result), {"event": [1], "request": "warm-again"})
        self.assertNotIn("_thatch_warm", sys.modules)
        rt.forget()
        with self.assertRaises(RuntimeError):
            rt.invoke(b"{}", "after-forget", 0)

    def test_a_handler_loads_after_warm_up_even_into_a_directory_seen_empty(self):
        # The warm-up looks at the task directory while it is still empty;
        # the code that appears there afterwards must still be found.
        rt.warm_up()
        self.configure()
        self.load("""
            def handler(event, context):
                return {"got": event}
        """)
        result = self.invoke(b'{"a": 1}')
        self.assertEqual(result.status, rt.STATUS_OK)
        self.assertEqual(json.loads(result.result), {"got": {"a": 1}})
        self.assertNotIn(b"warm", result.logs)
