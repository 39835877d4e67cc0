"""A one-node SLURM cluster on this machine, for the SLURM sweep test and ``make slurm-up/down``.

``up DIR`` installs Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge`` where missing
(needs root and apt-get), then starts ``munged``, ``slurmctld`` and ``slurmd`` with every file —
configuration, key, socket, pid files, logs, state — in ``DIR``, on non-default ports, without cgroup
plugins (``proctrack/pgid``, ``task/none``), one node (this host, its CPUs and memory) and one
partition. ``down DIR`` stops exactly the daemons it started, by the pids in ``DIR``. ``env DIR``
prints ``SLURM_CONF=...`` for a shell. Usable from Python as :func:`up` / :func:`down`.

    python -m nmfdnn.maint.slurm_cluster up .slurm && export SLURM_CONF=$PWD/.slurm/slurm.conf
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = {"slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client", "munged": "munge"}
DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order


class Unavailable(RuntimeError):
    """SLURM cannot be started here (not root, no apt-get, a package that does not install)."""


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name)
                                       if p.exists()), None)


def install() -> None:
    missing = sorted({pkg for exe, pkg in PACKAGES.items() if not _which(exe)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"{', '.join(missing)} not installed and cannot be (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def write_config(d: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "log", "run"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "slurm.conf"
    conf.write_text(f"""# written by nmfdnn/maint/slurm_cluster.py: a one-node test cluster
ClusterName=nmfdnn-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d / 'run' / 'munge.socket'}
CredType=cred/munge
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}
SlurmdPidFile={d / 'run' / 'slurmd.pid'}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / 'slurmd.log'}
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={int(_memory_mb() * 0.9)} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def env(d: Path) -> dict:
    return dict(os.environ, SLURM_CONF=str(Path(d).absolute() / "slurm.conf"))


def _pid(d: Path, name: str) -> int | None:
    f = d / "run" / f"{name}.pid"
    try:
        return int(f.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def up(d, timeout: float = 60.0) -> dict:
    """Install what is missing, start the three daemons, wait until the node is idle; returns the
    environment (``SLURM_CONF``) for the clients. Raises :class:`Unavailable` where it cannot."""
    d = Path(d).absolute()
    install()
    if os.geteuid() != 0:
        raise Unavailable("slurmd and munged of this test run as root")
    d.mkdir(parents=True, exist_ok=True)
    conf = write_config(d)
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    e = env(d)
    run = d / "run"
    starts = [
        ("munged", [_which("munged"), "--force", f"--key-file={key}", f"--socket={run / 'munge.socket'}",
                    f"--pid-file={run / 'munged.pid'}", f"--log-file={d / 'log' / 'munged.log'}",
                    f"--seed-file={d / 'state' / 'munge.seed'}"]),
        ("slurmctld", [_which("slurmctld"), "-f", str(conf), "-i"]),
        ("slurmd", [_which("slurmd"), "-f", str(conf)]),
    ]
    for name, cmd in starts:
        r = subprocess.run(cmd, env=e, capture_output=True, text=True)
        if r.returncode != 0:
            down(d)
            raise Unavailable(f"{name} did not start: {(r.stderr or r.stdout).strip()[-300:]}")
        deadline = time.time() + 10
        while _pid(d, name) is None and time.time() < deadline:
            time.sleep(0.1)
    deadline = time.time() + timeout
    state = ""
    while time.time() < deadline:
        r = subprocess.run([_which("sinfo"), "-h", "-o", "%T"], env=e, capture_output=True, text=True)
        state = r.stdout.strip()
        if state.startswith("idle"):
            return e
        time.sleep(0.5)
    logs = "; ".join(f.read_text()[-300:] for f in sorted((d / "log").glob("*.log")))
    down(d)
    raise Unavailable(f"the node did not become idle (sinfo: {state or 'no answer'}); logs: {logs}")


def down(d) -> list[str]:
    """Stop the daemons started in ``d`` (by their pid files; SIGTERM, then SIGKILL). Returns their names."""
    d = Path(d).absolute()
    stopped = []
    for name in DAEMONS:
        pid = _pid(d, name)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        stopped.append(name)
    return stopped


def running(d) -> list[str]:
    """The daemons of ``d`` whose processes are alive."""
    alive = []
    for name in DAEMONS:
        pid = _pid(Path(d).absolute(), name)
        if pid is not None:
            try:
                os.kill(pid, 0)
                alive.append(name)
            except ProcessLookupError:
                pass
    return alive


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["up", "down", "env"])
    ap.add_argument("dir", nargs="?", default=".slurm")
    a = ap.parse_args(argv)
    if a.action == "up":
        try:
            up(a.dir)
        except Unavailable as e:
            print(f"slurm-up: {e}", file=sys.stderr)
            return 2
        print(f"SLURM is up: export SLURM_CONF={Path(a.dir).absolute() / 'slurm.conf'}")
    elif a.action == "down":
        print(f"stopped: {', '.join(down(a.dir)) or 'nothing'}")
    else:
        print(f"SLURM_CONF={Path(a.dir).absolute() / 'slurm.conf'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
