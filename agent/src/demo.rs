//! `vswitch demo`: a guided tour on this machine, no VMs needed.
//!
//! It writes the built-in demo configuration (configs/demo.toml, compiled in) to a private
//! directory, starts `vswitch run` on it as a child process, moves the three taps the switch
//! creates into three network namespaces ("VMs"), and then shows: a ping between VMs; a MAC
//! spoof and an IP spoof being dropped (with the counters that say so); the VIP moving when
//! the standby sends a gratuitous ARP, while the client's ARP entry for the VIP is pinned to
//! the old owner's MAC; a hijack attempt by a non-candidate being refused. Everything it
//! created is removed at the end, also on Ctrl-C or failure (a guard does it on drop): the
//! switch's taps are persistent (they outlive the switch), so the guard deletes them after
//! stopping it, as `vswitch cleanup` would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEMO_CONFIG: &str = include_str!("../../configs/demo.toml");
const VMS: [(&str, &str, &str, &str); 3] = [
    ("vm1", "vs-demo1", "02:77:00:00:00:01", "10.77.0.1"),
    ("vm2", "vs-demo2", "02:77:00:00:00:02", "10.77.0.2"),
    ("vm3", "vs-demo3", "02:77:00:00:00:03", "10.77.0.3"),
];
const VIP: &str = "10.77.0.100";

struct Demo {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    netns: Vec<String>,
    stop: Arc<AtomicBool>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        println!("\n== Cleaning up");
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: kill(2) with a PID we spawned and have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            println!("   switch stopped");
        }
        // The switch's taps outlive it (persistent); delete them wherever they are now.
        let mut deleted = Vec::new();
        for (_, tap, _, _) in VMS {
            match vswitch::port::TapPort::delete(tap) {
                Ok(true) => deleted.push(tap),
                Ok(false) => {}
                Err(e) => println!("   tap {tap}: {e}"),
            }
        }
        if !deleted.is_empty() {
            println!("   taps deleted: {}", deleted.join(", "));
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !self.netns.is_empty() {
            println!("   namespaces removed: {}", self.netns.join(", "));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a command inside a VM namespace, echoing it; returns success.
fn vm(ns: &str, cmd: &str) -> bool {
    println!("   [{ns}]$ {cmd}");
    let mut args = vec!["netns", "exec", ns];
    args.extend(cmd.split_whitespace());
    match Command::new("ip").args(&args).output() {
        Ok(o) => {
            for l in String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                println!("      {l}");
            }
            o.status.success()
        }
        Err(e) => {
            println!("      ({e})");
            false
        }
    }
}

impl Demo {
    fn ns(&self, i: usize) -> &str {
        &self.netns[i]
    }

    fn ctl(&self, what: &str) {
        println!("   $ vswitch ctl {what}");
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("vswitch"));
        let mut args = vec!["ctl", "--socket"];
        let sock = self.socket.to_string_lossy().into_owned();
        args.push(&sock);
        args.extend(what.split_whitespace());
        if let Ok(o) = Command::new(exe).args(&args).output() {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                println!("      {l}");
            }
        }
    }

    fn check_stop(&self) -> Result<(), String> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        Ok(())
    }
}

fn need_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("ping", "iputils-ping"),
        ("arping", "iputils-arping"),
    ] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            missing.push(pkg);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the demo needs: apt-get install -y {}",
            missing.join(" ")
        ));
    }
    let v = Command::new("arping")
        .arg("-V")
        .output()
        .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    if !text.contains("iputils") {
        return Err("the demo needs iputils' arping (apt-get install -y iputils-arping); the `arping` package sends gratuitous ARPs from the interface address, not the VIP".into());
    }
    Ok(())
}

