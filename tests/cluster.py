"""A cluster in a box: N hosts on this one machine, on a real (virtual) network.

Each node is a Linux network namespace (its own interfaces, addresses and ports) plus UTS
and mount namespaces held open by one process: its own hostname (node1, node2, ...), its
own /etc/hosts naming every node, its own /root/.ssh and its own node-local scratch folder.
The nodes sit on a bridge through veth links, on a private subnet that exists only on those
links (nothing routes off the machine). Every node runs sshd with a key made for the
cluster, so `horovodrun -H node1:1,node2:1` and `mpirun -H node1,node2` work as on a
cluster without a scheduler; `slurm()` starts Slurm across the nodes (tests/slurm_cluster.py).

    python -m tests.cluster up [--nodes 3] [--shape 1gbit]   # or: make cluster
    python -m tests.cluster exec node1 -- hostname
    python -m tests.cluster shape 10gbit | none
    python -m tests.cluster down                             # or: make cluster-down

Everything it makes is named (namespaces bwk-node*, bridge bwkbr0, links bwk*), so `down`
removes it all by name, also after a crash, and `up` starts with a `down`.
Needs root, iproute2 and Debian's openssh-server.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "bwk"
BRIDGE = f"{PREFIX}br0"
SUBNET = "10.213.0"          # private, only on the box's own links
GATEWAY = f"{SUBNET}.254"    # the bridge's address: this machine as seen from the nodes
STATE = Path(os.environ.get("BWKERAS_CLUSTER_DIR", "/tmp/bwkeras-cluster"))
# Link caps for benchmarks (tbf on both ends of each node's link).
PROFILES = {"10gbit": "10gbit", "1gbit": "1gbit"}
NEEDED = ("ip", "nsenter", "unshare", "tc", "sshd", "ssh", "ssh-keygen")


def missing_tools():
    return [t for t in NEEDED if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


def _sbin(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def _sh(*argv, check=True):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True, timeout=60)


class Node:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.name = f"node{index}"
        self.addr = f"{SUBNET}.{index}"
        self.netns = f"{PREFIX}-{self.name}"
        self.link = f"{PREFIX}{index}"          # the host end of the node's veth
        self.holder = None                      # the process that holds its namespaces

    @property
    def holder_pid(self):
        path = self.cluster.dir / f"{self.name}.holder"
        return int(path.read_text()) if path.exists() else None

    def argv(self, cmd, cwd=None):
        """`cmd` run inside this node (its network, hostname and mounts)."""
        return ["nsenter", "-t", str(self.holder_pid), "-n", "-u", "-m",
                f"--wd={cwd or os.getcwd()}", "--", *map(str, cmd)]

    def popen(self, cmd, cwd=None, **kwargs):
        return subprocess.Popen(self.argv(cmd, cwd), **kwargs)

    def run(self, cmd, cwd=None, timeout=60, check=True, **kwargs):
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(cmd, cwd), timeout=timeout, check=check, **kwargs)

    def pids(self):
        """Every process in the node's network namespace (ranks, sshd, slurmd, ...)."""
        out = _sh("ip", "netns", "pids", self.netns, check=False)
        return [int(p) for p in out.stdout.split()]

    # ---- start -------------------------------------------------------------------------
    def create(self):
        _sh("ip", "netns", "add", self.netns)
        peer = f"{PREFIX}p{self.index}"
        _sh("ip", "link", "add", self.link, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", self.link, "master", BRIDGE, "up")
        _sh("ip", "link", "set", peer, "netns", self.netns)
        inside = ["ip", "netns", "exec", self.netns]
        _sh(*inside, "ip", "link", "set", peer, "name", "eth0")
        _sh(*inside, "ip", "addr", "add", f"{self.addr}/24", "dev", "eth0")
        _sh(*inside, "ip", "link", "set", "eth0", "up")
        _sh(*inside, "ip", "link", "set", "lo", "up")
        self.start_holder()

    def start_holder(self):
        # nsenter --net, not `ip netns exec`: the latter remounts /sys, which hides
        # /sys/fs/cgroup from slurmd. The holder's private mount namespace gets the node's
        # own /etc/hosts, /root/.ssh and scratch folder bind-mounted over the machine's.
        d = self.cluster.dir
        local = d / f"local-{self.name}"
        local.mkdir(exist_ok=True)
        script = (f"hostname {self.name} && mount --bind {d / 'hosts'} /etc/hosts && "
                  f"mount --bind {d / 'ssh'} /root/.ssh && mount --bind {local} {d / 'local'} && "
                  "echo ready && exec sleep infinity")
        self.holder = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--uts", "--mount",
             "--propagation", "private", "--", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{self.name} did not start: {self.holder.stderr.read()}")
        (d / f"{self.name}.holder").write_text(str(self.holder.pid))
        self.start_sshd()

    def start_sshd(self):
        d = self.cluster.dir
        conf = d / f"sshd-{self.name}.conf"
        conf.write_text("\n".join([
            f"ListenAddress {self.addr}",
            f"HostKey {d / 'ssh_host_ed25519_key'}",
            f"PidFile {d / f'sshd-{self.name}.pid'}",
            f"AuthorizedKeysFile {d / 'ssh' / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            # The key files live in a scratch folder, not a home directory.
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "LogLevel ERROR",
            "MaxStartups 100:30:200",
            "",
        ]))
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        self.run([_sbin("sshd"), "-f", conf, "-E", d / f"sshd-{self.name}.log"])

    # ---- faults ------------------------------------------------------------------------
    def link_down(self):
        _sh("ip", "link", "set", self.link, "down")

    def link_up(self):
        _sh("ip", "link", "set", self.link, "up")

    def kill(self):
        """The node dies: every process in it killed, holder included."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def shape(self, rate):
        """Cap the node's link in both directions to `rate` (tbf), or lift the cap (None)."""
        inside = ["ip", "netns", "exec", self.netns]
        for cmd in ([], inside):
            dev = "eth0" if cmd else self.link
            _sh(*cmd, "tc", "qdisc", "del", "dev", dev, "root", check=False)
            if rate:
                # A burst of ~1 ms at the rate (at least 64 KB) keeps tbf from throttling
                # below the rate on a virtual link; 50 ms of queue before drops.
                _sh(*cmd, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
                    "burst", "1mb" if rate == "10gbit" else "128kb", "latency", "50ms")


class Cluster:
    def __init__(self, nodes=2, directory=STATE):
        if not isinstance(nodes, int) or not 1 <= nodes <= 16:
            raise ValueError(f"nodes must be an integer in [1, 16], got {nodes!r}")
        self.dir = Path(directory)
        self.nodes = [Node(self, i) for i in range(1, nodes + 1)]
        self.slurm_cluster = None

    @property
    def hostnames(self):
        return [n.name for n in self.nodes]

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def up(self, shape=None):
        down()
        self.dir.mkdir(parents=True)
        (self.dir / "local").mkdir()
        hosts = ["127.0.0.1 localhost", f"{GATEWAY} box-host"]
        hosts += [f"{n.addr} {n.name}" for n in self.nodes]
        (self.dir / "hosts").write_text("\n".join(hosts) + "\n")
        self._make_keys()
        Path("/root/.ssh").mkdir(mode=0o700, exist_ok=True)  # the bind mount's mount point
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
        _sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")
        for node in self.nodes:
            node.create()
        self.wait_ssh()
        if shape:
            self.shape(shape)
        return self

    def _make_keys(self):
        ssh = self.dir / "ssh"
        ssh.mkdir(mode=0o700)
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ssh / "id_ed25519")
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.dir / "ssh_host_ed25519_key")
        shutil.copy(ssh / "id_ed25519.pub", ssh / "authorized_keys")
        (ssh / "config").write_text("\n".join([
            "Host *",
            f"  IdentityFile {ssh / 'id_ed25519'}",
            "  StrictHostKeyChecking no",
            "  UserKnownHostsFile /dev/null",
            "  BatchMode yes",
            "  LogLevel ERROR",
            "  ConnectTimeout 10",
            "",
        ]))
        for path in ssh.iterdir():
            path.chmod(0o600)

    def wait_ssh(self, timeout=30):
        first = self.nodes[0]
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while True:
                proc = first.run(["ssh", node.name, "hostname"], check=False, timeout=30)
                if proc.returncode == 0 and proc.stdout.strip() == node.name:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ssh {first.name} -> {node.name} failed: {proc.stderr}")
                time.sleep(0.2)

    def shape(self, profile):
        rate = None if profile in (None, "none") else PROFILES.get(profile, profile)
        for node in self.nodes:
            node.shape(rate)

    def slurm(self, slurmd_timeout=10):
        """Slurm across the nodes: slurmctld on node1, a slurmd on every node."""
        if self.slurm_cluster is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from slurm_cluster import SlurmCluster

            self.slurm_cluster = SlurmCluster(self.dir / "slurm", nodes=self.nodes,
                                              tmpfs=str(self.dir / "local"),
                                              slurmd_timeout=slurmd_timeout).start()
        return self.slurm_cluster

    def revive(self, node):
        """Bring a killed node back: a new holder, sshd and (with Slurm) slurmd."""
        node.kill()
        node.start_holder()
        node.link_up()
        if self.slurm_cluster is not None:
            self.slurm_cluster.start_slurmd(node)

    def down(self):
        if self.slurm_cluster is not None:
            self.slurm_cluster.stop()
        down(self.dir)


