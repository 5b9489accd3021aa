"""scripts/tune-host against a fake tree (DIR/proc/sys, DIR/etc, DIR/usr): this
host's sysctls are never touched. The figures come from the built thatchd
(--host-tuning), as on a real host."""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts/tune-host"
THATCHD = REPO / os.environ.get("BUILD", "build") / "bin/thatchd"

# A host that falls short of 2,000 sandboxes in some limits and not in others.
SYSCTLS = {
    "kernel.pid_max": 4096,
    "kernel.threads-max": 192734,
    "fs.nr_open": 1048576,
    "fs.file-max": 9223372036854775807,
    "vm.max_map_count": 2000,
    "user.max_user_namespaces": 1024,
    "user.max_pid_namespaces": 96367,
    "user.max_mnt_namespaces": 96367,
    "user.max_ipc_namespaces": 96367,
    "user.max_uts_namespaces": 96367,
    "user.max_net_namespaces": 1024,
    "user.max_cgroup_namespaces": 96367,
    "net.unix.max_dgram_qlen": 10,
}


def snapshot(root):
    """Every file under root with its contents."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


class TuneHost(unittest.TestCase):
    def setUp(self):
        self.assertTrue(THATCHD.is_file(), f"{THATCHD} is not built")
        self.temp = tempfile.TemporaryDirectory(prefix="thatch-tune-host-")
        self.root = Path(self.temp.name) / "root"
        for key, value in SYSCTLS.items():
            path = self.root / "proc/sys" / key.replace(".", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{value}\n")
        self.config = Path(self.temp.name) / "thatchd.toml"
        self.caps(2000)

    def tearDown(self):
        self.temp.cleanup()

    def caps(self, sandboxes):
        self.config.write_text(f"[host]\nmax_sandboxes = {sandboxes}\n")
        out = subprocess.run([str(THATCHD), "--host-tuning", "--config", str(self.config)],
                             capture_output=True, text=True, check=True).stdout
        self.needed = {k.strip(): int(v) for k, v in (l.split("=") for l in out.splitlines() if "=" in l and not l.startswith("#"))}

    def tune(self, *args):
        result = subprocess.run([str(SCRIPT), "--root", str(self.root), "--thatchd", str(THATCHD),
                                 "--config", str(self.config), *args], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def sysctl(self, key):
        return int((self.root / "proc/sys" / key.replace(".", "/")).read_text())

    def install_unit(self, limit):
        unit = self.root / "usr/local/lib/systemd/system/thatchd.service"
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(f"[Service]\nExecStart=/usr/local/bin/thatchd\nLimitNOFILE={limit}\n")

    def test_a_dry_run_changes_nothing_and_says_what_it_would(self):
        before = snapshot(self.root)
        out = self.tune("--dry-run")
        self.assertEqual(snapshot(self.root), before)
        self.assertIn(f"would set vm.max_map_count = {self.needed['vm.max_map_count']} (now 2000)", out)
        self.assertIn(f"would set net.unix.max_dgram_qlen = 512 (now 10)", out)
        self.assertNotIn("set fs.nr_open", out)

    def test_a_run_raises_what_is_short_and_never_lowers(self):
        out = self.tune()
        raised = {"kernel.pid_max", "vm.max_map_count", "user.max_user_namespaces", "user.max_net_namespaces",
                  "net.unix.max_dgram_qlen"}
        for key in raised:
            self.assertGreater(self.needed[key], SYSCTLS[key], key)
            self.assertEqual(self.sysctl(key), self.needed[key], key)
            self.assertIn(f"set {key} = {self.needed[key]}", out)
        for key in set(SYSCTLS) - raised:
            self.assertEqual(self.sysctl(key), SYSCTLS[key], f"{key} was higher and must stay")
        conf = (self.root / "etc/sysctl.d/60-thatch.conf").read_text()
        for key in raised:
            self.assertIn(f"\n{key} = {self.needed[key]}\n", conf)
        self.assertNotIn("fs.file-max", conf)
        saved = (self.root / "etc/sysctl.d/60-thatch.conf.saved").read_text()
        self.assertIn("\nvm.max_map_count = 2000\n", saved)

    def test_a_second_run_has_nothing_to_change(self):
        self.tune()
        after_first = snapshot(self.root)
        self.assertIn("nothing to change", self.tune())
        self.assertEqual(snapshot(self.root), after_first)

    def test_undo_restores_exactly(self):
        before = snapshot(self.root)
        self.install_unit(1024)
        with_unit = snapshot(self.root)
        self.tune()
        self.caps(4000)  # a second run for larger caps raises further; undo goes back to the first values
        self.tune()
        self.assertEqual(self.sysctl("vm.max_map_count"), self.needed["vm.max_map_count"])
        self.assertNotEqual(snapshot(self.root), with_unit)
        dry = self.tune("--undo", "--dry-run")
        self.assertIn("would restore vm.max_map_count = 2000", dry)
        self.assertIn("would remove /etc/systemd/system/thatchd.service.d/60-thatch-limits.conf", dry)
        out = self.tune("--undo")
        self.assertIn("restored kernel.pid_max = 4096", out)
        self.assertEqual(snapshot(self.root), with_unit)
        self.assertFalse((self.root / "etc/systemd/system/thatchd.service.d").exists())
        self.assertIn("nothing to undo", self.tune("--undo"))
        (self.root / "usr/local/lib/systemd/system/thatchd.service").unlink()
        self.assertEqual(snapshot(self.root), before)

    def test_the_unit_gets_a_drop_in_only_when_it_allows_too_few_files(self):
        self.install_unit(65536)  # what the shipped unit says: enough for 2,000
        self.tune()
        dropin = self.root / "etc/systemd/system/thatchd.service.d/60-thatch-limits.conf"
        self.assertFalse(dropin.exists())
        self.caps(20000)
        self.assertGreater(self.needed["LimitNOFILE"], 65536)
        out = self.tune()
        self.assertIn(f"LimitNOFILE={self.needed['LimitNOFILE']}", dropin.read_text())
        self.assertIn("daemon-reload", out)
        self.assertIn("nothing to change", self.tune())

    def test_without_a_unit_the_file_limit_is_left_to_thatchd(self):
        out = self.tune()
        self.assertIn("no thatchd.service installed", out)
        self.assertFalse((self.root / "etc/systemd").exists())

    def test_a_bad_config_is_refused_with_thatchds_reason(self):
        self.config.write_text("[host]\nmax_sandboxes = -3\n")
        before = snapshot(self.root)
        result = subprocess.run([str(SCRIPT), "--root", str(self.root), "--thatchd", str(THATCHD),
                                 "--config", str(self.config)], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("max_sandboxes", result.stderr)
        self.assertEqual(snapshot(self.root), before)

    def test_a_sysctl_that_is_not_a_number_is_named(self):
        (self.root / "proc/sys/vm/max_map_count").write_text("lots\n")
        before = snapshot(self.root)
        result = subprocess.run([str(SCRIPT), "--root", str(self.root), "--thatchd", str(THATCHD),
                                 "--config", str(self.config)], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("vm/max_map_count: not a number", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(snapshot(self.root), before)


if __name__ == "__main__":
    unittest.main()
