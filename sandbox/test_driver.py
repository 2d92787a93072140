#!/usr/bin/env python3
"""Protocol tests for sandbox/driver.py (plain unittest, also collected by pytest).

By default the driver runs inside the built image, set up like production (read-only rootfs,
tmpfs /tmp and /mnt/data, no network, uid 10001):

    python3 sandbox/test_driver.py                       # image: $ASSISTD_SANDBOX_IMAGE or assistd-sandbox:latest
    ASSISTD_TEST_HOST=1 python3 sandbox/test_driver.py   # host python3; library tests are skipped
"""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest")
ON_HOST = os.environ.get("ASSISTD_TEST_HOST") == "1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Driver:
    """One driver process and a blocking JSON-lines client for it."""

    def __init__(self):
        self.stderr = tempfile.TemporaryFile()
        env = None
        if ON_HOST:
            self.data_dir = tempfile.mkdtemp(prefix="assistd-data-")
            env = dict(os.environ, ASSISTD_DATA_DIR=self.data_dir)
            command = ["python3", os.path.join(HERE, "driver.py")]
        else:
            self.data_dir = "/mnt/data"
            command = ["docker", "run", "-i", "--rm", "--init", "--network", "none", "--read-only",
                       "--tmpfs", "/tmp", "--tmpfs", "/mnt/data:uid=10001,gid=10001",
                       IMAGE, "python3", "/opt/assistd/driver.py"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.buffer = b""
        self.ready = self.read(timeout=60)
        self.ready_after = time.monotonic() - self.started

    def read(self, timeout=30):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no reply from the driver; its stderr: {self.driver_stderr()}")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError(f"driver exited; its stderr: {self.driver_stderr()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def run(self, code, timeout=10, max_output=20000, wait=30):
        self.send({"type": "exec", "id": f"req{time.monotonic_ns()}", "code": code,
                   "timeout": timeout, "max_output": max_output})
        reply = self.read(wait)
        assert reply["type"] == "result", reply
        return reply

    def driver_stderr(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        if ON_HOST:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def has_host_module(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


needs_libraries = unittest.skipIf(ON_HOST and not has_host_module("matplotlib"),
                                  "numpy/pandas/matplotlib are not installed on this host")


class DriverProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.driver = Driver()

    @classmethod
    def tearDownClass(cls):
        cls.driver.close()

    def run_code(self, code, **kwargs):
        return self.driver.run(code, **kwargs)

    def assert_ok(self, reply):
        self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])

    def test_ready_line_carries_the_pid(self):
        self.assertEqual(self.driver.ready["type"], "ready")
        self.assertIsInstance(self.driver.ready["pid"], int)

    def test_result_has_every_field_and_echoes_the_id(self):
        self.driver.send({"type": "exec", "id": "abc", "code": "pass", "timeout": 5, "max_output": 100})
        reply = self.driver.read()
        self.assertEqual(reply["id"], "abc")
        self.assertEqual(set(reply), {"type", "id", "stdout", "stderr", "output_truncated", "result",
                                      "error", "images", "files", "timed_out", "duration_ms", "processes_left"})

    def test_state_persists_between_execs(self):
        self.assert_ok(self.run_code("persisted = 41"))
        self.assertEqual(self.run_code("persisted + 1")["result"], "42")

    def test_trailing_expression_is_shown_like_a_notebook(self):
        self.assertEqual(self.run_code("x = 2\nx * 21")["result"], "42")
        self.assertEqual(self.run_code("'a' + 'b'")["result"], "'ab'")
        self.assertIsNone(self.run_code("None")["result"])
        self.assertIsNone(self.run_code("y = 3")["result"])
        self.assertIsNone(self.run_code("print('hi')")["result"])
        self.assertIsNone(self.run_code("1 + 1;")["result"])

    def test_user_code_runs_as_main_and_can_pickle_its_classes(self):
        reply = self.run_code("import pickle\nclass Point:\n    pass\n"
                              "type(pickle.loads(pickle.dumps(Point()))).__name__, __name__")
        self.assert_ok(reply)
        self.assertEqual(reply["result"], "('Point', '__main__')")

    def test_stdout_and_stderr_are_captured_at_fd_level(self):
        reply = self.run_code("import os, sys\nprint('out')\nsys.stderr.write('err\\n')\n"
                              "os.system('echo from-shell; echo shell-err >&2')\nprint('héllo 你好')")
        self.assert_ok(reply)
        self.assertEqual(reply["stdout"], "out\nfrom-shell\nhéllo 你好\n")
        self.assertEqual(reply["stderr"], "err\nshell-err\n")
        self.assertFalse(reply["output_truncated"])

    def test_stdin_is_empty(self):
        reply = self.run_code("input()")
        self.assertEqual(reply["error"]["ename"], "EOFError")

    def test_traceback_shows_user_frames_only(self):
        reply = self.run_code("def f():\n    return 1 / 0\n\nf()")
        error = reply["error"]
        self.assertEqual(error["ename"], "ZeroDivisionError")
        self.assertEqual(error["evalue"], "division by zero")
        self.assertIn("return 1 / 0", error["traceback"])
        self.assertIn("ZeroDivisionError: division by zero", error["traceback"])
        self.assertNotIn("driver.py", error["traceback"])

    def test_syntax_error_is_reported(self):
        error = self.run_code("x = (")["error"]
        self.assertEqual(error["ename"], "SyntaxError")
        self.assertNotIn("driver.py", error["traceback"])
        self.assertNotIn("ast.py", error["traceback"])

    def test_sys_exit_is_an_error_and_the_driver_survives(self):
        error = self.run_code("import sys\nsys.exit(3)")["error"]
        self.assertEqual((error["ename"], error["evalue"]), ("SystemExit", "3"))
        self.assertEqual(self.run_code("print('alive')")["stdout"], "alive\n")

    def test_closing_or_redirecting_stdout_does_not_break_the_driver(self):
        self.run_code("import sys, io\nsys.stdout.close()")
        self.assertEqual(self.run_code("print('a')")["stdout"], "a\n")
        self.run_code("import sys, io\nsys.stdout = io.StringIO()")
        self.assertEqual(self.run_code("print('b')")["stdout"], "b\n")
        self.run_code("import os\nos.close(1)\nos.close(2)")
        self.assertEqual(self.run_code("import os\nprint('c')\nos.system('echo d')")["stdout"], "c\nd\n")

    def test_timeout_interrupts_user_code_and_the_next_exec_works(self):
        started = time.monotonic()
        reply = self.run_code("import time\ntime.sleep(30)", timeout=1)
        self.assertLess(time.monotonic() - started, 5)
        self.assertTrue(reply["timed_out"])
        self.assertEqual(reply["error"]["ename"], "TimeoutError")
        self.assertIn("time.sleep(30)", reply["error"]["traceback"])
        self.assertEqual(self.run_code("print(1)")["stdout"], "1\n")

    def test_timeout_is_not_swallowed_by_except_exception(self):
        reply = self.run_code("import time\nwhile True:\n    try:\n        time.sleep(1)\n"
                              "    except Exception:\n        pass", timeout=1)
        self.assertTrue(reply["timed_out"])

    def test_timeout_stops_a_tight_python_loop(self):
        reply = self.run_code("while True:\n    pass", timeout=1)
        self.assertTrue(reply["timed_out"])
        self.assertEqual(self.run_code("'next'")["result"], "'next'")

    def test_sigint_interrupts_user_code_and_is_ignored_between_execs(self):
        reply = self.run_code("import os, signal, threading, time\n"
                              "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
                              "time.sleep(20)", timeout=30)
        self.assertEqual(reply["error"]["ename"], "KeyboardInterrupt")
        self.assertFalse(reply["timed_out"])
        self.run_code("import os, signal, threading\n"
                      "threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()")
        time.sleep(0.5)
        self.assertEqual(self.run_code("print('still here')")["stdout"], "still here\n")

    def test_children_a_cell_never_waited_for_are_reaped_before_the_next(self):
        self.driver.run("import os\nfor _ in range(5):\n    if os.fork() == 0:\n        os._exit(0)")
        time.sleep(0.3)
        reply = self.driver.run(
            "import os\n"
            "me = str(os.getpid())\n"
            "zombies = 0\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
            "    except OSError:\n"
            "        continue\n"
            "    zombies += fields[0] == 'Z' and fields[1] == me\n"
            "print(zombies)")
        self.assertEqual(reply["stdout"].strip(), "0", reply)

    def test_processes_a_cell_leaves_running_are_counted(self):
        self.assertEqual(self.driver.run("x = 1")["processes_left"], 0)
        left = self.driver.run("import subprocess\np = subprocess.Popen(['sleep', '30'])")
        self.assertGreaterEqual(left["processes_left"], 1, left)
        self.driver.run("p.kill(); p.wait()")
        self.assertEqual(self.driver.run("y = 2")["processes_left"], 0)

    def test_output_is_truncated_with_a_marker(self):
        reply = self.run_code("print('x' * 100000)\nimport sys\nsys.stderr.write('E' * 100)",
                              max_output=1000)
        self.assertTrue(reply["output_truncated"])
        self.assertIn("output truncated", reply["stdout"])
        self.assertEqual(reply["stderr"], "E" * 100)
        self.assertLess(len(reply["stdout"]), 1100)

    def test_huge_output_from_a_subprocess_does_not_deadlock(self):
        reply = self.run_code("import os\nos.system('head -c 20000000 /dev/zero | tr \"\\\\0\" a')",
                              max_output=5000)
        self.assertTrue(reply["output_truncated"])
        self.assertIn("bytes omitted", reply["stdout"])

    def test_long_trailing_result_is_capped(self):
        reply = self.run_code("'y' * 50000", max_output=1000)
        self.assertIn("output truncated", reply["result"])
        self.assertLess(len(reply["result"]), 1100)

    def test_new_and_changed_files_are_listed(self):
        data = self.driver.data_dir
        reply = self.run_code(f"import os\nos.makedirs('{data}/sub', exist_ok=True)\n"
                              f"open('{data}/out.csv', 'w').write('a,b\\n1,2\\n')\n"
                              f"open('{data}/sub/n.txt', 'w').write('x')")
        self.assert_ok(reply)
        self.assertEqual(reply["files"], [{"path": f"{data}/out.csv", "size": 8},
                                          {"path": f"{data}/sub/n.txt", "size": 1}])
        self.assertEqual(self.run_code("1")["files"], [])
        reply = self.run_code(f"open('{data}/out.csv', 'a').write('3,4\\n')")
        self.assertEqual(reply["files"], [{"path": f"{data}/out.csv", "size": 12}])

    def test_malformed_requests_get_an_error_and_the_driver_carries_on(self):
        self.driver.send({"type": "bogus", "id": "b1"})
        self.assertEqual(self.driver.read(), {"type": "error", "id": "b1",
                                              "message": "unknown request type 'bogus'"})
        self.driver.proc.stdin.write(b"not json\n")
        self.driver.proc.stdin.flush()
        self.assertEqual(self.driver.read()["type"], "error")
        self.assertEqual(self.run_code("6 * 7")["result"], "42")

    @needs_libraries
    def test_dataframe_trailing_expression_is_plain_text(self):
        reply = self.run_code("import pandas as pd\npd.DataFrame({'col': [1, 2]})")
        self.assert_ok(reply)
        self.assertIn("col", reply["result"])

    @needs_libraries
    def test_figures_are_returned_as_png(self):
        reply = self.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                              "plt.figure()\nplt.bar(['a', 'b'], [1, 2])\nplt.title('中文 title')")
        self.assert_ok(reply)
        self.assertEqual(len(reply["images"]), 2)  # one shown, one left open
        for image in reply["images"]:
            self.assertTrue(base64.b64decode(image).startswith(PNG_SIGNATURE))
        self.assertNotIn("missing from current font", reply["stderr"])
        self.assertEqual(self.run_code("import matplotlib.pyplot as plt\nplt.get_fignums()")["result"], "[]")

    @needs_libraries
    def test_images_are_capped_per_exec(self):
        reply = self.run_code("import matplotlib.pyplot as plt\nfor i in range(12):\n"
                              "    plt.figure()\n    plt.plot([i, i + 1])")
        self.assertEqual(len(reply["images"]), 10)
        self.assertIn("2 more figure(s) not shown", reply["stderr"])

    @needs_libraries
    def test_empty_figures_are_not_returned(self):
        reply = self.run_code("import matplotlib.pyplot as plt\nplt.figure()\nNone")
        self.assertEqual(reply["images"], [])


@unittest.skipIf(ON_HOST, "checks the image")
class ImageTest(unittest.TestCase):
    def test_libraries_import_as_uid_10001(self):
        driver = Driver()
        try:
            reply = driver.run("import os, numpy, pandas, matplotlib, scipy, sympy, seaborn, openpyxl, "
                               "xlrd, docx, pptx, pypdf, PIL, bs4, lxml, tabulate\n"
                               "os.getuid(), os.getgid(), os.getcwd()", timeout=60)
            self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
            self.assertEqual(reply["result"], "(10001, 10001, '/mnt/data')")
        finally:
            driver.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
