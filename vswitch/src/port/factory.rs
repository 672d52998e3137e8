//! Opening the device behind a port's binding: the daemon asks a [`PortFactory`] at start,
//! on reload (new or re-bound ports) and when it re-attaches a port that went down.
//!
//! - [`OsPorts`] (the default) opens real devices: a persistent tap (`tap = ...`, created
//!   if missing) or an AF_PACKET socket on an existing interface (`netdev = ...`);
//! - [`MemoryPorts`] opens [`MemoryPort`]s and keeps their handles, so tests run the
//!   threaded daemon (control thread, worker, channels, snapshots) without root: push frames
//!   into a port, read what it sent, make its device vanish and come back.
//!
//! Contract: `open(binding, create = false)` never creates anything: it attaches to an
//! interface that exists, or fails with [`PortError::Gone`] (`ENODEV`); `exists` is the
//! cheap look the daemon takes before re-attaching.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::af_packet::{Fanout, PacketOptions, PacketPort};
use super::memory::{MemoryPort, MemoryPortHandle};
use super::tap::{TapOptions, TapPort};
use super::{Port, PortError};
use crate::config::PortBinding;

/// Opens port devices for the daemon.
pub trait PortFactory: Send + Sync + std::fmt::Debug {
    /// Open the device behind `binding`. `create`: a tap binding may create its tap (start
    /// and reload); otherwise only an existing interface is attached (re-attachment).
    fn open(&self, binding: &PortBinding, create: bool) -> Result<Box<dyn Port>, PortError>;
    /// Whether the interface behind `binding` exists now.
    fn exists(&self, binding: &PortBinding) -> bool;
    /// Open `n` queues of the device (one per worker): a multi-queue tap, or AF_PACKET
    /// sockets in one fanout group. May return fewer (at least one) when the device cannot
    /// have more (a tap created earlier with one queue); the caller then shares the first
    /// for sending. Default: one queue.
    fn open_queues(
        &self,
        binding: &PortBinding,
        create: bool,
        n: usize,
    ) -> Result<Vec<Box<dyn Port>>, PortError> {
        let _ = n;
        Ok(vec![self.open(binding, create)?])
    }
}

/// Real devices: taps and AF_PACKET sockets.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsPorts;

/// A `tap` port's options: persistent (a namespace on the tap keeps it across a restart of
/// the switch), one queue per worker when there are several.
fn tap_options(multi_queue: bool) -> TapOptions {
    TapOptions {
        persist: true,
        multi_queue,
        ..TapOptions::default()
    }
}

impl OsPorts {
    /// Without `create`, only a tap that exists is attached.
    fn may_open_tap(&self, binding: &PortBinding, create: bool) -> Result<(), PortError> {
        if create || self.exists(binding) {
            Ok(())
        } else {
            Err(PortError::Gone {
                errno: libc::ENODEV,
            })
        }
    }
}

impl PortFactory for OsPorts {
    fn open(&self, binding: &PortBinding, create: bool) -> Result<Box<dyn Port>, PortError> {
        match binding {
            PortBinding::Tap(name) => {
                self.may_open_tap(binding, create)?;
                Ok(Box::new(TapPort::open(name, &tap_options(false))?))
            }
            PortBinding::Netdev(name) => {
                Ok(Box::new(PacketPort::open(name, &PacketOptions::default())?))
            }
        }
    }

    fn exists(&self, binding: &PortBinding) -> bool {
        std::path::Path::new("/sys/class/net")
            .join(binding.ifname())
            .exists()
    }

    fn open_queues(
        &self,
        binding: &PortBinding,
        create: bool,
        n: usize,
    ) -> Result<Vec<Box<dyn Port>>, PortError> {
        if n <= 1 {
            return Ok(vec![self.open(binding, create)?]);
        }
        let mut qs: Vec<Box<dyn Port>> = Vec::with_capacity(n);
        match binding {
            PortBinding::Tap(name) => {
                self.may_open_tap(binding, create)?;
                let opts = tap_options(true);
                match TapPort::open(name, &opts) {
                    Ok(q) => qs.push(Box::new(q)),
                    // a tap that exists with one queue (made by a switch with one worker,
                    // and kept by the VM's namespace) only attaches without IFF_MULTI_QUEUE
                    Err(PortError::Setup { source, .. })
                        if source.raw_os_error() == Some(libc::EINVAL) =>
                    {
                        tracing::warn!(tap = %name, "the tap exists with a single queue: one worker reads it (delete the tap, or restart its VM, for one queue per worker)");
                        return Ok(vec![self.open(binding, create)?]);
                    }
                    Err(e) => return Err(e),
                }
                for _ in 1..n {
                    qs.push(Box::new(TapPort::open(name, &opts)?));
                }
            }
            PortBinding::Netdev(name) => {
                let first = PacketPort::open(
                    name,
                    &PacketOptions {
                        fanout: Some(Fanout::New),
                        ..PacketOptions::default()
                    },
                )?;
                let id = first.fanout_id().unwrap_or(0);
                qs.push(Box::new(first));
                for _ in 1..n {
                    qs.push(Box::new(PacketPort::open(
                        name,
                        &PacketOptions {
                            fanout: Some(Fanout::Join(id)),
                            ..PacketOptions::default()
                        },
                    )?));
                }
            }
        }
        Ok(qs)
    }
}

