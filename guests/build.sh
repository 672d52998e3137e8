#!/usr/bin/env bash
# guests/build.sh [--out DIR] [--refresh] [--force] [--comp gzip|lz4|zstd|xz]
#
# Builds (and caches) the QEMU test guests for the vswitch end-to-end tests:
#   DIR/vmlinux            the Debian kernel as an uncompressed ELF (QEMU boots it via PVH,
#                          which skips the bzImage's ~4 s self-decompression under TCG)
#   DIR/vmlinuz            the same kernel as the original bzImage
#   DIR/initrd.cpio.gz     busybox-static + the guest modules + init + agent: the "tiny"
#                          guest on its own, and stage 1 of the Debian guest
#   DIR/rootfs.squashfs    the Debian guest root (debootstrap minbase + keepalived, ipvsadm, iproute2,
#                          iputils-ping, iputils-arping, iperf3, python3-minimal, ethtool,
#                          tcpdump, procps), mounted read-only from virtio-blk under a tmpfs
#                          overlay; stage 1 copies init, agent and busybox into it at boot
#   DIR/manifest.txt       input hashes, versions, sizes, build time
#   DIR/packages.txt       every package in the Debian root, with its version
#   DIR/modules.txt        the kernel modules in the initrd (the list below + dependencies)
#   DIR/apt, DIR/dl        private apt lists; downloaded .debs (kernel, busybox, debootstrap's)
# DIR defaults to ${VSWITCH_GUEST_CACHE:-/var/cache/vswitch-guests}.
#
# Host side (needs root): QEMU is installed if missing, as qemu-system-x86 of the SAME
# version as the installed qemu-utils. On bookworm machines that carry qemu-utils from
# bookworm-backports, plain `apt-get install qemu-system-x86` would pull bookworm's 7.2 and
# REMOVE that qemu-utils; so apt runs with a private source list (main, updates, security,
# backports) and a private state dir under DIR/apt, `-t <codename>-backports` when the
# installed qemu-utils is a backport, and `--no-remove` so apt aborts rather than remove
# anything. /etc/apt is never written. debootstrap, squashfs-tools and cpio are installed
# the same way when missing. The guest kernel and busybox-static are only downloaded
# (apt-get download + dpkg-deb -x), never installed on the host.
#
# Caching: the inputs hash covers this script, guests/init, guests/vsg-agent, the candidate
# versions of every package that goes into the images (from DIR/apt's package lists), the
# mirror and the options, in two parts: boot (kernel, busybox, init, agent, modules) and
# root (the Debian packages). When DIR/manifest.txt has the same hashes and the outputs
# exist, nothing is rebuilt ("up to date", ~0.3 s); otherwise only the stale part is. Package
# lists are only refreshed (apt-get update) when missing or with --refresh, so a cached run
# never touches the network.
#   --refresh   apt-get update first (a newer kernel or package then triggers a rebuild)
#   --force     rebuild even when up to date
#   --comp C    squashfs compression (default lz4: cheapest to decompress under TCG)
# Env: VSWITCH_GUEST_MIRROR (default: the first URI of the system's Debian source).
set -euo pipefail
T0=${EPOCHREALTIME/./}
elapsed() { local d=$(( ${EPOCHREALTIME/./} - T0 )); printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000)); }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${VSWITCH_GUEST_CACHE:-/var/cache/vswitch-guests}
REFRESH=0 FORCE=0 COMP=lz4
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --refresh) REFRESH=1; shift ;;
        --force) FORCE=1; shift ;;
        --comp) COMP=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "build.sh: needs root (apt, debootstrap, mknod)" >&2; exit 1; }
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
log() { printf '[build %7ss] %s\n' "$(elapsed)" "$*" >&2; }

# One build at a time per cache dir (tests may call this concurrently).
exec 9>"$OUT/.lock"
flock 9

# Packages that go into the Debian guest (debootstrap --include) and the kernel modules the
# guests load (dependencies are added from modules.dep). IPVS (ip_vs, for the LVS-DR test)
# pulls nf_conntrack -> libcrc32c, which needs a crc32c implementation at load time that
# modules.dep does not name: crc32c_generic, listed before ip_vs (loaded in this order).
GUEST_PKGS=(keepalived ipvsadm iproute2 iputils-ping iputils-arping iperf3 python3-minimal ethtool tcpdump procps)
GUEST_MODULES=(virtio_pci virtio_net virtio_blk virtio_console qemu_fw_cfg e1000 squashfs overlay
               9p 9pnet_virtio macvlan 8021q crc32c_generic ip_vs ip_vs_rr ip_vs_wrr)

