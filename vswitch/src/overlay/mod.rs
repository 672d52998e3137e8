//! The multi-host overlay's table: which other hosts are alive (and their VTEPs), which
//! ports they have (MACs, addresses, VLAN), and the VLAN ↔ VNI map. Built by the control
//! thread from a [`Topology`] the cluster agent sends ([`crate::control::Switch::set_topology`]),
//! published immutable in the [`Snapshot`](crate::pipeline::Snapshot) as `overlay`, read by
//! the pipeline (egress towards other hosts, [`crate::pipeline::process_overlay`] for frames
//! from them).
//!
//! Contract:
//! - a [`Topology`] is the agent's whole view (not a delta): hosts with a live record in the
//!   store (lease alive) and the port records of those hosts. [`Overlay::build`] keeps only
//!   what the datapath may act on: hosts other than this one, ports of those hosts (a port
//!   of a host not in the list, or whose name is a port of this switch, is ignored), ports of
//!   VLANs that have a VNI in `[cluster] vlans`. A host that left is absent from the next
//!   topology: frames to and from its ports stop with that snapshot;
//! - hosts are named by the [`HostId`] the switch interns ([`crate::control::Switch::host_id`]),
//!   the same ids the VIP table's remote owners and candidates use; a host id of
//!   [`MAX_HOSTS`] or more cannot be in a [`HostSet`] (such a host gets no replicated
//!   broadcast; unicast still works);
//! - lookups never allocate: hash maps built once per topology, [`HostSet`] a fixed bitmap;
//! - standalone (no `[cluster]`) the table is [`Overlay::empty`]: no host, no VNI, nothing
//!   ever crosses.
//!
//! Tested with the pipeline's overlay half (`pipeline/overlay/tests.rs`).

pub mod counters;
pub mod gro;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use vip_table::{HostId, IpNet, MacAddr, PortPolicy};

use crate::wire::vxlan::Vni;
pub use counters::{OverlayCounters, VtepCounters, VtepValues};

/// Host ids at or above this are ignored by [`Overlay::build`] (the table is indexed by id).
pub const MAX_HOST_IDS: usize = 1 << 16;

/// The largest number of host ids a [`HostSet`] holds.
pub const MAX_HOSTS: usize = 256;

/// A set of hosts as a fixed bitmap (no allocation on the hot path).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct HostSet([u64; MAX_HOSTS / 64]);

impl HostSet {
    /// The empty set.
    pub const EMPTY: HostSet = HostSet([0; MAX_HOSTS / 64]);
    /// Add a host (ignored past [`MAX_HOSTS`]).
    #[inline]
    pub fn insert(&mut self, h: HostId) {
        let i = h.0 as usize;
        if i < MAX_HOSTS {
            self.0[i / 64] |= 1 << (i % 64);
        }
    }
    /// Membership.
    #[inline]
    pub fn contains(&self, h: HostId) -> bool {
        let i = h.0 as usize;
        i < MAX_HOSTS && self.0[i / 64] & (1 << (i % 64)) != 0
    }
    /// True if empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Keep only the hosts also in `other`.
    #[inline]
    pub fn intersect(&mut self, other: &HostSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a &= *b;
        }
    }
    /// The hosts, ascending.
    pub fn iter(&self) -> impl Iterator<Item = HostId> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(HostId((wi * 64) as u32 + b))
            })
        })
    }
}

impl std::fmt::Debug for HostSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(|h| h.0)).finish()
    }
}

/// The cluster as the agent sees it: live hosts and their ports. A value (no I/O).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Hosts with a live record (this host's included or not: it is skipped).
    pub hosts: Vec<TopologyHost>,
    /// Port records (this host's included or not: they are skipped).
    pub ports: Vec<TopologyPort>,
}

/// One host of a [`Topology`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyHost {
    /// Cluster-unique host name.
    pub name: String,
    /// Its VTEP (the underlay address its VXLAN socket binds).
    pub vtep: Ipv4Addr,
}