#[derive(Debug)]
struct Device {
    /// The handles of the queues opened last on this interface.
    handles: Vec<MemoryPortHandle>,
    present: bool,
    opened: u32,
}

/// In-memory devices, by interface name. A tap binding's interface appears when it is first
/// opened; a netdev binding's must be [`add`](Self::add)ed first, like a real interface.
#[derive(Debug, Default)]
pub struct MemoryPorts {
    devices: Mutex<HashMap<String, Device>>,
}

impl MemoryPorts {
    /// No devices yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Device>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes interface `ifname` exist (again) without opening it.
    pub fn add(&self, ifname: &str) {
        self.lock()
            .entry(ifname.to_owned())
            .or_insert(Device {
                handles: Vec::new(),
                present: true,
                opened: 0,
            })
            .present = true;
    }

    /// The handle of (the first queue of) the port opened last on `ifname`.
    pub fn handle(&self, ifname: &str) -> Option<MemoryPortHandle> {
        self.queue(ifname, 0)
    }

    /// The handle of queue `q` of the port opened last on `ifname`.
    pub fn queue(&self, ifname: &str, q: usize) -> Option<MemoryPortHandle> {
        self.lock()
            .get(ifname)
            .and_then(|d| d.handles.get(q).cloned())
    }

    /// How many times `ifname` was opened.
    pub fn opened(&self, ifname: &str) -> u32 {
        self.lock().get(ifname).map_or(0, |d| d.opened)
    }

    /// The interface is deleted: its open port reports the device gone, and it does not
    /// exist until [`add`](Self::add)ed again.
    pub fn remove(&self, ifname: &str) {
        if let Some(d) = self.lock().get_mut(ifname) {
            d.present = false;
            for h in &d.handles {
                h.vanish();
            }
        }
    }
}

impl PortFactory for MemoryPorts {
    fn open(&self, binding: &PortBinding, create: bool) -> Result<Box<dyn Port>, PortError> {
        let mut qs = self.open_queues(binding, create, 1)?;
        qs.pop().ok_or(PortError::Gone {
            errno: libc::ENODEV,
        })
    }

    fn exists(&self, binding: &PortBinding) -> bool {
        self.lock().get(binding.ifname()).is_some_and(|d| d.present)
    }

    fn open_queues(
        &self,
        binding: &PortBinding,
        create: bool,
        n: usize,
    ) -> Result<Vec<Box<dyn Port>>, PortError> {
        let name = binding.ifname();
        let mut devs = self.lock();
        let create = create && matches!(binding, PortBinding::Tap(_));
        let present = devs.get(name).is_some_and(|d| d.present);
        if !present && !create {
            return Err(PortError::Gone {
                errno: libc::ENODEV,
            });
        }
        let mut ports: Vec<Box<dyn Port>> = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..n.max(1) {
            let (port, handle) = MemoryPort::new(name)?;
            ports.push(Box::new(port));
            handles.push(handle);
        }
        let d = devs.entry(name.to_owned()).or_insert(Device {
            handles: Vec::new(),
            present: true,
            opened: 0,
        });
        d.present = true;
        d.opened += 1;
        d.handles = handles;
        Ok(ports)
    }
}

impl<T: PortFactory + ?Sized> PortFactory for std::sync::Arc<T> {
    fn open(&self, binding: &PortBinding, create: bool) -> Result<Box<dyn Port>, PortError> {
        (**self).open(binding, create)
    }
    fn exists(&self, binding: &PortBinding) -> bool {
        (**self).exists(binding)
    }
    fn open_queues(
        &self,
        binding: &PortBinding,
        create: bool,
        n: usize,
    ) -> Result<Vec<Box<dyn Port>>, PortError> {
        (**self).open_queues(binding, create, n)
    }
}