def _names(kind):
    out = _sh("ip", "-o", *(("netns", "list") if kind == "netns" else ("link", "show")), check=False)
    names = []
    for line in out.stdout.splitlines():
        field = line.split()[0] if kind == "netns" else line.split(":")[1].strip().split("@")[0]
        names.append(field)
    return names


def down(directory=STATE):
    """Remove every namespace, link and process of a cluster in a box, by name."""
    directory = Path(directory)
    for ns in _names("netns"):
        if ns.startswith(f"{PREFIX}-node"):
            for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _sh("ip", "netns", "del", ns, check=False)
    for link in _names("link"):
        if link == BRIDGE or (link.startswith(PREFIX) and link[len(PREFIX):].isdigit()):
            _sh("ip", "link", "del", link, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def status():
    nodes = sorted(ns for ns in _names("netns") if ns.startswith(f"{PREFIX}-node"))
    return nodes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="start the nodes (and Slurm with --slurm)")
    up_p.add_argument("--nodes", type=int, default=int(os.environ.get("BWKERAS_CLUSTER_NODES", 2)))
    up_p.add_argument("--shape", choices=["none", *PROFILES], default="none")
    up_p.add_argument("--slurm", action="store_true", help="also start Slurm across the nodes")
    sub.add_parser("down", help="stop and remove everything the cluster made")
    sub.add_parser("status", help="list the running nodes")
    sh_p = sub.add_parser("shape", help="cap every node's link")
    sh_p.add_argument("profile", choices=["none", *PROFILES])
    ex_p = sub.add_parser("exec", help="run a command inside a node")
    ex_p.add_argument("node")
    ex_p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.exit(2, "tests.cluster: needs root (network namespaces)\n")
    missing = missing_tools()
    if missing:
        parser.exit(2, f"tests.cluster: missing {', '.join(missing)} (apt-get install iproute2 openssh-server)\n")
    running = status()
    if args.command == "up":
        try:
            cluster = Cluster(args.nodes).up(shape=args.shape)
        except ValueError as err:
            parser.exit(2, f"tests.cluster: {err}\n")
        if args.slurm:
            slurm = cluster.slurm()
            print(f"Slurm up: export SLURM_CONF={slurm.conf}")
        print(f"up: {', '.join(cluster.hostnames)} on {SUBNET}.0/24; "
              f"python -m tests.cluster exec node1 -- bash")
    elif args.command == "down":
        down()
        print("down")
    elif args.command == "status":
        print("\n".join(running) or "no cluster running")
    elif args.command in ("shape", "exec"):
        if not running:
            parser.exit(2, "tests.cluster: no cluster running (python -m tests.cluster up)\n")
        cluster = Cluster(len(running))
        if args.command == "shape":
            cluster.shape(args.profile)
        else:
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            try:
                node = cluster.node(args.node)
            except StopIteration:
                parser.exit(2, f"tests.cluster: no node {args.node!r} (have {', '.join(cluster.hostnames)})\n")
            return subprocess.call(node.argv(cmd or ["bash"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
