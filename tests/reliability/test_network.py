"""Zero network at run time: ``paraspinal demo`` under ``strace`` in a namespace without network."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci
from tests.reliability.support import cli_env

NEEDS = [tool for tool in ("strace", "unshare") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(NEEDS) and not in_ci(), reason=f"needs {', '.join(NEEDS)} (CI installs strace)"),
]

# The demo, then the process stays alive: ONNX Runtime's telemetry lookup came some seconds after import.
ALIVE_S = 25.0
DEMO = f"""
import sys, time
start = time.monotonic()
from paraspinal.cli.main import main
code = main(["demo", "-o", sys.argv[1], "-q"])
time.sleep(max(0.0, {ALIVE_S} - (time.monotonic() - start)))
import socket  # a canary at the very end: proves the trace covers the whole life of the process
socket.socket().connect_ex(("127.0.0.1", 9))
sys.exit(code)
"""
_INET = re.compile(r"sa_family=AF_INET6?\b.*?(?:sin_addr=inet_addr\(\"([^\"]+)\"\)|inet_pton\(AF_INET6, \"([^\"]+)\")")


def non_local_connects(trace: str) -> list[str]:
    """Lines of an ``strace -e trace=connect,sendto,sendmsg`` log that address anything but loopback."""
    hits = []
    for line in trace.splitlines():
        for v4, v6 in _INET.findall(line):
            address = v4 or v6
            if not (address.startswith("127.") or address in ("::1", "0.0.0.0", "::")):
                hits.append(line.strip())
    return hits


def test_the_parser_sees_a_dns_lookup() -> None:
    line = '812 connect(9, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0'
    local = '812 connect(3, {sa_family=AF_INET, sin_port=htons(8786), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    assert non_local_connects(f"{line}\n{local}") == [line]


def test_demo_makes_no_network_connection_and_keeps_no_telemetry_id(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "strace.log"
    command = ["unshare", "-n", "--", "strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log)]
    command += ["--", sys.executable, "-c", DEMO, str(tmp_path / "demo")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=cli_env(HOME=str(home)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "demo" / "TUM01" / "TUM01_report.html").is_file()
    trace = log.read_text(encoding="utf-8")
    assert 'htons(9), sin_addr=inet_addr("127.0.0.1")' in trace  # the canary: strace watched to the end
    assert non_local_connects(trace) == []
    assert not (home / ".cache" / "Microsoft").exists()  # ONNX Runtime's telemetry store and device id
