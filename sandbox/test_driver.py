#!/usr/bin/env python3
"""Protocol tests for the sandbox/driver package (plain unittest, also collected by pytest).

By default the driver runs inside the built image, set up like production (read-only rootfs,
tmpfs /tmp and /mnt/data, no network, uid 10001):

    python3 sandbox/test_driver.py                       # image: $ASSISTD_SANDBOX_IMAGE or assistd-sandbox:latest
    ASSISTD_TEST_HOST=1 python3 sandbox/test_driver.py   # host python3; library tests are skipped
"""

import base64
import json
import os
import re
import select
import shutil
import signal
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

    def __init__(self, claimed_with=None):
        """claimed_with: code sent before the driver is ready, as the server does for a session
        that waits for a new sandbox (its reply is in first_reply)."""
        self.stderr = tempfile.TemporaryFile()
        env = None
        if ON_HOST:
            self.data_dir = tempfile.mkdtemp(prefix="assistd-data-")
            env = dict(os.environ, ASSISTD_DATA_DIR=self.data_dir)
            command = ["python3", os.path.join(HERE, "driver")]
        else:
            self.data_dir = "/mnt/data"
            self.name = f"assistd-test-driver-{os.getpid()}-{time.monotonic_ns()}"
            command = ["docker", "run", "-i", "--rm", "--init", "--name", self.name, "--network", "none", "--read-only",
                       "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=256m,mode=1777", "--tmpfs", "/mnt/data:uid=10001,gid=10001",
                       IMAGE, "python3", "/opt/assistd/driver"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.buffer = b""
        if claimed_with is not None:
            self.send({"type": "exec", "id": "claim", "code": claimed_with, "timeout": 60, "max_output": 20000})
        self.ready = self.read(timeout=60)
        self.ready_after = time.monotonic() - self.started
        self.first_reply = self.read(timeout=90) if claimed_with is not None else None

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

    def mapped(self):
        """The files the driver process has mapped (its shared libraries among them)."""
        if ON_HOST:
            with open(f"/proc/{self.proc.pid}/maps") as f:
                return f.read()
        return subprocess.run(["docker", "exec", self.name, "cat", f"/proc/{self.ready['pid']}/maps"],
                              capture_output=True, text=True, check=True).stdout

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
                                      "error", "images", "files", "removed", "timed_out", "duration_ms",
                                      "processes_left"})

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
        self.assertNotIn("/driver/", error["traceback"])

    def test_syntax_error_is_reported(self):
        error = self.run_code("x = (")["error"]
        self.assertEqual(error["ename"], "SyntaxError")
        self.assertNotIn("/driver/", error["traceback"])
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
        self.assertNotIn("/driver/", reply["error"]["traceback"])
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

    def test_a_daemon_that_double_forks_is_counted_until_it_is_gone(self):
        left = self.driver.run(
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        open('/tmp/daemon.pid', 'w').write(str(os.getpid()))\n"
            "        time.sleep(30)\n"
            "    os._exit(0)\n"
            "time.sleep(0.5)")
        self.assertGreaterEqual(left["processes_left"], 1, left)
        self.driver.run("import signal\nos.kill(int(open('/tmp/daemon.pid').read()), signal.SIGKILL)\n"
                        "time.sleep(0.2)")
        self.assertEqual(self.driver.run("z = 3")["processes_left"], 0)

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

    def test_removed_and_renamed_files_are_listed_as_removed(self):
        data = self.driver.data_dir
        self.assert_ok(self.run_code(f"import os\nos.makedirs('{data}/gone', exist_ok=True)\n"
                                     f"for n in ('rm-a.txt', 'rm-b.txt', 'gone/c.txt'):\n"
                                     f"    open(f'{data}/{{n}}', 'w').write(n)"))
        reply = self.run_code(f"import os, shutil\nos.remove('{data}/rm-a.txt')\n"
                              f"os.rename('{data}/rm-b.txt', '{data}/rm-d.txt')\nshutil.rmtree('{data}/gone')")
        self.assert_ok(reply)
        self.assertEqual(reply["removed"], [f"{data}/gone/c.txt", f"{data}/rm-a.txt", f"{data}/rm-b.txt"])
        self.assertEqual(reply["files"], [{"path": f"{data}/rm-d.txt", "size": 8}])
        self.assertEqual(self.run_code("1")["removed"], [])

    def test_output_written_between_cells_is_not_the_next_cells(self):
        self.assert_ok(self.run_code(
            "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 0.2; echo late; echo err >&2'])"))
        time.sleep(0.6)
        reply = self.run_code("print('clean')")
        self.assertEqual((reply["stdout"], reply["stderr"]), ("clean\n", ""))

    def test_a_file_added_between_cells_is_not_the_next_cells(self):
        # As when the host uploads a file between two cells (here a thread of the first cell).
        d = self.driver.data_dir
        self.assert_ok(self.run_code(
            "import threading, time\n"
            f"threading.Timer(0.2, lambda: open('{d}/between.txt', 'w').write('x')).start()"))
        time.sleep(0.6)
        reply = self.run_code(f"import os\nos.path.exists('{d}/between.txt')")
        self.assertEqual(reply["result"], "True")
        self.assertEqual(reply["files"], [])
        reply = self.run_code(f"open('{d}/between.txt', 'a').write('y')")
        self.assertEqual(reply["files"], [{"path": f"{d}/between.txt", "size": 2}])

    def test_symbolic_links_are_not_listed_or_followed(self):
        d = self.driver.data_dir
        reply = self.run_code(f"import os\nos.makedirs('{d}/linked/real', exist_ok=True)\n"
                              f"open('{d}/linked/real/f.txt', 'w').write('abc')\n"
                              f"os.symlink('{d}/linked/real/f.txt', '{d}/linked/to-file')\n"
                              f"os.symlink('{d}/linked/real', '{d}/linked/to-dir')")
        self.assert_ok(reply)
        self.assertEqual(reply["files"], [{"path": f"{d}/linked/real/f.txt", "size": 3}])

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
        self.assertIn("2 more image(s) not shown", reply["stderr"])

    @needs_libraries
    def test_empty_figures_are_not_returned(self):
        reply = self.run_code("import matplotlib.pyplot as plt\nplt.figure()\nNone")
        self.assertEqual(reply["images"], [])