fn wait_for(path: &Path, secs: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Run the demo.
pub fn run(keep: bool) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the demo creates network namespaces and taps: run it as root".into());
    }
    need_tools()?;
    for (_, tap, _, _) in VMS {
        if Path::new("/sys/class/net").join(tap).exists() {
            return Err(format!(
                "interface {tap} already exists: is another demo running? (if not, \
                 `vswitch cleanup --config configs/demo.toml` deletes taps a killed demo left)"
            ));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("vswitch-demo-{pid}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The control socket may not live in a world-writable directory (umask 000 would
    // make this one so): set the mode explicitly.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut d = Demo {
        socket: dir.join("ctl.sock"),
        dir,
        child: None,
        netns: Vec::new(),
        stop,
    };
    let cfg = d.dir.join("demo.toml");
    // the demo keeps its VIP state file in its own directory, not the host's
    let text = DEMO_CONFIG.replacen(
        "[switch]\n",
        &format!(
            "[switch]\nstate_dir = \"{}\"\n",
            d.dir.join("state").display()
        ),
        1,
    );
    std::fs::write(&cfg, text).map_err(|e| e.to_string())?;

    println!("== Starting the switch with the built-in configs/demo.toml");
    println!("   three ports vm1..vm3 on taps vs-demo1..3, VIP {VIP} (candidates vm1, vm2)");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&d.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .map_err(|e| format!("cannot start the switch: {e}"))?;
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("vswitch::vip") || line.contains("ERROR") || line.contains("WARN")
                {
                    let msg = line.split("vswitch::vip: ").last().unwrap_or(&line);
                    let msg = msg.split(" event=").next().unwrap_or(msg);
                    println!("      switch log | {msg}");
                }
            }
        });
    }
    d.child = Some(child);
    if !wait_for(&d.socket, 10) {
        return Err("the switch did not come up (no control socket after 10 s)".into());
    }
    for (_, tap, _, _) in VMS {
        if !wait_for(&Path::new("/sys/class/net").join(tap), 5) {
            return Err(format!("tap {tap} did not appear"));
        }
    }

    println!("\n== Making three VMs: network namespaces holding the taps' kernel side");
    for (name, tap, mac, ip) in VMS {
        let ns = format!("vsdemo-{name}-{pid}");
        sh(&["ip", "netns", "add", &ns])?;
        d.netns.push(ns.clone());
        sh(&["ip", "link", "set", tap, "netns", &ns])?;
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        sh(&["ip", "-n", &ns, "link", "set", tap, "address", mac])?;
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            tap,
        ])?;
        sh(&["ip", "-n", &ns, "link", "set", tap, "up"])?;
        println!("   {name}: namespace {ns}, {tap} {mac} {ip}/24");
    }
    std::thread::sleep(Duration::from_millis(300));
    d.check_stop()?;

    let (n1, n2, n3) = (
        d.ns(0).to_string(),
        d.ns(1).to_string(),
        d.ns(2).to_string(),
    );
    println!("\n== 1. vm1 pings vm2 through the switch");
    if !vm(&n1, "ping -c 3 -i 0.2 -W 1 10.77.0.2") {
        return Err("ping vm1 -> vm2 failed".into());
    }
    d.check_stop()?;

    println!("\n== 2. Spoofing is dropped: vm3 pretends to be someone else");
    println!("   vm3 changes its MAC to 02:77:00:00:00:99 (not its port's MAC) and pings vm1:");
    vm(&n3, "ip link set vs-demo3 address 02:77:00:00:00:99");
    let spoof_mac_ok = vm(&n3, "ping -c 2 -i 0.2 -W 1 10.77.0.1");
    vm(&n3, "ip link set vs-demo3 address 02:77:00:00:00:03");
    println!("   vm3 adds an address it was never given (10.77.0.50) and pings from it:");
    vm(&n3, "ip addr add 10.77.0.50/24 dev vs-demo3");
    vm(&n3, "ip neigh flush dev vs-demo3");
    let spoof_ip_ok = vm(&n3, "ping -c 2 -i 0.2 -W 1 -I 10.77.0.50 10.77.0.1");
    vm(&n3, "ip addr del 10.77.0.50/24 dev vs-demo3");
    println!(
        "   result: MAC spoof {}, IP spoof {} (the drop counters say why):",
        if spoof_mac_ok {
            "GOT THROUGH"
        } else {
            "dropped"
        },
        if spoof_ip_ok {
            "GOT THROUGH"
        } else {
            "dropped"
        }
    );
    println!(
        "   (the MAC spoof shows as mac_spoof; for the IP spoof vm3 first ARPs from 10.77.0.50,"
    );
    println!("    and that ARP is dropped as arp_spoof before any IP packet leaves)");
    d.ctl("show stats");
    d.check_stop()?;

    println!(
        "\n== 3. A VIP moves on a gratuitous ARP, and a client with a stale ARP cache follows"
    );
    println!("   vm1 takes the VIP and announces it (what keepalived does on becoming MASTER):");
    vm(&n1, &format!("ip addr add {VIP}/32 dev vs-demo1"));
    vm(&n1, &format!("arping -c 1 -U -I vs-demo1 {VIP}"));
    std::thread::sleep(Duration::from_millis(200));
    vm(&n3, &format!("ping -c 2 -i 0.2 -W 1 {VIP}"));
    println!(
        "   pin vm3's ARP entry for the VIP to vm1's MAC, as a stale (or static) cache would be:"
    );
    vm(
        &n3,
        &format!("ip neigh replace {VIP} lladdr 02:77:00:00:00:01 dev vs-demo3 nud permanent"),
    );
    println!("   before the failover:");
    d.ctl("show vips");
    println!("   failover: vm1 gives the VIP up, vm2 (the standby) takes it and sends ONE gratuitous ARP:");
    vm(&n1, &format!("ip addr del {VIP}/32 dev vs-demo1"));
    vm(&n2, &format!("ip addr add {VIP}/32 dev vs-demo2"));
    vm(&n2, &format!("arping -c 1 -U -I vs-demo2 {VIP}"));
    std::thread::sleep(Duration::from_millis(200));
    println!("   vm3 still has the old MAC for the VIP...");
    vm(&n3, &format!("ip neigh show {VIP}"));
    println!(
        "   ...and still reaches the VIP, now on vm2 (the switch rewrites the destination MAC):"
    );
    let follow = vm(&n3, &format!("ping -c 3 -i 0.2 -W 1 {VIP}"));
    println!("   after the failover:");
    d.ctl("show vips");
    d.check_stop()?;

    println!("\n== 4. A VM that is not a candidate tries to take the VIP: refused");
    vm(&n3, &format!("ip addr add {VIP}/32 dev vs-demo3"));
    vm(&n3, &format!("arping -c 1 -U -I vs-demo3 {VIP}"));
    vm(&n3, &format!("ip addr del {VIP}/32 dev vs-demo3"));
    std::thread::sleep(Duration::from_millis(200));
    d.ctl("show vips");

    if !follow {
        return Err("the client did not follow the VIP".into());
    }
    if keep {
        println!(
            "\n== The demo keeps running. Try:\n   vswitch ctl --socket {} show vips\n   ip netns exec {n3} ping {VIP}\n   Ctrl-C to clean up.",
            d.socket.display()
        );
        while !d.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!(
        "\n== Done: ping, spoof drops, VIP failover with a stale client cache, hijack refused."
    );
    Ok(())
}
