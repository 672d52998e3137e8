#!/usr/bin/env bash
# Install the system packages the build, the demo and the live tests need (Debian).
# Idempotent: runs apt-get only when something is missing. Needs root.
# protobuf-compiler: `protoc`, which the etcd-client crate runs at build time (so the agent
# does not build without it); etcd-server + etcd-client: the etcd members (and etcdctl)
# that the multi-host live tests start in their own namespaces; openssl: their TLS test
# makes its CA and certificates with it. python3-matplotlib: bench/cost_curve.py draws the
# cost curve (docs/img/cost_curve.png) with it. tshark: the port-capture live test reads
# `vswitch ctl capture`'s pcapng (the packet comments) with it.
set -euo pipefail
pkgs=(iproute2 iputils-ping iputils-arping tcpdump keepalived iperf3 ethtool procps psmisc
      protobuf-compiler etcd-server etcd-client openssl python3-matplotlib tshark)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # wireshark-common (tshark's) asks whether non-root users may capture (a setuid
    # dumpcap); answer no beforehand, so the install never stops at a question.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get update -qq
    # iputils-arping replaces the `arping` package: its `arping -U` sends spa = tpa = VIP,
    # which is what a gratuitous ARP is (the other one sends from the interface address).
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
