#!/bin/bash
# Runs as pid 1 inside the cgroup v2 test VM (scripts/test-cgroup2-vm.sh), on the host's file
# system shared read-only: mounts the unified cgroup hierarchy with memory, cpu and pids
# delegated from the root, then runs the test binary named on the kernel command line and
# reports its exit code on the console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
arg() { sed -n "s/.*slovo\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
# From the host's /lib/modules (the guest kernel's version is installed there).
modprobe loop; modprobe ext4; modprobe veth
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+memory +cpu +pids" > /sys/fs/cgroup/cgroup.subtree_control
echo "slovo-vm: kernel $(uname -r), cgroup v2 controllers delegated: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
ip link set lo up
export SLOVO_TEST_CGROUP=v2
# The guest's CPU is emulated (TCG): the one test with a wall-clock bound means nothing here.
"$(arg test)" --test-threads=1 --skip suite::basics::a_trivial_call_is_fast 2>&1
echo "slovo-vm: exit $?"
echo o > /proc/sysrq-trigger
sleep 10
