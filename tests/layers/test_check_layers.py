"""Tests of scripts/check-layers on small fake trees, each in a temporary directory.

Run from the repository root: /usr/bin/python3 -m unittest tests/layers/test_check_layers.py
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKER = os.path.join(REPO, "scripts", "check-layers")

# daemon/ has a row and no folder in the trees below: that is allowed.
DOC = """\
# design

## Layout

### Dependencies

| folder | may include |
|---|---|
| `base/` | — |
| `include/thatch/` | — |
| `sandbox/` | `base/` |
| `runtime/` | `base/`, `sandbox/` |
| `supervisor/` | `base/`, `include/thatch/`, `sandbox/`, `runtime/` |
| `api/` | `base/`, `include/thatch/` |
| `daemon/` | `api/`, `supervisor/` |
| `tests/`, `bench/` | anything |

## Next section
"""

CLEAN = {
    "docs/architecture.md": DOC,
    "base/fd.h": "#pragma once\n#include <unistd.h>\n",
    "include/thatch/thatch.h": '#pragma once\n#include "thatch/types.h"\n',
    "include/thatch/types.h": "#pragma once\n",
    "sandbox/spec.h": '#pragma once\n#include "base/fd.h"\n',
    "sandbox/spec.cc": '#include "spec.h"\n',  # found beside the including file
    "runtime/client.cc": '#include "runtime/runtime.capnp.h"\n#include "sandbox/spec.h"\n',
    "supervisor/supervisor.h": '#include "runtime/client.h"\n#include "thatch/types.h"\n',
    "api/client.cc": '#include "api/thatch.capnp.h"\n#include "thatch/thatch.h"\n#include <capnp/rpc.h>\n',
    "tests/api_test.cc": '#include "supervisor/supervisor.h"\n#include "api/client.h"\n',
    "scripts/README": "no sources here\n",
    "build/gen/runtime/runtime.capnp.h": '#include "supervisor/supervisor.h"\n',
}


class CheckLayersTest(unittest.TestCase):
    def check(self, files, *options):
        """Runs the checker on a tree of files; returns (exit status, stdout + stderr)."""
        with tempfile.TemporaryDirectory() as root:
            for path, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
                with open(os.path.join(root, path), "w") as f:
                    f.write(text)
            run = subprocess.run([sys.executable, CHECKER, "--root", root, *options],
                                 capture_output=True, text=True, timeout=60)
        return run.returncode, run.stdout + run.stderr

    def assertFails(self, files, *lines):
        status, output = self.check(files)
        self.assertEqual(status, 1, output)
        for line in lines:
            self.assertIn(line, output.splitlines())
        return output

    def test_a_clean_tree_passes(self):
        status, output = self.check(CLEAN)
        self.assertEqual((status, output),
                         (0, "layers: 8 files, no include crosses docs/architecture.md's table\n"))

    def test_an_include_of_a_higher_layer_is_reported_with_file_line_and_rule(self):
        output = self.assertFails(
            dict(CLEAN, **{"sandbox/cgroup.cc": '#include "base/fd.h"\n\n#include "supervisor/supervisor.h"\n'}),
            'sandbox/cgroup.cc:3: sandbox/ may not include "supervisor/supervisor.h" (sandbox/ may include: base/)')
        self.assertEqual(output.splitlines()[-1],
                         "layers: 9 files, 1 include(s) crossing docs/architecture.md's table, 0 folder(s) missing from it")

    def test_a_folder_that_may_include_nothing_says_so(self):
        self.assertFails(
            dict(CLEAN, **{"base/fd.h": '#include "sandbox/spec.h"\n'}),
            'base/fd.h:1: base/ may not include "sandbox/spec.h" (base/ may include: —)')

    def test_a_generated_capnp_header_counts_as_its_schemas_folder(self):
        self.assertFails(
            dict(CLEAN, **{"sandbox/channel.cc": '#include "runtime/runtime.capnp.h"\n',
                           "runtime/wire.cc": '#include "api/thatch.capnp.h"\n'}),
            'sandbox/channel.cc:1: sandbox/ may not include "runtime/runtime.capnp.h" (sandbox/ may include: base/)',
            'runtime/wire.cc:1: runtime/ may not include "api/thatch.capnp.h" (runtime/ may include: base/, sandbox/)')

    def test_thatch_slash_is_the_public_header_folder(self):
        self.assertFails(
            dict(CLEAN, **{"runtime/status.cc": '#include "thatch/types.h"\n'}),
            'runtime/status.cc:1: runtime/ may not include "thatch/types.h" (runtime/ may include: base/, sandbox/)')

    def test_a_relative_include_counts_as_the_folder_it_lands_in(self):
        self.assertFails(
            dict(CLEAN, **{"sandbox/up.cc": '#include "../supervisor/supervisor.h"\n'}),
            'sandbox/up.cc:1: sandbox/ may not include "../supervisor/supervisor.h" (sandbox/ may include: base/)')

    def test_a_source_folder_missing_from_the_table_fails(self):
        output = self.assertFails(
            dict(CLEAN, **{"tools/gen/gen_main.cc": '#include "base/fd.h"\n'}),
            "tools/: a source folder with no row in docs/architecture.md's table: place it there")
        self.assertEqual(output.splitlines()[-1],
                         "layers: 9 files, 0 include(s) crossing docs/architecture.md's table, 1 folder(s) missing from it")

    def test_a_doc_without_the_table_fails(self):
        self.assertFails(
            dict(CLEAN, **{"docs/architecture.md": "# design\n\n## Layout\n\nNo table.\n"}),
            'docs/architecture.md: no table with the columns "folder | may include"',
            "layers: no dependency table to check against")

    def test_a_missing_doc_fails(self):
        files = dict(CLEAN)
        del files["docs/architecture.md"]
        self.assertFails(files, "docs/architecture.md: No such file or directory")

    def test_a_malformed_row_fails_naming_its_line(self):
        self.assertFails(
            dict(CLEAN, **{"docs/architecture.md": DOC.replace("| `sandbox/` | `base/` |", "| `sandbox/` | base |")}),
            'docs/architecture.md:11: cannot read "base": expected `folder/`, ... or — or anything')

    def test_a_row_allowing_a_folder_without_a_row_fails(self):
        self.assertFails(
            dict(CLEAN, **{"docs/architecture.md": DOC.replace("`base/`, `sandbox/` |", "`base/`, `sandbx/` |")}),
            "docs/architecture.md: runtime/ may include sandbx/, which has no row")

    def test_commented_out_and_quoted_includes_do_not_count(self):
        source = textwrap.dedent('''\
            // #include "supervisor/supervisor.h"
            /* before a refactoring:
            #include "supervisor/supervisor.h"
            */
            const char* kGlob = "/sys/fs/cgroup/*";  // a "/*" in a string opens no comment
            const char* kHelp = R"(usage:
            #include "supervisor/supervisor.h"
            )";
            #include "api/thatch.capnp.h"
            ''')
        self.assertFails(
            dict(CLEAN, **{"sandbox/quiet.cc": source}),
            'sandbox/quiet.cc:9: sandbox/ may not include "api/thatch.capnp.h" (sandbox/ may include: base/)',
            "layers: 9 files, 1 include(s) crossing docs/architecture.md's table, 0 folder(s) missing from it")

    def test_the_doc_can_be_elsewhere(self):
        files = dict(CLEAN)
        del files["docs/architecture.md"]
        with tempfile.TemporaryDirectory() as elsewhere:
            doc = os.path.join(elsewhere, "layers.md")
            with open(doc, "w") as f:
                f.write(DOC)
            status, output = self.check(files, "--doc", doc)
        self.assertEqual((status, output), (0, f"layers: 8 files, no include crosses {doc}'s table\n"))

    def test_the_projects_own_table_is_readable(self):
        files = dict(CLEAN, **{"rootfs/plan.h": '#include "sandbox/spec.h"\n',
                               "run/main.cc": '#include "rootfs/plan.h"\n'})
        del files["docs/architecture.md"]
        status, output = self.check(files, "--doc", os.path.join(REPO, "docs", "architecture.md"))
        self.assertEqual(status, 0, output)


if __name__ == "__main__":
    unittest.main()