. /etc/os-release
SUITE=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
system_mirror() {
    local f
    for f in /etc/apt/sources.list.d/debian.sources; do
        [ -r "$f" ] && awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f" && return
    done
    awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null
}
system_security() {
    local f=/etc/apt/sources.list.d/debian.sources
    { [ -r "$f" ] && awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' "$f"; } ||
        awk '$1=="deb" && $2 ~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null
}
MIRROR=${VSWITCH_GUEST_MIRROR:-$(system_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=$(system_security); SECURITY=${SECURITY:-http://deb.debian.org/debian-security}

# ---- private apt: own source list, lists and cache; the system's dpkg database --------
A=$OUT/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
cat > "$A/sources.list.new" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
deb $MIRROR $SUITE-backports main
EOF
if ! cmp -s "$A/sources.list.new" "$A/sources.list" 2>/dev/null; then
    mv "$A/sources.list.new" "$A/sources.list"; REFRESH=1
else
    rm -f "$A/sources.list.new"
fi
APT_OPTS=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root
          -o Dir::Cache::pkgcache=pkgcache.bin -o Dir::Cache::srcpkgcache=
          -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
          -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
          -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
compgen -G "$A/lists/*_Packages*" >/dev/null || REFRESH=1
if [ $REFRESH = 1 ]; then
    log "apt-get update (private lists in $A)"
    apt-get "${APT_OPTS[@]}" update -qq >/dev/null
fi
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" -y -qq --no-install-recommends --no-remove "$@"; }
candidates() { # pkg... -> "pkg=candidate" lines, one apt-cache call
    apt-cache "${APT_OPTS[@]}" policy "$@" | awk '/^[^ ].*:$/ {p = $1; sub(/:$/, "", p)} /Candidate:/ {print p "=" $2}'
}
candidate() { candidates "$1" | sed 's/^[^=]*=//'; }
installed() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '/install ok installed/ {print $4}'; }

# ---- host tools ----------------------------------------------------------------------
install_qemu() {
    local qu; qu=$(installed qemu-utils)
    if [ -n "$qu" ]; then
        local target=()
        case $qu in *bpo*) target=(-t "$SUITE-backports") ;; esac
        log "installing qemu-system-x86=$qu (matches the installed qemu-utils ${target[*]})"
        apt_get install "${target[@]}" "qemu-system-x86=$qu" "qemu-utils=$qu" >/dev/null
    else
        log "installing qemu-system-x86 and qemu-utils from $SUITE-backports"
        apt_get install -t "$SUITE-backports" qemu-system-x86 qemu-utils >/dev/null
    fi
    local qs; qs=$(installed qemu-system-x86)
    [ -z "$qu" ] || [ "$qs" = "$qu" ] || { echo "build.sh: qemu-system-x86 $qs != qemu-utils $qu" >&2; exit 1; }
}
command -v qemu-system-x86_64 >/dev/null || install_qemu
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then log "installing ${need[*]}"; apt_get install "${need[@]}" >/dev/null; fi
rm -f "$A"/cache/archives/*.deb  # whatever was installed above: not needed any more

# ---- inputs hash ---------------------------------------------------------------------
KPKG=$(apt-cache "${APT_OPTS[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$KPKG" ] || { echo "build.sh: cannot resolve linux-image-amd64" >&2; exit 1; }
KVER=${KPKG#linux-image-}
VERSIONS=$(candidates "$KPKG" busybox-static "${GUEST_PKGS[@]}")
[ "$(echo "$VERSIONS" | grep -vc '=(none)$')" = $((2 + ${#GUEST_PKGS[@]})) ] ||
    { echo "build.sh: package versions not all known: $VERSIONS" >&2; exit 1; }
# Two parts, rebuilt separately: "boot" (kernel, initrd with busybox, init and agent, which
# stage 1 copies into the root at boot) and "root" (the Debian packages). Editing init or
# vsg-agent rebuilds only the initrd (~15 s); this script is an input of both.
SELF=$(sha256sum "$HERE/build.sh" | cut -c1-64)
BOOT_HASH=$( { echo "$SELF"; sha256sum "$HERE/init" "$HERE/vsg-agent" | cut -c1-64
               echo "$VERSIONS" | grep -E "^($KPKG|busybox-static)="; echo "modules=${GUEST_MODULES[*]}"; } |
             sha256sum | cut -c1-16)
ROOT_HASH=$( { echo "$SELF"; echo "$VERSIONS" | grep -vE "^($KPKG|busybox-static)="
               echo "suite=$SUITE mirror=$MIRROR comp=$COMP"; } | sha256sum | cut -c1-16)
HASH=$(echo "$BOOT_HASH $ROOT_HASH" | sha256sum | cut -c1-16)
part_ok() { # part hash outputs...
    local part=$1 hash=$2 f; shift 2
    for f in "$@"; do [ -s "$OUT/$f" ] || return 1; done
    [ $FORCE = 0 ] && grep -qx "${part}_hash=$hash" "$OUT/manifest.txt" 2>/dev/null
}
BOOT_OK=0 ROOT_OK=0
part_ok boot "$BOOT_HASH" vmlinux vmlinuz initrd.cpio.gz && BOOT_OK=1
part_ok root "$ROOT_HASH" rootfs.squashfs packages.txt && ROOT_OK=1
if [ $BOOT_OK = 1 ] && [ $ROOT_OK = 1 ] && grep -qx "inputs_hash=$HASH" "$OUT/manifest.txt"; then
    echo "guests up to date in $OUT (inputs $HASH, kernel $KVER); nothing to do ($(elapsed) s)"
    exit 0
fi
log "building guests in $OUT (inputs $HASH, kernel $KVER): boot part $([ $BOOT_OK = 1 ] && echo cached || echo rebuilt), root part $([ $ROOT_OK = 1 ] && echo cached || echo rebuilt)"

W=$OUT/work
rm -rf "$W"; mkdir -p "$W" "$OUT/dl"
trap 'rm -rf "$W"' EXIT

# ---- kernel and busybox: downloaded and unpacked, never installed -----------------------
fetch() { # package -> path of its .deb in $OUT/dl
    local v f; v=$(candidate "$1")
    f=$(ls "$OUT/dl/$1_"*"${v#*:}_"*.deb 2>/dev/null | head -1 || true)
    if [ -z "$f" ]; then
        rm -f "$OUT/dl/$1_"*.deb
        (cd "$OUT/dl" && apt-get "${APT_OPTS[@]}" download -qq "$1=$v" >/dev/null)
        f=$(ls "$OUT/dl/$1_"*.deb | head -1)
    fi
    echo "$f"
}
if [ $BOOT_OK = 0 ]; then
log "kernel $KPKG"
dpkg-deb -x "$(fetch "$KPKG")" "$W/kpkg"
log "busybox-static"
dpkg-deb -x "$(fetch busybox-static)" "$W/bb"
BB=$W/bb/bin/busybox
MODS=$W/kpkg/lib/modules/$KVER
# The package ships no modules.dep (depmod runs at install time); busybox's depmod makes it.
"$BB" depmod -b "$W/kpkg" "$KVER"
cp "$W/kpkg/boot/vmlinuz-$KVER" "$W/vmlinuz"
python3 - "$W/vmlinuz" "$W/vmlinux" <<'PY'
# Pull the uncompressed ELF vmlinux out of the bzImage (QEMU boots an ELF with a PVH note
# directly). Debian compresses with xz; gzip and zstd are handled too.
import gzip, lzma, shutil, subprocess, sys
d = open(sys.argv[1], 'rb').read()
for magic, fn in ((b'\xfd7zXZ\x00', lambda b: lzma.LZMADecompressor().decompress(b)),
                  (b'\x28\xb5\x2f\xfd', lambda b: subprocess.run(['zstd', '-dc'], input=b, capture_output=True).stdout),
                  (b'\x1f\x8b\x08\x00', lambda b: gzip.GzipFile(fileobj=__import__('io').BytesIO(b)).read())):
    i = d.find(magic)
    if i < 0:
        continue
    try:
        out = fn(d[i:])
    except (EOFError, OSError, lzma.LZMAError):
        out = b''
    if out[:4] == b'\x7fELF':
        open(sys.argv[2], 'wb').write(out)
        sys.exit(0)
sys.exit('no ELF kernel found inside the bzImage')
PY

# ---- initrd: busybox + modules + init + agent -----------------------------------------
log "initrd"
R=$W/initrd
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,mnt,newroot,usr/local/sbin} "$R/lib/modules/$KVER"
cp "$BB" "$R/bin/busybox"
for a in $("$BB" --list-full); do
    [ "$a" = bin/busybox ] && continue
    mkdir -p "$R/$(dirname "$a")"; ln -sf /bin/busybox "$R/$a"
done
# module closure from modules.dep, copied with their paths so busybox modprobe finds them
closure=$(awk -v want=" ${GUEST_MODULES[*]} " '
    { n = $1; sub(/:$/, "", n); m = n; sub(/.*\//, "", m); sub(/\.ko$/, "", m); gsub(/-/, "_", m)
      dep[n] = $0; sub(/^[^:]*: ?/, "", dep[n]); byname[m] = n }
    END { split(want, w, " ")
          for (i in w) { if (!(w[i] in byname)) { print "MISSING " w[i]; continue } q[++nq] = byname[w[i]] }
          while (nq > 0) { p = q[nq--]; if (p in seen) continue; seen[p] = 1; print p
                           k = split(dep[p], d, " "); for (j = 1; j <= k; j++) q[++nq] = d[j] } }' "$MODS/modules.dep")
if echo "$closure" | grep -q '^MISSING'; then echo "build.sh: modules not in $KVER: $(echo "$closure" | grep MISSING)" >&2; exit 1; fi
for m in $closure; do mkdir -p "$R/lib/modules/$KVER/$(dirname "$m")"; cp "$MODS/$m" "$R/lib/modules/$KVER/$m"; done
cp "$MODS/modules.builtin" "$MODS/modules.order" "$R/lib/modules/$KVER/"
"$BB" depmod -b "$R" "$KVER"
echo "${GUEST_MODULES[*]}" > "$R/etc/vsg-modules"
install -m 0755 "$HERE/init" "$R/sbin/vsg-init"
ln -s sbin/vsg-init "$R/init"
install -m 0755 "$HERE/vsg-agent" "$R/usr/local/sbin/vsg-agent"
touch "$R/etc/vsg-initramfs"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) > "$W/initrd.cpio.gz"
for f in vmlinux vmlinuz initrd.cpio.gz; do mv -f "$W/$f" "$OUT/$f"; done
echo "$closure" | sed 's#.*/##; s#\.ko$##' | LC_ALL=C sort | tr '\n' ' ' > "$OUT/modules.txt"
fi

# ---- Debian root ------------------------------------------------------------------------
if [ $ROOT_OK = 0 ]; then
log "debootstrap $SUITE minbase + ${GUEST_PKGS[*]} (mirror $MIRROR)"
mkdir -p "$OUT/dl/debootstrap"
inc=$(IFS=,; echo "${GUEST_PKGS[*]}")
if ! debootstrap --variant=minbase --include="$inc" --cache-dir="$OUT/dl/debootstrap" \
        "$SUITE" "$W/rootfs" "$MIRROR" > "$W/debootstrap.log" 2>&1; then
    tail -20 "$W/debootstrap.log" >&2; echo "build.sh: debootstrap failed" >&2; exit 1
fi
RF=$W/rootfs
chroot "$RF" dpkg-query -W -f='${Package} ${Version}\n' | LC_ALL=C sort > "$W/packages.txt"
log "slimming the root ($(du -sm "$RF" | cut -f1) MB)"
# keepalived pulls libsnmp40 -> libperl (the .so stays, the perl modules go); nothing in
# the guest needs docs, locales, gconv, zoneinfo or apt's state.
rm -rf "$RF"/var/cache/apt/* "$RF"/var/lib/apt/lists/* "$RF"/usr/share/doc "$RF"/usr/share/man \
       "$RF"/usr/share/info "$RF"/usr/share/locale "$RF"/usr/share/i18n "$RF"/usr/share/zoneinfo \
       "$RF"/usr/share/perl "$RF"/usr/lib/x86_64-linux-gnu/perl "$RF"/usr/share/lintian \
       "$RF"/usr/lib/x86_64-linux-gnu/gconv "$RF"/var/log/* "$RF"/var/cache/debconf/*-old \
       "$RF"/usr/share/common-licenses "$RF"/usr/share/bash-completion
find "$RF" -name '__pycache__' -prune -exec rm -rf {} +
mkdir -p "$RF/mnt/share"
echo guest > "$RF/etc/hostname"
: > "$RF/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n' > "$RF/etc/hosts"
log "mksquashfs ($COMP, $(du -sm "$RF" | cut -f1) MB)"
mksquashfs "$RF" "$W/rootfs.squashfs" -comp "$COMP" -noappend -quiet -no-progress >/dev/null

for f in rootfs.squashfs packages.txt; do mv -f "$W/$f" "$OUT/$f"; done
fi

# ---- manifest ---------------------------------------------------------------------------
SECS=$(elapsed)
{
    echo "inputs_hash=$HASH"
    echo "boot_hash=$BOOT_HASH"
    echo "root_hash=$ROOT_HASH"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) build_seconds=$SECS"
    echo "kernel=$KVER"
    echo "qemu=$(installed qemu-system-x86)"
    echo "suite=$SUITE mirror=$MIRROR squashfs_comp=$COMP"
    echo "modules=$(cat "$OUT/modules.txt")"
    for f in vmlinux vmlinuz initrd.cpio.gz rootfs.squashfs; do echo "size.$f=$(stat -c %s "$OUT/$f")"; done
    echo "# input versions"
    echo "$VERSIONS"
} > "$OUT/manifest.txt"
log "done in $SECS s: $(du -sh "$OUT" | cut -f1) in $OUT"
cat "$OUT/manifest.txt"
