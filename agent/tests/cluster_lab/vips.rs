//! VIP helpers of the cluster lab: a group as a host sees it, the ownership record in
//! etcd, a keepalived-style claim, a host's metrics. Shared by the multi-host VIP tests.

use serde_json::Value;

use super::Cluster;

impl Cluster {
    /// Group `name` in `host`'s `show vips`, if it has it.
    pub fn group(&self, host: &str, name: &str) -> Option<Value> {
        self.ctl_json(host, &["show", "vips"])
            .ok()?
            .as_array()?
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
    }

    /// Where `host` sees the owner of group `name`: `("local", port)` or
    /// `(owner host, port)`.
    pub fn owner_seen(&self, host: &str, name: &str) -> Option<(String, String)> {
        let g = self.group(host, name)?;
        if let Some(p) = g["owners"].get(0).and_then(|o| o["port"].as_str()) {
            return Some(("local".into(), p.into()));
        }
        let o = g.get("remote_owners")?.get(0)?;
        Some((o["host"].as_str()?.into(), o["port"].as_str()?.into()))
    }

    /// The ownership record of group `name` in etcd.
    pub fn owner_record(&self, name: &str) -> Option<Value> {
        let key = format!("/vswitch/v1/owners/{name}");
        let m = self.etcd_get_prefix(&key)?;
        serde_json::from_str(m.get(&key)?).ok()
    }

    /// `port`'s VM claims `vip` the way keepalived does: adds the address and sends one
    /// gratuitous ARP (`arping -U`).
    pub fn claim(&self, port: &str, vip: &str) {
        let _ = self.vm_run(
            port,
            &["ip", "addr", "add", &format!("{vip}/32"), "dev", "eth0"],
        );
        let (ok, out) = self.vm_run(
            port,
            &["arping", "-U", "-c", "1", "-I", "eth0", "-s", vip, vip],
        );
        assert!(ok || out.contains("Sent 1"), "arping from {port}: {out}");
    }

    /// The value of one series (name and labels as printed) in `host`'s metrics; 0 if
    /// absent.
    pub fn metric(&self, host: &str, series: &str) -> u64 {
        let text = self.ctl(host, &["metrics"]).1;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// True if `port`'s VM gets an answer to one ping of `ip`.
    pub fn pings(&self, port: &str, ip: &str) -> bool {
        self.vm_run(port, &["ping", "-c", "1", "-W", "1", ip]).0
    }

    /// The MAC in the first answer to an ARP request for `ip` from `port`'s VM.
    pub fn arp_answer(&self, port: &str, ip: &str) -> Option<String> {
        let (_, out) = self.vm_run(port, &["arping", "-c", "1", "-w", "2", "-I", "eth0", ip]);
        let at = out.find('[')?;
        Some(out.get(at + 1..at + 18)?.to_lowercase())
    }
}