/// One port of a [`Topology`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyPort {
    /// Cluster-unique port name.
    pub name: String,
    /// The host it is on.
    pub host: String,
    /// The VM's MAC.
    pub mac: MacAddr,
    /// Fixed IPs.
    pub ips: Vec<IpAddr>,
    /// Allowed-address-pairs.
    pub allowed_address_pairs: Vec<TopologyPair>,
    /// Access VLAN (0 = untagged).
    pub vlan: u16,
}

/// One allowed-address-pair of a [`TopologyPort`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopologyPair {
    /// Address or prefix.
    pub ip: IpNet,
    /// The MAC it may be used with.
    pub mac: MacAddr,
}

/// This host, as [`Overlay::build`] needs it.
#[derive(Clone, Copy, Debug)]
pub struct LocalSide<'a> {
    /// This host's name.
    pub host: &'a str,
    /// Its VTEP.
    pub vtep: Ipv4Addr,
    /// `underlay_mtu - 50`.
    pub inner_mtu: u16,
    /// VLAN → VNI.
    pub vnis: &'a [(u16, Vni)],
}

/// A live remote host.
#[derive(Clone, Debug)]
pub struct RemoteHost {
    /// Its name.
    pub name: String,
    /// Its VTEP.
    pub vtep: Ipv4Addr,
    /// Its counters (shared across snapshots).
    pub counters: Arc<VtepCounters>,
}

/// A port of another host.
#[derive(Clone, Debug)]
pub struct RemotePortEntry {
    /// Its name.
    pub name: String,
    /// Its host.
    pub host: HostId,
    /// Its VLAN.
    pub vlan: u16,
    /// MAC and addresses, as a policy (what it may send from, what it receives).
    pub policy: PortPolicy,
}

/// The overlay table (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    /// This host's VTEP (`None`: standalone).
    pub local_vtep: Option<Ipv4Addr>,
    /// The largest inner frame's L3 length the underlay carries (`underlay_mtu - 50`).
    pub inner_mtu: u16,
    vnis: Vec<(u16, Vni)>,
    /// Live hosts by [`HostId`] index.
    hosts: Vec<Option<RemoteHost>>,
    by_vtep: HashMap<Ipv4Addr, HostId>,
    ports: Vec<RemotePortEntry>,
    /// (VLAN, port or pair MAC) → index in `ports`.
    macs: HashMap<(u16, MacAddr), usize>,
    /// (VLAN, fixed IP or host-prefix pair) → the MAC to answer ARP/NS with.
    neigh: HashMap<(u16, IpAddr), MacAddr>,
    /// VLAN → hosts with a port in it.
    vlan_hosts: Vec<(u16, HostSet)>,
    /// Every live host.
    live: HostSet,
    /// Datagrams refused before a host was known (shared across snapshots).
    pub counters: Arc<OverlayCounters>,
}

impl Overlay {
    /// The table of a standalone switch: nothing crosses.
    pub fn empty() -> Overlay {
        Overlay::default()
    }

