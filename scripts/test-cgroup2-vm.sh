#!/usr/bin/env bash
# The process sandbox's whole test suite on a cgroup v2 host. This machine has every cgroup
# controller bound to v1, so the suite also runs in a virtual machine: QEMU boots Debian's
# kernel with the unified hierarchy and this machine's file system shared read-only as its
# root, and runs the suite's test binary there (scripts/vm/). TCG, not KVM: nested KVM is not
# dependable on the VMs this runs on, and the suite takes about a minute either way.
#
#   bash scripts/test-cgroup2-vm.sh     # as root; installs qemu-system-x86, linux-image-amd64
#                                       # and busybox-static if missing
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '==> %s\n' "$*" >&2; }

pkgs=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || pkgs+=(qemu-system-x86)
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || pkgs+=(linux-image-amd64)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || pkgs+=(busybox-static)
command -v cpio >/dev/null 2>&1 || pkgs+=(cpio)
command -v file >/dev/null 2>&1 || pkgs+=(file)
if [ ${#pkgs[@]} -gt 0 ]; then
  log "installing: ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

kernel=$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -n 1)
version=${kernel#/boot/vmlinuz-}
modules=/lib/modules/$version/kernel
work=$(mktemp -d /tmp/slovo-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The initramfs: a static busybox, the 9p-over-virtio modules (in load order), scripts/vm/init.
mkdir -p "$work"/initrd/{bin,mods,proc,sys,dev,newroot}
cp /bin/busybox "$work/initrd/bin/busybox"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/9p/9pnet \
         net/9p/9pnet_virtio fs/netfs/netfs fs/fscache/fscache fs/9p/9p; do
  cp "$modules/$m.ko" "$work/initrd/mods/"
done
cp scripts/vm/init "$work/initrd/init"
chmod +x "$work/initrd/init"
(cd "$work/initrd" && find . | cpio -o -H newc --quiet | gzip) > "$work/initrd.gz"

# The suite's test binary, built for this machine (the guest runs it from the shared root).
binary=$(cargo test -p slovo-sandbox --test all --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$binary" ] || { echo "the process sandbox's test binary was not found" >&2; exit 1; }

log "the process sandbox's suite on cgroup v2 (Linux $version in QEMU)"
timeout 1200 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 3072 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 slovo.script=$(pwd)/scripts/vm/guest.sh slovo.test=$binary" \
  -fsdev "local,id=host,path=/,security_model=passthrough,readonly=on,multidevs=remap" \
  -device virtio-9p-pci,fsdev=host,mount_tag=host -nic none \
  < /dev/null 2>&1 | tr -d '\r' | tee "$work/console.log" | grep -E '^(slovo-vm|test |test result|failures|---- )' || true
grep -q '^slovo-vm: exit 0$' "$work/console.log" || {
  echo "the suite failed on cgroup v2; the console:" >&2
  tail -n 200 "$work/console.log" >&2
  exit 1
}