LOADED = "import sys\nsorted(m for m in ('numpy', 'pandas', 'matplotlib.pyplot') if m in sys.modules)"


@needs_libraries
class LibrariesTest(unittest.TestCase):
    """numpy, pandas and pyplot are imported while a sandbox waits unclaimed (a warm pool's), not
    by one launched for a session already waiting; figures work whoever imports pyplot."""

    def test_an_unclaimed_sandbox_imports_the_libraries_before_its_first_cell(self):
        driver = Driver()
        try:
            # Watched from outside (a request would claim the sandbox): pyplot's import is under
            # way once matplotlib's font library is mapped. It waits while the host is busy.
            deadline = time.monotonic() + 60
            while "ft2font" not in driver.mapped():
                self.assertLess(time.monotonic(), deadline, "the driver never imported pyplot")
                time.sleep(0.2)
            reply = driver.run(LOADED)
            self.assertEqual(reply["result"], "['matplotlib.pyplot', 'numpy', 'pandas']")
        finally:
            driver.close()

    def test_a_sandbox_claimed_at_once_imports_only_what_its_cells_use(self):
        driver = Driver(claimed_with=LOADED)
        try:
            self.assertEqual(driver.first_reply["result"], "[]", driver.first_reply)
            time.sleep(2)
            self.assertEqual(driver.run(LOADED)["result"], "[]")
            # pyplot imported by a cell is set up as the prewarm's would be: show() returns the
            # figure, the CJK fallback font is on, a figure left open comes back at the end.
            reply = driver.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n"
                               "plt.figure()\nplt.bar(['a'], [1])\nimport matplotlib\n"
                               "print(matplotlib.rcParams['font.family'], matplotlib.get_backend())")
            self.assertIsNone(reply["error"], reply["error"])
            self.assertEqual(len(reply["images"]), 2)
            self.assertIn("agg", reply["stdout"].lower())
            if not ON_HOST:
                self.assertIn("WenQuanYi Micro Hei", reply["stdout"])
            self.assertEqual(driver.run("plt.get_fignums()")["result"], "[]")
            # A Figure made without pyplot is still shown as PNG.
            reply = driver.run("from matplotlib.figure import Figure\nf = Figure()\nf.add_subplot().plot([1])\nf")
            self.assertEqual(len(reply["images"]), 1)
        finally:
            driver.close()