    /// Build the table. `local`: this host (`None`: standalone, the result is empty); `is_local_port`: names of this switch's
    /// ports; `host_id`: the switch's interning; `counters`: per-host counters by id.
    pub fn build(
        topo: &Topology,
        local: Option<LocalSide<'_>>,
        is_local_port: impl Fn(&str) -> bool,
        mut host_id: impl FnMut(&str) -> Option<(HostId, Arc<VtepCounters>)>,
        counters: Arc<OverlayCounters>,
    ) -> Overlay {
        let Some(LocalSide {
            host: me,
            vtep,
            inner_mtu,
            vnis,
        }) = local
        else {
            return Overlay {
                counters,
                ..Overlay::default()
            };
        };
        let mut o = Overlay {
            local_vtep: Some(vtep),
            inner_mtu,
            vnis: vnis.to_vec(),
            counters,
            ..Overlay::default()
        };
        for h in &topo.hosts {
            if h.name == me || h.vtep == vtep || o.by_vtep.contains_key(&h.vtep) {
                continue;
            }
            let Some((id, c)) = host_id(&h.name) else {
                continue;
            };
            let i = id.0 as usize;
            if i >= MAX_HOST_IDS {
                continue;
            }
            if o.hosts.len() <= i {
                o.hosts.resize(i + 1, None);
            }
            o.hosts[i] = Some(RemoteHost {
                name: h.name.clone(),
                vtep: h.vtep,
                counters: c,
            });
            o.by_vtep.insert(h.vtep, id);
            o.live.insert(id);
        }
        for p in &topo.ports {
            if p.host == me || is_local_port(&p.name) || o.vni(p.vlan).is_none() {
                continue;
            }
            let Some(id) = o.host_named(&p.host) else {
                continue;
            };
            let mut pol = PortPolicy::new(p.mac);
            for ip in &p.ips {
                pol.allow(p.mac, IpNet::from(*ip));
                o.neigh.entry((p.vlan, *ip)).or_insert(p.mac);
            }
            for a in &p.allowed_address_pairs {
                pol.allow(a.mac, a.ip);
                // only host prefixes are answered for (see docs/cluster.md, "The overlay")
                if a.ip.prefix_len() == a.ip.max_prefix_len() {
                    o.neigh.entry((p.vlan, a.ip.addr())).or_insert(a.mac);
                }
            }
            let idx = o.ports.len();
            for m in pol.allowed_macs() {
                o.macs.entry((p.vlan, m)).or_insert(idx);
            }
            match o.vlan_hosts.iter_mut().find(|(v, _)| *v == p.vlan) {
                Some((_, s)) => s.insert(id),
                None => {
                    let mut s = HostSet::EMPTY;
                    s.insert(id);
                    o.vlan_hosts.push((p.vlan, s));
                }
            }
            o.ports.push(RemotePortEntry {
                name: p.name.clone(),
                host: id,
                vlan: p.vlan,
                policy: pol,
            });
        }
        o
    }

    fn host_named(&self, name: &str) -> Option<HostId> {
        self.hosts.iter().enumerate().find_map(|(i, h)| {
            h.as_ref()
                .filter(|h| h.name == name)
                .map(|_| HostId(i as u32))
        })
    }

    /// True if the switch runs in cluster mode (it has a VTEP).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.local_vtep.is_some()
    }

    /// The VNI carrying `vlan`.
    #[inline]
    pub fn vni(&self, vlan: u16) -> Option<Vni> {
        self.vnis.iter().find(|(v, _)| *v == vlan).map(|(_, n)| *n)
    }

    /// The VLAN carried in `vni`.
    #[inline]
    pub fn vlan_of(&self, vni: Vni) -> Option<u16> {
        self.vnis.iter().find(|(_, n)| *n == vni).map(|(v, _)| *v)
    }

    /// A live host.
    #[inline]
    pub fn host(&self, id: HostId) -> Option<&RemoteHost> {
        self.hosts.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// Live hosts with their ids.
    pub fn hosts(&self) -> impl Iterator<Item = (HostId, &RemoteHost)> {
        self.hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (HostId(i as u32), h)))
    }

    /// Every live host, as a set.
    #[inline]
    pub fn live(&self) -> HostSet {
        self.live
    }

    /// The live host whose VTEP is `addr`.
    #[inline]
    pub fn host_at(&self, addr: Ipv4Addr) -> Option<HostId> {
        self.by_vtep.get(&addr).copied()
    }

    /// The remote port a MAC (port or pair MAC) belongs to in `vlan`.
    #[inline]
    pub fn port_by_mac(&self, vlan: u16, mac: MacAddr) -> Option<&RemotePortEntry> {
        self.macs.get(&(vlan, mac)).and_then(|i| self.ports.get(*i))
    }

    /// The MAC a remote port answers for `ip` with in `vlan` (fixed IPs and host-prefix
    /// pairs only).
    #[inline]
    pub fn neighbour(&self, vlan: u16, ip: IpAddr) -> Option<MacAddr> {
        self.neigh.get(&(vlan, ip)).copied()
    }

    /// The hosts that have a port in `vlan`.
    #[inline]
    pub fn hosts_in_vlan(&self, vlan: u16) -> HostSet {
        self.vlan_hosts
            .iter()
            .find(|(v, _)| *v == vlan)
            .map_or(HostSet::EMPTY, |(_, s)| *s)
    }

    /// Remote ports, in topology order (for views).
    pub fn ports(&self) -> &[RemotePortEntry] {
        &self.ports
    }
}
