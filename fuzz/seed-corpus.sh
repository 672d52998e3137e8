#!/bin/sh
# Rebuild the seed corpora of the fuzz targets (fuzz/corpus-seed/<target>/).
#
# parse_process: one file per captured frame,
# from the scenario fixtures (tests/scenarios/*/*.pcap) and the real keepalived captures
# (/work/shared/captures/*.pcap). Files are named by the SHA-1 of their content (as
# libFuzzer names corpus entries), so identical frames collapse into one file. Frames are
# deduplicated, then at most MAX_SEEDS (default 256) are kept, taken round-robin over the
# input files so that every capture contributes, to keep the committed corpus small.
#
# parse_config: every example configuration (configs/*.toml), one file each.
# control_request: one request line per control-socket command shape, plus a few near
# misses (unknown command, missing field, wrong type), as `vswitch ctl` would write them.
# parse_vxlan: the first VXLAN_SEEDS (default 32) parse_process seeds, each behind a VXLAN
# header (VNI 42), plus near misses (header cut short, no I flag, inner frame too short,
# reserved bits set). Written after parse_process, from its seeds.
#
# Usage: fuzz/seed-corpus.sh [pcap ...]   (run from anywhere; the pcaps default to the sets
# above)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$here/corpus-seed/parse_process"
mkdir -p "$out"

# Writes stdin to $1/<sha1 of the content>.
put() {
    tmp=$(mktemp)
    cat > "$tmp"
    mv "$tmp" "$1/$(sha1sum "$tmp" | cut -d' ' -f1)"
}

cfg_out="$here/corpus-seed/parse_config"
rm -rf "$cfg_out" && mkdir -p "$cfg_out"
for f in "$root"/configs/*.toml; do
    put "$cfg_out" < "$f"
done
echo "$(ls "$cfg_out" | wc -l) configurations written to $cfg_out"

req_out="$here/corpus-seed/control_request"
rm -rf "$req_out" && mkdir -p "$req_out"
while IFS= read -r line; do
    printf '%s\n' "$line" | put "$req_out"
done <<'JSON'
{"cmd":"show-ports"}
{"cmd":"show-fdb"}
{"cmd":"show-vips"}
{"cmd":"show-stats"}
{"cmd":"vip-move","vip":"web","port":"web2"}
{"cmd":"vip-release","vip":"web","port":"web1"}
{"cmd":"port-admin","port":"web1","up":true}
{"cmd":"port-admin","port":"web1","up":false}
{"cmd":"reload"}
{"cmd":"metrics"}
{"cmd":"vip-move","vip":"w\u00e9b","port":"p\"1"}
{"cmd":"nope"}
{"cmd":"vip-move","vip":"web"}
{"cmd":"port-admin","port":"web1","up":"yes"}
{"port":"web1","cmd":"port-admin","up":true,"extra":[1,2.5e3,null]}
JSON
echo "$(ls "$req_out" | wc -l) requests written to $req_out"
if [ "$#" -eq 0 ]; then
    set -- "$root"/tests/scenarios/*/*.pcap /work/shared/captures/*.pcap
fi
MAX_SEEDS="${MAX_SEEDS:-256}" python3 - "$out" "$@" <<'PY'
import hashlib, os, struct, sys

out, paths = sys.argv[1], sys.argv[2:]
cap = int(os.environ["MAX_SEEDS"])
seen = set()
per_file = []  # per input file: [(sha1, frame)] not seen in an earlier file
for path in paths:
    if not os.path.isfile(path):
        continue
    data = open(path, "rb").read()
    if len(data) < 24:
        continue
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        print(f"{path}: not a classic pcap file, skipped", file=sys.stderr)
        continue
    off = 24
    mine = []
    while off + 16 <= len(data):
        incl_len = struct.unpack_from(end + "I", data, off + 8)[0]
        frame = data[off + 16 : off + 16 + incl_len]
        off += 16 + incl_len
        if len(frame) != incl_len:
            break  # truncated record
        h = hashlib.sha1(frame).hexdigest()
        if h not in seen:
            seen.add(h)
            mine.append((h, frame))
    per_file.append(mine)
keep = []
i = 0
while len(keep) < cap and any(i < len(m) for m in per_file):
    for m in per_file:
        if i < len(m) and len(keep) < cap:
            keep.append(m[i])
    i += 1
for old in os.listdir(out):
    os.remove(os.path.join(out, old))
for name, frame in keep:
    with open(os.path.join(out, name), "wb") as f:
        f.write(frame)
print(f"{len(seen)} distinct frames, {len(keep)} written to {out}")
PY

vx_out="$here/corpus-seed/parse_vxlan"
rm -rf "$vx_out" && mkdir -p "$vx_out"
VXLAN_SEEDS="${VXLAN_SEEDS:-32}" python3 - "$out" "$vx_out" <<'PY'
import hashlib, os, sys

src, out = sys.argv[1], sys.argv[2]
n = int(os.environ["VXLAN_SEEDS"])
hdr = bytes([0x08, 0, 0, 0, 0, 0, 42, 0])
inner = [open(os.path.join(src, f), "rb").read() for f in sorted(os.listdir(src))[:n]]
eth = bytes.fromhex("020000000002" "020000000001" "0800")
seeds = [hdr + f for f in inner] + [
    hdr[:5],  # header cut short
    bytes([0, 0, 0, 0, 0, 0, 42, 0]) + eth,  # no I flag
    hdr + eth[:13],  # inner frame too short
    bytes([0xFF] * 8) + eth,  # every reserved bit set, VNI 2^24 - 1
]
for s in seeds:
    with open(os.path.join(out, hashlib.sha1(s).hexdigest()), "wb") as f:
        f.write(s)
print(f"{len(seeds)} VXLAN payloads written to {out}")
PY