class StreamedExecTest(unittest.TestCase):
    """exec with "stream": true (the E2B surface): output as it is written, bundles whole, and the
    Node.js context of "language": "javascript"."""

    @classmethod
    def setUpClass(cls):
        cls.driver = Driver()

    @classmethod
    def tearDownClass(cls):
        cls.driver.close()

    def streamed(self, code, **fields):
        request_id = f"req{time.monotonic_ns()}"
        self.driver.send({"type": "exec", "id": request_id, "code": code, "timeout": 20,
                          "max_output": 20000, "stream": True, **fields})
        outputs = []
        while True:
            message = self.driver.read(60)
            self.assertEqual(message["id"], request_id)
            if message["type"] == "result":
                return outputs, message
            self.assertEqual(message["type"], "output")
            outputs.append((time.monotonic(), message))

    def test_output_arrives_while_the_cell_runs(self):
        started = time.monotonic()
        outputs, reply = self.streamed("import time\nprint('one', flush=True)\ntime.sleep(1.5)\nprint('two')\n6 * 7")
        ended = time.monotonic()
        texts = [m.get("text") for _, m in outputs if m["name"] == "stdout"]
        self.assertEqual("".join(texts), "one\ntwo\n")
        first = next(at for at, m in outputs if m["name"] == "stdout")
        self.assertLess(first - started, ended - started - 1.0)
        main = [m for _, m in outputs if m["name"] == "result" and m["main"]]
        self.assertEqual(main[0]["bundle"]["text/plain"], "42")
        self.assertEqual((reply["stdout"], reply["result"]), ("", None))

    def test_a_line_written_in_pieces_arrives_whole_and_an_unfinished_one_is_not_kept_back(self):
        # print writes its text and its newline apart; a poll between them must not split the line.
        code = ("import sys, time\nfor n in range(30):\n    sys.stdout.write(f'line {n}')\n"
                "    time.sleep(0.005)\n    sys.stdout.write('\\n')\n"
                "sys.stdout.write('50%'); sys.stdout.flush(); time.sleep(1.0); print(' done')")
        outputs, _ = self.streamed(code)
        texts = [m["text"] for _, m in outputs if m["name"] == "stdout"]
        self.assertEqual("".join(texts), "".join(f"line {n}\n" for n in range(30)) + "50% done\n")
        for text in texts[:-1]:
            self.assertTrue(text.endswith("\n") or text == "50%", texts)
        self.assertIn("50%", texts, "an unfinished line waits at most a moment, not until the cell ends")

    @unittest.skipIf(ON_HOST, "needs the image (Node.js)")
    def test_javascript_keeps_its_state_and_prints(self):
        self.streamed("const n = 20\nlet m = 1", language="javascript")
        outputs, reply = self.streamed("console.log('js', n + m); await Promise.resolve(n * 2)",
                                       language="javascript")
        self.assertIsNone(reply["error"])
        self.assertIn("js 21\n", "".join(m.get("text", "") for _, m in outputs if m["name"] == "stdout"))
        self.assertEqual([m["bundle"]["text/plain"] for _, m in outputs if m["name"] == "result"], ["40"])
        _, failed = self.streamed("undefinedName", language="javascript")
        self.assertEqual(failed["error"]["ename"], "ReferenceError")
        self.assertEqual(failed["processes_left"], 0)
        # The stack ends with the cell's own frames.
        self.assertIn("cell.js", failed["error"]["traceback"])
        self.assertNotIn("js_kernel", failed["error"]["traceback"])

    @unittest.skipIf(ON_HOST, "needs the image (Node.js)")
    def test_javascript_cells_may_use_any_top_level_name(self):
        # The kernel's own names (fs, vm, lines, send, ...) are not in the cells' scope.
        _, reply = self.streamed("const fs = require('fs'), vm = require('vm')\nlet lines = 2, send = 3, out = 4\n"
                                 "typeof fs.readFileSync + lines", language="javascript")
        self.assertIsNone(reply["error"], reply["error"])
        outputs, _ = self.streamed("lines + send + out", language="javascript")
        self.assertEqual([m["bundle"]["text/plain"] for _, m in outputs if m["name"] == "result"], ["9"])

    @unittest.skipIf(ON_HOST, "needs the image (Node.js)")
    def test_after_the_first_streamed_cell_the_javascript_context_starts_before_it_is_used(self):
        driver = Driver()
        self.addCleanup(driver.close)
        probe = ("import os\nprint(sum('js_kernel.js' in open(f'/proc/{p}/cmdline').read() "
                 "for p in os.listdir('/proc') if p.isdigit() and os.path.exists(f'/proc/{p}/cmdline')))")
        self.assertEqual(driver.run(probe)["stdout"], "0\n")  # not for the OpenAI surface's execs
        self.assertEqual(driver.run(probe)["stdout"], "0\n")
        driver.send({"type": "exec", "id": "s1", "code": "1", "timeout": 20, "max_output": 20000, "stream": True})
        while driver.read(60)["type"] != "result":
            pass
        reply = driver.run(probe)
        self.assertEqual(reply["stdout"], "1\n")
        self.assertEqual(reply["processes_left"], 0)


def png_size(b64):
    """(width, height) of a base64 PNG, from its IHDR chunk."""
    data = base64.b64decode(b64)
    assert data.startswith(PNG_SIGNATURE), data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


in_image = unittest.skipIf(ON_HOST, "needs the image (Node.js, cairosvg, pip settings)")

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">'
       '<rect width="40" height="30" fill="red"/></svg>')


class NotebookTest(unittest.TestCase):
    """Cells behave as in a Jupyter notebook (IPython)."""

    @classmethod
    def setUpClass(cls):
        cls.driver = Driver()

    @classmethod
    def tearDownClass(cls):
        cls.driver.close()

    def run_ok(self, code, **kwargs):
        reply = self.driver.run(code, **kwargs)
        self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
        return reply

    def test_out_and_underscore_hold_the_trailing_values(self):
        self.run_ok("21 * 2")
        self.assertEqual(self.run_ok("_ + 1")["result"], "43")
        self.assertEqual(self.run_ok("Out[max(Out)] * 2")["result"], "86")

    def test_in_and_the_input_names_hold_the_cells(self):
        self.run_ok("'first'")
        self.run_ok("'second'")
        reply = self.run_ok("n = get_ipython().execution_count\n"
                            "print(_i, _ii, In[-2], globals()[f'_i{n - 1}'], In[n][:1], sep='|')")
        self.assertEqual(reply["stdout"], "'second'|'first'|'second'|'second'|n\n")

    def test_display_shows_text_in_order_with_printed_output(self):
        reply = self.run_ok("print('before')\ndisplay('text', {'a': 1})\nprint('after')")
        self.assertEqual(reply["stdout"], "before\n'text'\n{'a': 1}\nafter\n")
        self.assertIsNone(reply["result"])

    def test_html_markdown_and_json_show_as_text(self):
        reply = self.run_ok("from IPython.display import HTML, Markdown, JSON, Latex\n"
                            "display(HTML('<p><b>bold</b> words</p><script>x()</script>'))\n"
                            "display(Markdown('# Title'))\n"
                            "display(JSON({'k': [1, 2]}))\n"
                            "display(Latex(r'$x^2$'))")
        out = reply["stdout"]
        self.assertIn("bold words", out)
        self.assertNotIn("<b>", out)
        self.assertNotIn("x()", out)
        self.assertIn("# Title", out)
        self.assertIn('"k": [', out)
        self.assertIn("$x^2$", out)
        self.assertNotIn("object>", out)

    @needs_libraries
    def test_display_of_a_dataframe_is_a_text_table(self):
        reply = self.run_ok("import pandas as pd\ndisplay(pd.DataFrame({'city': ['Oslo', 'Rome'], "
                            "'temp': [3, 18]}))")
        self.assertIn("city", reply["stdout"])
        self.assertIn("Rome", reply["stdout"])
        self.assertNotIn("<table", reply["stdout"])
        self.assertEqual(reply["images"], [])

    @needs_libraries
    def test_png_from_display_and_from_a_trailing_image(self):
        reply = self.run_ok("from PIL import Image\ndisplay(Image.new('RGB', (7, 5), 'blue'))\n"
                            "Image.new('RGB', (3, 2))")
        self.assertEqual([png_size(i) for i in reply["images"]], [(7, 5), (3, 2)])
        self.assertIsNone(reply["result"])

    @needs_libraries
    def test_jpeg_becomes_png(self):
        reply = self.run_ok("import io\nfrom PIL import Image\nfrom IPython.display import Image as I\n"
                            "buf = io.BytesIO()\nImage.new('RGB', (9, 4), 'green').save(buf, 'JPEG')\n"
                            "display(I(data=buf.getvalue(), format='jpeg'))")
        self.assertEqual([png_size(i) for i in reply["images"]], [(9, 4)])

    @in_image
    def test_svg_is_rasterised_to_png(self):
        reply = self.run_ok(f"from IPython.display import SVG\ndisplay(SVG({SVG!r}))\nSVG({SVG!r})")
        self.assertEqual([png_size(i) for i in reply["images"]], [(40, 30), (40, 30)])

    @needs_libraries
    def test_a_displayed_figure_is_returned_once(self):
        reply = self.run_ok("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                            "ax.plot([1, 2])\ndisplay(fig)")
        self.assertEqual(len(reply["images"]), 1)
        reply = self.run_ok("fig2, ax2 = plt.subplots()\nax2.plot([3, 1])\nfig2")
        self.assertEqual(len(reply["images"]), 1)
        self.assertIsNone(reply["result"])

    @needs_libraries
    def test_displayed_images_count_against_the_cap(self):
        reply = self.run_ok("from PIL import Image\nfor i in range(12):\n"
                            "    display(Image.new('RGB', (2, 2)))")
        self.assertEqual(len(reply["images"]), 10)
        self.assertIn("2 more image(s) not shown", reply["stderr"])

    def test_displayed_text_counts_against_the_output_cap(self):
        reply = self.driver.run("for i in range(200):\n    display('z' * 100)", max_output=1000)
        self.assertTrue(reply["output_truncated"])
        self.assertLess(len(reply["stdout"]), 1200)

    def test_shell_escapes(self):
        reply = self.run_ok("!echo hi $((40 + 2))\n!echo oops >&2")
        self.assertEqual(reply["stdout"], "hi 42\n")
        self.assertEqual(reply["stderr"], "oops\n")
        reply = self.run_ok("files = !printf 'a\\nb\\n'\nfiles")
        self.assertEqual(reply["result"], "['a', 'b']")
        self.assertEqual(self.run_ok("!!echo x")["result"], "['x']")
        self.assertEqual(self.run_ok("name = 'py'\n!echo {name}-var")["stdout"], "py-var\n")

    def test_bash_and_sh_cell_magics(self):
        reply = self.run_ok("%%bash\nfor i in 1 2; do echo line$i; done\necho err >&2")
        self.assertEqual(reply["stdout"], "line1\nline2\n")
        self.assertEqual(reply["stderr"], "err\n")
        self.assertEqual(self.run_ok("%%sh\necho from sh")["stdout"], "from sh\n")

    @in_image
    def test_node_runs_from_magics_shell_and_subprocess(self):
        self.assertEqual(self.run_ok("%%script node\nconsole.log([1, 2].map(x => x * 21))")["stdout"],
                         "[ 21, 42 ]\n")
        self.assertEqual(self.run_ok("!node -e 'console.log(process.version.startsWith(\"v\"))'")["stdout"],
                         "true\n")
        reply = self.run_ok("import subprocess\nr = subprocess.run(['node', '-e', 'console.log(6 * 7)'], "
                            "capture_output=True, text=True)\nprint(r.stdout.strip())")
        self.assertEqual(reply["stdout"], "42\n")
        self.run_ok(f"open('{self.driver.data_dir}/x.js', 'w').write('console.log(\"js file\", 1 + 2)')")
        self.assertEqual(self.run_ok(f"!node {self.driver.data_dir}/x.js")["stdout"], "js file 3\n")

    def test_writefile_cd_env_and_timeit(self):
        data = self.driver.data_dir
        reply = self.run_ok(f"%%writefile {data}/w.txt\nwritten\n")
        self.assertEqual(reply["files"], [{"path": f"{data}/w.txt", "size": 8}])
        reply = self.run_ok("import os\n%cd /tmp\nhere = os.getcwd()\n"
                            f"%cd {data}\nhere, os.getcwd()")
        self.assertEqual(reply["result"], repr(("/tmp", data)))
        reply = self.run_ok("%env ASSISTD_TEST_VAR=yes\nimport os\nos.environ['ASSISTD_TEST_VAR']")
        self.assertEqual(reply["result"], "'yes'")
        reply = self.run_ok("%timeit -n 5 -r 2 sum(range(100))")
        self.assertRegex(reply["stdout"], r"per loop \(mean ± std\. dev\. of 2 runs, 5 loops each\)")

    # The driver skips IPython's token transforms (a tokenizer in pure Python, most of IPython's
    # cost for a small cell) when a cell parses as Python. These tests hold it to IPython's own
    # behaviour: with a token transformer registered that never matches, every cell takes
    # IPython's path, and the replies must be the same.
    TOKENIZER_PATH = ("class NeverMatches:\n    @classmethod\n    def find(cls, tokens_by_line):\n"
                      "        return None\n\n"
                      "get_ipython().input_transformer_manager.token_transformers.append(NeverMatches)")
    FAST_PATH = "get_ipython().input_transformer_manager.token_transformers.remove(NeverMatches)"
    CELLS = [
        "x = 6\nx * 7",                        # trailing expression: result, Out, _
        "_ + 1",
        "print('a'); 'b'",
        "1 + 1;",                              # a trailing semicolon hides the value
        "def f(x):\n    return x / 0\n\nf(1)",  # an IPython traceback
        "x = (",                               # a syntax error
        "return 5",                            # parses, does not compile
        "  y = 1\n  y",                        # leading indentation, which IPython removes
        ">>> 2 * 3",                           # a pasted prompt
        "z = 1\n...",                          # `...` is a continuation prompt to IPython
        "In [3]: 4 * 5",                       # a pasted IPython prompt (also valid Python)
        "def g():\n    ...\n\ng()",            # ... as a body is not a prompt
        "a = 1\r\nb = 2\r\na + b",              # Windows line ends
        "pwd",                                 # an automagic on a line of its own
        "ls = 5",
        "ls",                                  # a magic's name, shadowed by a variable
        "from IPython.core.macro import Macro\nm = Macro('print(\"macro ran\")')",
        "m",                                   # a macro on a line of its own runs
        "import asyncio\nawait asyncio.sleep(0)\n'awaited'",  # top-level await
        "import warnings\nwarnings.warn('careful')\n7",
        "%env ASSISTD_PLAIN=1",
        "!echo shell",
    ]

    @staticmethod
    def comparable(reply):
        """The reply without what tells executions apart: the cell's number in its name."""
        def unnumbered(text):
            return re.sub(r"In ?\[\d+\]|ipython-input-\d+-[0-9a-f]+", "N", text)

        error = reply["error"] and {key: unnumbered(value) for key, value in reply["error"].items()}
        return {key: reply[key] for key in ("stdout", "result", "images", "files")} | {
            "error": error, "stderr": unnumbered(reply["stderr"])}

    def test_plain_python_cells_behave_as_through_ipythons_tokenizer(self):
        fast = [self.comparable(self.driver.run(cell)) for cell in self.CELLS]
        self.run_ok(self.TOKENIZER_PATH)
        try:
            slow = [self.comparable(self.driver.run(cell)) for cell in self.CELLS]
        finally:
            self.run_ok(self.FAST_PATH)
        for cell, fast_reply, slow_reply in zip(self.CELLS, fast, slow):
            self.assertEqual(fast_reply, slow_reply, cell)
        reply = dict(zip(self.CELLS, fast))
        self.assertEqual(reply["_ + 1"]["result"], "43")
        traceback = reply["def f(x):\n    return x / 0\n\nf(1)"]["error"]
        self.assertEqual(traceback["ename"], "ZeroDivisionError")
        self.assertIn("return x / 0", traceback["traceback"])
        self.assertEqual(reply["x = ("]["error"]["ename"], "SyntaxError")
        self.assertEqual(reply["  y = 1\n  y"]["result"], "1")
        self.assertEqual(reply[">>> 2 * 3"]["result"], "6")
        self.assertIsNone(reply["z = 1\n..."]["result"])
        self.assertEqual(reply["In [3]: 4 * 5"]["result"], "20")
        self.assertEqual(reply["a = 1\r\nb = 2\r\na + b"]["result"], "3")
        self.assertEqual(reply["pwd"]["result"], repr(self.driver.data_dir))
        self.assertEqual(reply["ls"]["result"], "5")
        self.assertEqual(reply["m"]["stdout"], "macro ran\n")
        self.assertEqual(reply["import asyncio\nawait asyncio.sleep(0)\n'awaited'"]["result"],
                         "'awaited'")
        self.assertIn("UserWarning: careful",
                      reply["import warnings\nwarnings.warn('careful')\n7"]["stderr"])

    def test_only_cells_with_ipython_syntax_are_tokenized(self):
        self.run_ok("import IPython.core.inputtransformer2 as it2\n"
                    "tokenized = []\n"
                    "untouched = it2.make_tokens_by_line\n"
                    "it2.make_tokens_by_line = lambda lines: tokenized.append(1) or untouched(lines)")
        try:
            self.run_ok("a = [1, 2]\nb = {'k': a}\nlen(b['k']) % 2 != 0")
            self.assertEqual(self.run_ok("len(tokenized)")["result"], "0")
            self.run_ok("!true\nc = 1")
            self.assertNotEqual(self.run_ok("len(tokenized)")["result"], "0")
        finally:
            self.run_ok("it2.make_tokens_by_line = untouched")

    def test_only_one_line_cells_that_may_be_magics_are_prefiltered(self):
        self.run_ok("prefilter = get_ipython().prefilter_manager\n"
                    "prefiltered = []\n"
                    "prefilter.prefilter_lines = lambda lines, *args, _full=prefilter.prefilter_lines:"
                    " prefiltered.append(lines) or _full(lines, *args)")
        try:
            self.run_ok("len([1, 2])")
            self.run_ok("print('not a magic')")
            self.assertEqual(self.run_ok("pwd")["result"], repr(self.driver.data_dir))
            self.assertEqual(self.run_ok("prefiltered")["result"], "['pwd\\n']")
        finally:
            self.run_ok("del prefilter.prefilter_lines")

    def test_tracebacks_are_ipython_style_without_escape_codes(self):
        reply = self.driver.run("def f(x):\n    return x / 0\n\nf(1)")
        error = reply["error"]
        self.assertEqual((error["ename"], error["evalue"]), ("ZeroDivisionError", "division by zero"))
        self.assertIn("---->", error["traceback"])
        self.assertIn("return x / 0", error["traceback"])
        self.assertNotIn("\x1b", error["traceback"])
        self.assertNotIn("/driver/", error["traceback"])
        self.assertEqual(reply["stdout"] + reply["stderr"], "")
        error = self.driver.run("%undefined_magic_xyz")["error"]
        self.assertEqual(error["ename"], "UsageError")

    def test_the_user_site_is_on_the_path_at_once(self):
        reply = self.run_ok("import site, os\np = site.getusersitepackages()\n"
                            "open(os.path.join(p, 'kernel_probe_mod.py'), 'w').write('X = 5')\np")
        if not ON_HOST:
            self.assertTrue(reply["result"].startswith("'/tmp/"), reply["result"])
        self.assertEqual(self.run_ok("import kernel_probe_mod\nkernel_probe_mod.X")["result"], "5")

    @in_image
    def test_pip_install_without_network_fails_fast_with_pips_error(self):
        for code in ("%pip install kernel-probe-no-such-package", "!pip install kernel-probe-no-such-package"):
            started = time.monotonic()
            reply = self.driver.run(code, timeout=60)
            self.assertLess(time.monotonic() - started, 15, code)
            self.assertFalse(reply["timed_out"])
            self.assertIn("ERROR: ", reply["stdout"] + reply["stderr"], reply)
            self.assertNotIn("externally-managed", reply["stdout"] + reply["stderr"])

    @in_image
    def test_npm_install_without_network_fails_fast(self):
        started = time.monotonic()
        reply = self.driver.run("!cd /tmp && npm install kernel-probe-no-such-package", timeout=60)
        self.assertLess(time.monotonic() - started, 30)
        self.assertFalse(reply["timed_out"])
        self.assertIn("npm ERR!", reply["stdout"] + reply["stderr"], reply)


class HostileShellTest(unittest.TestCase):
    """Shell and cell-magic variants of the hostile-code cases (see tests/sandbox.rs for the
    ones that need the production container's limits: fork bombs, killing the driver)."""

    def setUp(self):
        self.driver = Driver()

    def tearDown(self):
        self.driver.close()

    def test_a_bash_loop_is_stopped_by_the_timeout(self):
        started = time.monotonic()
        reply = self.driver.run("%%bash\nwhile true; do :; done", timeout=1)
        self.assertLess(time.monotonic() - started, 6)
        self.assertTrue(reply["timed_out"], reply)
        self.assertEqual(reply["error"]["ename"], "TimeoutError")
        self.assertEqual(self.driver.run("print('next')")["stdout"], "next\n")

    def test_a_shell_loop_is_stopped_by_the_timeout(self):
        reply = self.driver.run("!while true; do :; done", timeout=1)
        self.assertTrue(reply["timed_out"], reply)
        self.assertEqual(self.driver.run("1 + 1")["result"], "2")

    def test_a_bash_loop_is_stopped_by_an_interrupt(self):
        self.driver.send({"type": "exec", "id": "loop", "code": "%%bash\nwhile true; do :; done",
                          "timeout": 60, "max_output": 1000})
        time.sleep(1.5)
        started = time.monotonic()
        self.driver.proc.send_signal(signal.SIGINT)  # docker run passes it on to the driver
        reply = self.driver.read(10)
        self.assertEqual(reply["id"], "loop")
        self.assertLess(time.monotonic() - started, 5)
        self.assertFalse(reply["timed_out"])
        self.assertEqual(self.driver.run("print('next')")["stdout"], "next\n")

    def test_a_yes_flood_is_truncated(self):
        reply = self.driver.run("!yes", timeout=3, max_output=2000, wait=60)
        self.assertTrue(reply["output_truncated"])
        self.assertLess(len(reply["stdout"]) + len(reply["stderr"]), 2500)
        self.assertEqual(self.driver.run("print('next')")["stdout"], "next\n")

    def test_a_background_sleep_is_left_behind_without_blocking(self):
        started = time.monotonic()
        reply = self.driver.run("!sleep 1000 &")
        self.assertLess(time.monotonic() - started, 5)
        self.assertIsNone(reply["error"])
        if not ON_HOST:
            self.assertGreaterEqual(reply["processes_left"], 1)
        self.assertEqual(self.driver.run("print('next')")["stdout"], "next\n")


class CheckpointTest(unittest.TestCase):
    """checkpoint in one driver, restore in a fresh one: the pickle moves between them as
    base64 through exec, as the host moves it through the blob store."""

    PATH = "/tmp/assistd-checkpoint/namespace.pkl"

    def request(self, driver, kind, **fields):
        driver.send({"type": kind, "id": f"{kind}-1", "path": self.PATH, **fields})
        reply = driver.read(60)
        self.assertEqual(reply["type"], {"checkpoint": "checkpointed", "restore": "restored"}[kind], reply)
        self.assertEqual(reply["id"], f"{kind}-1")
        return reply

    def pickle_bytes(self, driver):
        reply = driver.run(f"import base64 as _b64\nprint(_b64.b64encode(open({self.PATH!r}, 'rb').read()).decode())\n"
                           "del _b64", max_output=10_000_000)
        self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
        return reply["stdout"].strip()

    def put_pickle(self, driver, encoded):
        reply = driver.run("import base64 as _b64, os as _os\n"
                           f"_os.makedirs({os.path.dirname(self.PATH)!r}, exist_ok=True)\n"
                           f"open({self.PATH!r}, 'wb').write(_b64.b64decode({encoded!r}))\n"
                           "del _b64, _os")
        self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])

    def round_trip(self, setup):
        first = Driver()
        try:
            reply = first.run(setup)
            self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
            saved = self.request(first, "checkpoint")
            encoded = self.pickle_bytes(first)
        finally:
            first.close()
        second = Driver()
        self.addCleanup(second.close)
        self.put_pickle(second, encoded)
        restored = self.request(second, "restore")
        return saved, restored, second

    def test_plain_values_functions_and_instances_come_back_in_a_new_process(self):
        saved, restored, driver = self.round_trip(
            "import json, os.path\n"
            "import collections as co\n"
            "n = 41\nwords = ['a', 'b']\n"
            "def double(x):\n    return 2 * x + n\n"
            "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
            "    def norm1(self):\n        return abs(self.x) + abs(self.y)\n"
            "p = Point(3, -4)\n"
            "counts = co.Counter('abca')\n"
            "'a trailing value'")
        self.assertEqual(set(saved["kept"]), {"n", "words", "double", "Point", "p", "counts"})
        self.assertEqual(saved["modules"], {"json": "json", "os": "os", "co": "collections"})
        self.assertEqual(saved["skipped"], [])
        self.assertEqual(set(restored["restored"]), set(saved["kept"]))
        self.assertEqual(restored["failed"], [])
        reply = driver.run("n + 1, words, double(1), p.norm1(), type(p).__name__, counts['a'], "
                           "co.OrderedDict.__name__, os.path.join('a', 'b'), json.dumps(1)")
        self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
        self.assertEqual(reply["result"], "(42, ['a', 'b'], 43, 7, 'Point', 2, 'OrderedDict', 'a/b', '1')")

    def javascript(self, driver, code):
        driver.send({"type": "exec", "id": f"js{time.monotonic_ns()}", "code": code, "timeout": 20,
                     "max_output": 20000, "language": "javascript"})
        reply = driver.read(60)
        self.assertEqual(reply["type"], "result", reply)
        return reply

    @unittest.skipIf(ON_HOST, "needs the image (Node.js)")
    def test_the_javascript_contexts_globals_come_back_beside_pythons(self):
        first = Driver()
        try:
            self.assertIsNone(first.run("x = 1")["error"])
            for cell in ["let n = 41\nconst o = {a: [1, 2], d: new Date(0)}\nvar v = 'hi'",
                         "function inc(a) { return a + 1 }\n"
                         "class Point { constructor(x) { this.x = x } norm() { return Math.abs(this.x) } }",
                         "globalThis.m = new Map([[1, 'one']])\nconst big = 2n ** 70n\nlet bytes = new Uint8Array([7, 8])",
                         "const sym = Symbol('s')\nlet withFn = {f: () => 1}\nlet later = await Promise.resolve(3)",
                         "const fs = require('fs')\nconst { promisify } = require('util')"]:
                reply = self.javascript(first, cell)
                self.assertIsNone(reply["error"], reply["error"])
            saved = self.request(first, "checkpoint")
            encoded = self.pickle_bytes(first)
        finally:
            first.close()
        self.assertEqual(saved["kept"], ["x"])
        kept = {"n", "o", "v", "inc", "Point", "m", "big", "bytes", "later", "fs", "promisify"}
        self.assertEqual(set(saved["javascript"]["kept"]), kept)
        self.assertEqual({s["name"] for s in saved["javascript"]["skipped"]}, {"sym", "withFn"})

        second = Driver()
        self.addCleanup(second.close)
        self.put_pickle(second, encoded)
        restored = self.request(second, "restore")
        self.assertEqual(restored["restored"], ["x"])
        self.assertEqual(set(restored["javascript"]["restored"]), kept)
        self.assertEqual({f["name"] for f in restored["javascript"]["failed"]}, {"sym", "withFn"})
        for code, text in [("inc(n)", "42"), ("o.a.length + v.length + o.d.getTime()", "4"),
                           ("new Point(-3).norm()", "3"), ("m.get(1)", "'one'"), ("big", "1180591620717411303424n"),
                           ("bytes[0] + bytes[1] + later", "18"), ("typeof withFn + typeof sym", "'undefinedundefined'"),
                           ("typeof fs.readFileSync", "'function'"),
                           ("promisify === require('util').promisify", "true"), ("n = 5", "5")]:
            reply = self.javascript(second, code)
            self.assertIsNone(reply["error"], (code, reply["error"]))
            self.assertEqual(reply["result"], text, code)
        # A const is still one; a let can still not be declared twice.
        self.assertEqual(self.javascript(second, "o = 1")["error"]["ename"], "TypeError")
        self.assertEqual(self.javascript(second, "let n = 1")["error"]["ename"], "SyntaxError")
        self.assertEqual(second.run("x + 1")["result"], "2")

    def test_without_a_javascript_context_the_replies_say_nothing_of_one(self):
        saved, restored, _ = self.round_trip("y = 2")
        self.assertNotIn("javascript", saved)
        self.assertNotIn("javascript", restored)
        self.assertEqual(restored["restored"], ["y"])

    def test_ipython_history_names_are_not_kept(self):
        saved, _restored, _driver = self.round_trip("x = 1\nx\n")
        self.assertEqual(saved["kept"], ["x"])

    @needs_libraries
    def test_a_dataframe_and_aliased_modules_come_back(self):
        saved, restored, driver = self.round_trip(
            "import numpy as np, pandas as pd\nimport matplotlib.pyplot as plt\n"
            "df = pd.DataFrame({'a': np.arange(1000), 'b': ['x'] * 1000})")
        self.assertEqual(saved["modules"], {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot"})
        self.assertEqual(restored["restored"], ["df"])
        reply = driver.run("int(df.a.sum()), df.shape, np.__name__, pd.__name__, plt.__name__")
        self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
        self.assertEqual(reply["result"], "(499500, (1000, 2), 'numpy', 'pandas', 'matplotlib.pyplot')")

    def test_open_files_generators_sockets_and_threads_are_named_not_kept(self):
        saved, restored, driver = self.round_trip(
            "import socket, threading\n"
            "kept = 1\n"
            "fh = open('/tmp/scratch.txt', 'w')\n"
            "gen = (i for i in range(3))\n"
            "sock = socket.socket()\n"
            "worker = threading.Thread(target=print)\n"
            "holder = {'inner': open('/tmp/other.txt', 'w')}\n")
        skipped = {s["name"]: s for s in saved["skipped"]}
        self.assertEqual(set(skipped), {"fh", "gen", "sock", "worker", "holder"})
        self.assertEqual(skipped["fh"]["type"], "_io.TextIOWrapper")
        self.assertIn("open file", skipped["fh"]["reason"])
        self.assertIn("generator", skipped["gen"]["reason"])
        self.assertIn("thread", skipped["worker"]["reason"])
        self.assertIn("open file", skipped["holder"]["reason"])
        self.assertEqual(saved["kept"], ["kept"])
        self.assertEqual(restored["restored"], ["kept"])
        self.assertEqual({f["name"] for f in restored["failed"]}, set(skipped))
        reply = driver.run("kept, 'fh' in dir()")
        self.assertEqual(reply["result"], "(1, False)")

    def test_a_discard_removes_the_pickle_and_a_restore_removes_it_even_when_it_fails(self):
        driver = Driver()
        self.addCleanup(driver.close)
        self.assertIsNone(driver.run("x = 1")["error"])
        self.request(driver, "checkpoint")
        exists = f"import os as _os\nprint(_os.path.exists({self.PATH!r}))\ndel _os"
        self.assertEqual(driver.run(exists)["stdout"], "True\n")
        discarded = self.request(driver, "checkpoint", discard=True)
        self.assertEqual(discarded["kept"], [])
        self.assertEqual(driver.run(exists)["stdout"], "False\n")
        self.request(driver, "checkpoint", discard=True)  # nothing there: fine too
        self.put_pickle(driver, base64.b64encode(b"not a pickle").decode())
        driver.send({"type": "restore", "id": "r", "path": self.PATH})
        self.assertEqual(driver.read()["type"], "error")
        self.assertEqual(driver.run(exists)["stdout"], "False\n")

    def test_dill_is_imported_only_for_what_needs_it(self):
        imported = "import sys as _sys\nprint('dill' in _sys.modules)\ndel _sys"
        first = Driver()
        try:
            self.assertIsNone(first.run("n = 1\nwords = ['a']")["error"])
            self.request(first, "checkpoint")
            self.assertEqual(first.run(imported)["stdout"], "False\n")
            plain = self.pickle_bytes(first)
            self.assertIsNone(first.run("def f():\n    return n")["error"])
            self.request(first, "checkpoint")
            self.assertEqual(first.run(imported)["stdout"], "True\n")
            with_function = self.pickle_bytes(first)
        finally:
            first.close()
        for encoded, needs_dill in ((plain, False), (with_function, True)):
            second = Driver()
            self.addCleanup(second.close)
            self.put_pickle(second, encoded)
            restored = self.request(second, "restore")
            self.assertEqual(restored["failed"], [])
            self.assertEqual(second.run(imported)["stdout"], f"{needs_dill}\n")
            self.assertEqual(second.run("n, words")["result"], "(1, ['a'])")

    def test_a_missing_pickle_is_an_error_reply_and_the_driver_serves_on(self):
        driver = Driver()
        self.addCleanup(driver.close)
        driver.send({"type": "restore", "id": "r", "path": "/tmp/nothing-here.pkl"})
        reply = driver.read()
        self.assertEqual((reply["type"], reply["id"]), ("error", "r"))
        self.assertEqual(driver.run("print(1)")["stdout"], "1\n")


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
            reply = driver.run("import IPython, cairosvg\nIPython.version_info[0]\n"
                               "!node --version && npm --version && bash --version | head -n1")
            self.assertIsNone(reply["error"], reply["error"] and reply["error"]["traceback"])
            self.assertRegex(reply["stdout"], r"^v\d+\.\d+\.\d+\n\d+\.\d+\.\d+\nGNU bash")
        finally:
            driver.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
