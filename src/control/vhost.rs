// SPDX-License-Identifier: GPL-2.0

//! `/dev/pvpass-vhost-net`: the vhost-net ioctl protocol
//! (include/uapi/linux/vhost.h), so that a stock QEMU drives a pvpass device
//! as it drives vhost-net (`-netdev tap,...,vhost=on,vhostfd=N`). QEMU
//! emulates the virtio-net-pci function, its config space, MSI-X and the
//! control queue; this file serves the data queues (one receive and one
//! transmit queue: one queue pair per file; a multiqueue NIC is several
//! files on one port, see `PVPASS_VHOST_F_JOIN` and `net::queues`).
//!
//! Before the file is handed to QEMU, its opener names the port
//! (`PVPASS_VHOST_SET_PORT`: switch and MAC; `pvpassctl vhost-exec` does it).
//! Then, as vhost-net: `VHOST_SET_OWNER` binds the file to the calling
//! process's address space (every later ioctl must come from it: EPERM), the
//! memory table maps guest-physical to the owner's user addresses, and
//! `VHOST_NET_SET_BACKEND` on both queues starts the device: it joins its
//! switch, and frames go to the switch, not to the tap QEMU passes (which
//! QEMU's `-netdev tap` syntax requires; it stays unused). Setting the
//! backend to -1 stops the device and leaves the switch.
//!
//! Live migration: with `VHOST_F_LOG_ALL` negotiated and a log base set,
//! every page the device writes (buffers, used rings) is marked in the
//! owner's dirty log, on the device's own thread (frames for a logging
//! guest wait for it, as on virtio-mmio under KVM's dirty logging).
//!
//! What is not offered: indirect descriptors, packed rings, backend
//! features, busy polling.
//!
//! Every ioctl is checked: a ring outside the memory table, overlapping or
//! unaligned regions, a base while running, an index other than 0 or 1
//! fail with an errno (vhost-net's where it has one). The device's checks
//! of every descriptor are those of virtio-mmio: it is the same device.
//!
//! Lock order: `VhostFile::inner`, then the device's locks (`net::Device`).
//! The device's work (`pvpass_rs_vhost_run`) takes `inner` too, from the
//! glue's run lock: so the work is stopped (`VWork::stop`) only with
//! `inner` not held.

use core::ffi::c_void;
use kernel::{
    fs::{
        File,
        LocalFile, //
    },
    ioctl::_IOC_SIZE,
    miscdevice::{
        MiscDevice,
        MiscDeviceRegistration, //
    },
    mm::Mm,
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed,
            Release, //
        },
        global_lock,
        Arc,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

use crate::{
    backend::{
        self,
        Backend,
        Link,
        Port,
        Uplink, //
    },
    glue,
    kvm::{
        self,
        GuestMap,
        MAX_SLOTS, //
    },
    mem::{
        OwnThread, //
        Owner,
    },
    net::{
        queues::{
            QueuePort,
            MAX_QUEUE_PAIRS, //
        },
        Device,
    },
    pvcore::{
        memmap::Slot,
        virtio_mmio::feature,
        virtq::{
            QueueConfig,
            Virtqueue, //
        }, //
    },
    transport::vhost::{
        EventFd,
        KickWatch,
        Signals,
        VhostIrq, //
    },
    uapi::{
        self,
        vhost, //
    }, //
};

/// `VHOST_NET_F_VIRTIO_NET_HDR`: the header is always in the guest's
/// buffers here (no socket to hand it to), so either way is fine.
const NET_F_VIRTIO_NET_HDR: u64 = 1 << 27;
/// `VHOST_F_LOG_ALL`: log every write to guest memory (live migration).
const VHOST_F_LOG_ALL: u64 = 1 << 26;
/// What `VHOST_GET_FEATURES` offers (QEMU asks the backend only about ring
/// and layout bits; the offloads come from the tap).
const FEATURES: u64 = feature::VERSION_1
    | feature::NET_F_MRG_RXBUF
    | feature::RING_EVENT_IDX
    | NET_F_VIRTIO_NET_HDR
    | VHOST_F_LOG_ALL;

/// The offloads the device assumes the guest negotiated with QEMU: QEMU
/// offers all of them for a tap with a virtio-net header (pvpassctl opens it
/// so), and QEMU tells only the tap what the guest took.
const OFFLOADS: u64 = feature::NET_F_CSUM
    | feature::NET_F_HOST_TSO4
    | feature::NET_F_HOST_TSO6
    | feature::NET_F_GUEST_CSUM
    | feature::NET_F_GUEST_TSO4
    | feature::NET_F_GUEST_TSO6;
/// vhost device ids start here (attachments count from 1).
const FIRST_ID: u32 = 0x4000_0000;
static NEXT_ID: Atomic<u32> = Atomic::new(FIRST_ID);

/// A vhost device with an owner, as LIST, the counters (with
/// `PVPASS_F_ANY_FILE`) and debugfs see it.
pub(crate) struct Listed {
    pub(crate) dev: Arc<Device>,
    pub(crate) owner_pid: i32,
    pub(crate) backend: backend::Name,
}

impl Listed {
    pub(crate) fn info(&self) -> uapi::Info {
        uapi::Info {
            id: self.dev.id,
            flags: uapi::INFO_VHOST,
            owner_pid: self.owner_pid,
            mac: self.dev.mac(),
            backend: self.backend,
            ..Default::default()
        }
    }
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the
    // misc devices (the only ways in) are registered.
    unsafe(uninit) static LISTED: Mutex<KVec<Listed>> = KVec::new();
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `LISTED`.
    unsafe { LISTED.init() };
    // SAFETY: As above, for `GROUPS`.
    unsafe { GROUPS.init() };
    // SAFETY: As above, for `RULES`.
    unsafe { RULES.init() };
}

/// The vhost device `id`, whichever file it is on.
pub(crate) fn find_any(id: u32) -> Option<Arc<Device>> {
    LISTED
        .lock()
        .iter()
        .find(|l| l.dev.id == id)
        .map(|l| l.dev.clone())
}

/// Call `f` for every vhost device with an owner, oldest first.
pub(crate) fn for_each(mut f: impl FnMut(&Listed)) {
    for l in LISTED.lock().iter() {
        f(l);
    }
}

fn unlist(id: u32) {
    let gone = {
        let mut l = LISTED.lock();
        l.iter()
            .position(|x| x.dev.id == id)
            .and_then(|i| l.remove(i).ok())
    };
    drop(gone);
}

/// One ring as QEMU set it up.
#[derive(Default)]
struct Ring {
    num: u32,
    addr: Option<vhost::VringAddr>,
    /// The next avail index to serve (SET/GET_VRING_BASE).
    base: u16,
    kick: Option<KickWatch>,
    /// NET_SET_BACKEND gave this ring a backend fd.
    backend: bool,
}

/// The file's state once it has an owner.
struct Owned {
    mm: ARef<Mm>,
    generation: Arc<Atomic<u64>>,
    /// The memory table (of generation `generation`).
    map: KBox<GuestMap>,
    map_set: bool,
    features: u64,
    /// VHOST_SET_LOG_BASE: the dirty log's user address (one bit a guest
    /// page), and VHOST_SET_LOG_FD's eventfd, signalled after each mark.
    log_base: Option<u64>,
    log_fd: Option<EventFd>,
    rings: [Ring; 2],
    signals: Arc<Signals>,
    /// The device, once the file has a port: at SET_OWNER when it was
    /// named (PVPASS_VHOST_SET_PORT), else at its first NET_SET_BACKEND,
    /// from the vhost rule of the tap QEMU passes there.
    bound: Option<Bound>,
    /// The queue pair runs (on its port's backend).
    started: bool,
}

/// A file's device and its place on the port.
struct Bound {
    dev: Arc<Device>,
    /// The port's queue pair this file is.
    qp: QueuePair,
}

/// A network interface name (IFNAMSIZ), NUL padded.
type TapName = [u8; uapi::NAME_LEN];

/// A vhost rule (PVPASS_VHOST_RULE_ADD): the port of the unnamed files
/// whose tap is `tap`.
#[derive(Clone, Copy)]
struct Rule {
    tap: TapName,
    backend: backend::Name,
    mac: [u8; 6],
}

/// The queue pairs of one guest NIC (a vhost file each, `vhostfds=`): the
/// port they share on the backend and its link, made by the first file's
/// PVPASS_VHOST_SET_PORT and joined by the others' (`PVPASS_VHOST_F_JOIN`).
#[pin_data]
struct Group {
    port: Arc<QueuePort>,
    backend: Arc<dyn Backend>,
    /// Made from the vhost rule of this tap (files with the same tap join
    /// it); `None` for a port named with PVPASS_VHOST_SET_PORT.
    tap: Option<TapName>,
    #[pin]
    link: Mutex<GroupLink>,
}

#[derive(Default)]
struct GroupLink {
    /// On the backend: while a queue pair runs.
    link: Option<Link>,
    /// The port's uplink, which each running queue pair's is made from.
    uplink: Option<KBox<dyn Uplink>>,
    running: u32,
    /// Queue pair indices that files hold.
    taken: [bool; MAX_QUEUE_PAIRS],
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the
    // misc devices are registered.
    unsafe(uninit) static GROUPS: Mutex<KVec<Arc<Group>>> = KVec::new();
}

global_lock! {
    // SAFETY: As `GROUPS`.
    unsafe(uninit) static RULES: Mutex<KVec<Rule>> = KVec::new();
}

/// A file's place in a group.
#[derive(Clone)]
struct QueuePair {
    group: Arc<Group>,
    index: usize,
    /// The device id of this queue pair (the port's is the first's).
    id: u32,
}

impl Group {
    /// Take a free queue pair index. ENOSPC with `MAX_QUEUE_PAIRS` taken.
    fn take(&self) -> Result<usize> {
        let mut g = self.link.lock();
        let i = g.taken.iter().position(|t| !t).ok_or(ENOSPC)?;
        if let Some(t) = g.taken.get_mut(i) {
            *t = true;
        }
        Ok(i)
    }

    /// Give queue pair `index` back; the last one takes the group off the
    /// list.
    fn leave(self: &Arc<Self>, index: usize) {
        let empty = {
            let mut g = self.link.lock();
            if let Some(t) = g.taken.get_mut(index) {
                *t = false;
            }
            g.taken.iter().all(|t| !t)
        };
        if empty {
            let gone = {
                let mut l = GROUPS.lock();
                l.iter()
                    .position(|x| Arc::ptr_eq(x, self))
                    .and_then(|i| l.remove(i).ok())
            };
            drop(gone);
        }
    }

    /// Queue pair `index` starts with `dev`: the port joins the backend
    /// with the first; returns the queue pair's uplink.
    fn start(&self, index: usize, dev: &Arc<Device>) -> Result<KBox<dyn Uplink>> {
        let mut g = self.link.lock();
        if g.link.is_none() {
            let port: Arc<dyn Port> = self.port.clone();
            let (link, up) = Link::connect(&self.backend, port)
                .map_err(|e| ratelimited("the port cannot join its switch (MAC in use?)", e))?;
            g.link = Some(link);
            g.uplink = Some(up);
        }
        let inner = match g.uplink.as_ref() {
            Some(u) => u.another(),
            None => Err(EINVAL),
        };
        let up = match inner.and_then(|u| self.port.uplink(index, u)) {
            Ok(up) => up,
            Err(e) => {
                if g.running == 0 {
                    let (link, up) = (g.link.take(), g.uplink.take());
                    drop(g);
                    drop(up);
                    drop(link);
                }
                return Err(e);
            }
        };
        self.port.add(index, dev.clone());
        g.running += 1;
        Ok(up)
    }

    /// Queue pair `index` stopped: the last one takes the port off the
    /// backend.
    fn stop(&self, index: usize) {
        self.port.remove(index);
        let mut g = self.link.lock();
        g.running = g.running.saturating_sub(1);
        if g.running == 0 {
            let (link, up) = (g.link.take(), g.uplink.take());
            drop(g);
            // Uplink then link, with no lock held (the disconnect drops the
            // port's last reference on the backend).
            drop(up);
            drop(link);
        }
    }
}

#[derive(Default)]
struct Vhost {
    /// PVPASS_VHOST_SET_PORT: the queue pair of a port.
    port: Option<QueuePair>,
    owned: Option<Owned>,
}

/// The device's own thread on this transport: a thread in the owner's
/// address space (see glue/vhost.c), with the memory table.
struct VhostThread<'a> {
    map: &'a GuestMap,
    generation: &'a Atomic<u64>,
    /// The dirty log's user address while QEMU logs (LOG_ALL negotiated
    /// and a log base set: live migration).
    log: Option<u64>,
    log_fd: Option<&'a EventFd>,
}

impl OwnThread for VhostThread<'_> {
    fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    fn snapshot(&self, map: &mut GuestMap) -> Result<bool> {
        map.clone_from(self.map);
        Ok(self.log.is_some())
    }

    /// One bit a guest page in the owner's memory at the log base (vhost's
    /// `log_write`), set atomically: QEMU clears bits as it reads them.
    fn mark_dirty(&self, gfn: u64) {
        let Some(base) = self.log else { return };
        let Some(addr) = base.checked_add(gfn / 8) else {
            return;
        };
        // SAFETY: On the owner's own thread (`VhostThread` is only made
        // there), where `current->mm` is the owner's: the glue pins the
        // log's page of that mm.
        let r = unsafe { glue::pvpass_log_set_bit(addr, (gfn % 8) as u32) };
        if r != 0 {
            let _ = ratelimited(
                "dirty log not writable: a page written now may be missed by the migration",
                Error::from_errno(r),
            );
        }
        if let Some(fd) = self.log_fd {
            fd.signal();
        }
    }

    fn dirty_room(&self) -> u32 {
        u32::MAX
    }
}

#[pin_data]
pub(crate) struct VhostFile {
    #[pin]
    inner: Mutex<Vhost>,
}

/// EOPNOTSUPP (vhost-net's answer to what it does not offer; not among the
/// kernel crate's named errors).
fn eopnotsupp() -> Error {
    Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))
}

fn ratelimited(what: &str, e: Error) -> Error {
    if kvm::ratelimit() {
        pr_info!("vhost: {} ({})\n", what, e.to_errno());
    }
    e
}

/// A ring index of the one queue pair: 0 receive, 1 transmit (ENOBUFS
/// otherwise, as vhost-net).
fn ring_index(i: u32) -> Result<usize> {
    match i {
        0 | 1 => Ok(i as usize),
        _ => Err(Error::from_errno(-(kernel::bindings::ENOBUFS as i32))),
    }
}

/// The guest-physical address of `len` bytes at the owner's user address
/// `hva`, inside one region of `map`.
fn to_gpa(map: &GuestMap, hva: u64, len: u64) -> Result<u64> {
    map.slots()
        .iter()
        .find(|s| hva >= s.host && hva.checked_add(len).is_some_and(|e| e <= s.host + s.size))
        .map(|s| s.gpa + (hva - s.host))
        .ok_or(EFAULT)
}

impl Owned {
    fn own(&self) -> VhostThread<'_> {
        VhostThread {
            map: &self.map,
            generation: &self.generation,
            log: self
                .log_base
                .filter(|_| self.features & VHOST_F_LOG_ALL != 0),
            log_fd: self.log_fd.as_ref(),
        }
    }

    /// The guest's memory map or its logging changed: the device re-reads
    /// both before it goes on (`Device::refresh`), and frames wait for its
    /// own thread meanwhile.
    ///
    /// The table's own generation moves with it: the device compares the
    /// generation it read the map at (the table's) with the owner's now,
    /// and a table left behind would look stale for ever.
    fn bump(&mut self) {
        let next = self.generation.load(Relaxed).wrapping_add(1);
        self.map.generation = next;
        self.generation.store(next, Release);
        self.signals.work().queue(false);
    }

    /// The queue configuration of ring `i`, checked against the memory table.
    fn queue(&self, i: usize) -> Result<QueueConfig> {
        let r = self.rings.get(i).ok_or(EINVAL)?;
        let a = r.addr.ok_or(EINVAL)?;
        let size = u16::try_from(r.num).map_err(|_| EINVAL)?;
        let n = u64::from(size);
        let event_idx = self.features & feature::RING_EVENT_IDX != 0;
        let extra = if event_idx { 6 } else { 4 };
        let cfg = QueueConfig {
            size,
            desc: to_gpa(&self.map, a.desc_user_addr, 16 * n)?,
            avail: to_gpa(&self.map, a.avail_user_addr, 2 * n + extra)?,
            used: to_gpa(&self.map, a.used_user_addr, 8 * n + extra)?,
            event_idx,
            indirect: false,
        };
        Virtqueue::new(cfg, &*self.map).map_err(|_| EINVAL)?;
        Ok(cfg)
    }

    /// Both rings have a backend: join the switch (or the port's queue
    /// pairs already on it) and start the queues.
    fn start(&mut self) -> Result {
        if !self.map_set {
            return Err(ratelimited("backend set before the memory table", EINVAL));
        }
        let queues = [self.queue(0)?, self.queue(1)?];
        let b = self.bound.as_ref().ok_or(EINVAL)?;
        let uplink = b.qp.group.start(b.qp.index, &b.dev)?;
        b.dev.set_uplink(uplink);
        self.started = true;
        let f = self.features | OFFLOADS;
        let bases = [self.rings[0].base, self.rings[1].base];
        let own = self.own();
        b.dev.vhost_start(&own, f, queues, bases);
        Ok(())
    }

    /// A ring lost its backend: stop both, leave the switch, keep the bases.
    fn stop(&mut self) {
        if !core::mem::take(&mut self.started) {
            return;
        }
        let Some(b) = self.bound.as_ref() else { return };
        b.qp.group.stop(b.qp.index);
        let bases = b.dev.vhost_stop();
        for (r, b) in self.rings.iter_mut().zip(bases) {
            if let Some(b) = b {
                r.base = b;
            }
        }
    }

    fn running(&self) -> bool {
        self.started
    }

    /// The file is queue pair `qp` from now on: make its device.
    fn bind(&mut self, qp: QueuePair) -> Result {
        let owner = Owner::Mm {
            mm: self.mm.clone(),
            generation: self.generation.clone(),
        };
        let (id, mac) = (qp.id, qp.group.port.mac());
        let dev = Device::new_vhost(id, mac, VhostIrq(self.signals.clone()), owner)?;
        LISTED.lock().push(
            Listed {
                dev: dev.clone(),
                owner_pid: kvm::current_tgid(),
                backend: *qp.group.backend.name(),
            },
            GFP_KERNEL,
        )?;
        pr_info!(
            "vhost device {} of pid {}, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
            id,
            kvm::current_tgid(),
            mac[0],
            mac[1],
            mac[2],
            mac[3],
            mac[4],
            mac[5]
        );
        self.bound = Some(Bound { dev, qp });
        Ok(())
    }
}

impl VhostFile {
    fn require_owner(o: &Option<Owned>) -> Result<&Owned> {
        let o = o.as_ref().ok_or(EPERM)?;
        if kvm::current_mm_is(&o.mm) {
            Ok(o)
        } else {
            Err(EPERM)
        }
    }

    fn set_owner(&self, v: &mut Vhost) -> Result {
        if v.owned.is_some() {
            return Err(EBUSY);
        }
        // SAFETY: Reads `current->mm`; no preconditions.
        let cur = unsafe { glue::pvpass_current_mm() };
        if cur.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `current->mm` of a user thread in an ioctl is a live mm,
        // which the `ARef` takes an `mm_count` reference on.
        let mm: ARef<Mm> = unsafe { Mm::from_raw(cur.cast()) }.into();
        let generation = Arc::new(Atomic::new(0u64), GFP_KERNEL)?;
        // SAFETY: The work's context is this file, which outlives it: the
        // file's `release` stops the work (`teardown`) before it is freed.
        let signals = unsafe { Signals::new(core::ptr::from_ref::<Self>(self).cast::<c_void>()) }?;
        // SAFETY: The all-zero map is the empty map of generation 0.
        let map = unsafe { crate::mem::new_zeroed::<GuestMap>() }?;
        let mut o = Owned {
            mm,
            generation,
            map,
            map_set: false,
            features: 0,
            log_base: None,
            log_fd: None,
            rings: Default::default(),
            signals,
            bound: None,
            started: false,
        };
        // A file nobody named gets its port from its tap's rule at its
        // first NET_SET_BACKEND (libvirt opens the device itself).
        if let Some(qp) = v.port.clone() {
            o.bind(qp)?;
        }
        v.owned = Some(o);
        Ok(())
    }

    /// NET_SET_BACKEND with a tap: an unnamed file takes its port from the
    /// tap's rule (the file's queue pair then is in `port` as a named
    /// file's); a port made from a rule takes only its own tap.
    fn bind_tap(port: &mut Option<QueuePair>, o: &mut Owned, fd: i32) -> Result {
        let tap = tap_name(fd)?;
        if let Some(b) = o.bound.as_ref() {
            return match (b.qp.group.tap, tap) {
                (None, _) => Ok(()),
                (Some(t), Some(n)) if t == n => Ok(()),
                _ => Err(ratelimited(
                    "NET_SET_BACKEND: not the tap this port was made for",
                    EINVAL,
                )),
            };
        }
        let Some(tap) = tap else {
            return Err(ratelimited(
                "NET_SET_BACKEND on an unnamed file: the fd is not a tap (name the port with pvpassctl vhost-exec, or pass a tap with a vhost rule)",
                EINVAL,
            ));
        };
        let qp = rule_port(&tap)?;
        if let Err(e) = o.bind(qp.clone()) {
            qp.group.leave(qp.index);
            return Err(e);
        }
        *port = Some(qp);
        Ok(())
    }

    fn set_mem_table(o: &mut Owned, user: UserPtr) -> Result {
        let mut r = UserSlice::new(user, usize::MAX).reader();
        let head: vhost::Memory = r.read()?;
        let n = head.nregions as usize;
        if n > MAX_SLOTS {
            return Err(ratelimited("memory table with more than 32 regions", E2BIG));
        }
        let next = o.generation.load(Relaxed).wrapping_add(1);
        // Built aside: a bad table leaves the old one in place.
        // SAFETY: As in `set_owner`.
        let mut map = unsafe { crate::mem::new_zeroed::<GuestMap>() }?;
        map.clear(next);
        for _ in 0..n {
            let reg: vhost::MemoryRegion = r.read()?;
            let ok = reg
                .guest_phys_addr
                .checked_add(reg.memory_size)
                .zip(reg.userspace_addr.checked_add(reg.memory_size))
                .is_some();
            if !ok {
                return Err(ratelimited("memory region wraps around", EINVAL));
            }
            map.insert(Slot {
                gpa: reg.guest_phys_addr,
                size: reg.memory_size,
                host: reg.userspace_addr,
                read_only: false,
            })
            .map_err(|_| {
                ratelimited(
                    "memory region empty, unaligned or overlapping another",
                    EINVAL,
                )
            })?;
        }
        // Queues that run are checked against the new table at their next
        // kick (`Device::refresh`), and break if it lost their rings.
        o.map = map;
        o.map_set = true;
        o.generation.store(next, Release);
        o.signals.work().queue(false);
        Ok(())
    }

    fn set_backend(o: &mut Owned, f: vhost::VringFile) -> Result {
        let i = ring_index(f.index)?;
        if f.fd == -1 {
            o.stop();
            if let Some(r) = o.rings.get_mut(i) {
                r.backend = false;
            }
            return Ok(());
        }
        // The tap itself is not used (frames go to the switch), only
        // checked to be an open file.
        let fd = u32::try_from(f.fd).map_err(|_| EBADF)?;
        drop(LocalFile::fget(fd)?);
        if let Some(r) = o.rings.get_mut(i) {
            r.backend = true;
        }
        if o.rings.iter().all(|r| r.backend) && !o.running() {
            if let Err(e) = o.start() {
                if let Some(r) = o.rings.get_mut(i) {
                    r.backend = false;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn ring_ioctl(o: &mut Owned, cmd: u32, user: UserSlice) -> Result {
        let (mut reader, mut writer) = user.reader_writer();
        match cmd {
            vhost::SET_VRING_NUM | vhost::SET_VRING_BASE => {
                let s: vhost::VringState = reader.read()?;
                let i = ring_index(s.index)?;
                if o.running() {
                    return Err(EBUSY);
                }
                let r = o.rings.get_mut(i).ok_or(EINVAL)?;
                if cmd == vhost::SET_VRING_NUM {
                    if s.num == 0 || s.num > 32768 || !s.num.is_power_of_two() {
                        return Err(EINVAL);
                    }
                    r.num = s.num;
                } else {
                    r.base = u16::try_from(s.num).map_err(|_| EINVAL)?;
                }
            }
            vhost::GET_VRING_BASE => {
                let mut s: vhost::VringState = reader.read()?;
                let i = ring_index(s.index)?;
                // As vhost-net, only meaningful once stopped (QEMU asks then).
                o.stop();
                s.num = o.rings.get(i).map_or(0, |r| u32::from(r.base));
                writer.write(&s)?;
            }
            vhost::SET_VRING_ADDR => {
                let a: vhost::VringAddr = reader.read()?;
                let i = ring_index(a.index)?;
                if a.flags & !vhost::VRING_F_LOG != 0 {
                    return Err(EINVAL);
                }
                if a.desc_user_addr % 16 != 0
                    || a.avail_user_addr % 2 != 0
                    || a.used_user_addr % 4 != 0
                {
                    return Err(EINVAL);
                }
                let r = o.rings.get_mut(i).ok_or(EINVAL)?;
                // While running, only the logging may change (QEMU turns
                // it on and off this way for a migration): the device logs
                // the used ring it knows.
                let same = r.addr.is_some_and(|b| {
                    (b.desc_user_addr, b.avail_user_addr, b.used_user_addr)
                        == (a.desc_user_addr, a.avail_user_addr, a.used_user_addr)
                });
                let running = o.started;
                if running && !same {
                    return Err(EBUSY);
                }
                r.addr = Some(a);
            }
            vhost::SET_VRING_KICK | vhost::SET_VRING_CALL | vhost::SET_VRING_ERR => {
                let f: vhost::VringFile = reader.read()?;
                let i = ring_index(f.index)?;
                if f.fd < -1 {
                    return Err(EINVAL);
                }
                let fd = (f.fd != -1).then_some(f.fd);
                match cmd {
                    vhost::SET_VRING_KICK => {
                        let watch = match fd {
                            // SAFETY: The work lives in `signals`, which
                            // `Owned` keeps for longer than its rings (field
                            // order; `teardown` drops the kicks first).
                            Some(fd) => Some(unsafe { KickWatch::new(fd, o.signals.work()) }?),
                            None => None,
                        };
                        let old = o
                            .rings
                            .get_mut(i)
                            .and_then(|r| core::mem::replace(&mut r.kick, watch));
                        drop(old);
                    }
                    vhost::SET_VRING_CALL => {
                        o.signals.set_call(i, fd.map(EventFd::from_fd).transpose()?)
                    }
                    _ => o.signals.set_err(i, fd.map(EventFd::from_fd).transpose()?),
                }
            }
            vhost::SET_VRING_BUSYLOOP_TIMEOUT => {
                // Accepted, without effect: the device never busy-polls.
                let s: vhost::VringState = reader.read()?;
                ring_index(s.index)?;
            }
            vhost::GET_VRING_BUSYLOOP_TIMEOUT => {
                let mut s: vhost::VringState = reader.read()?;
                ring_index(s.index)?;
                s.num = 0;
                writer.write(&s)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(())
    }
}

/// PVPASS_VHOST_SET_PORT: a new port (its first queue pair), or with
/// `PVPASS_VHOST_F_JOIN` the next queue pair of the port whose first queue
/// pair is device `req.id` (same MAC; ENOENT if there is none, ENOSPC with
/// `MAX_QUEUE_PAIRS`).
fn set_port(req: &uapi::VhostPort) -> Result<QueuePair> {
    if req.flags & !uapi::VHOST_F_JOIN != 0 || req.pad != [0; 2] {
        return Err(EINVAL);
    }
    if req.mac == [0; 6] || req.mac[0] & 1 != 0 {
        return Err(ratelimited("port MAC zero or multicast", EINVAL));
    }
    let name = switch_of(&req.backend)?;
    if req.flags & uapi::VHOST_F_JOIN != 0 {
        let group = GROUPS
            .lock()
            .iter()
            .find(|g| g.port.id() == req.id)
            .cloned()
            .ok_or(ENOENT)?;
        return join(
            group,
            req.mac,
            &name,
            "VHOST_F_JOIN with another MAC or switch than the port's",
            EINVAL,
        );
    }
    let backend = backend::find(&name).ok_or(ENODEV)?;
    new_group(&mut GROUPS.lock(), backend, req.mac, None)
}

/// The switch a request names: "" is the default one.
fn switch_of(raw: &[u8; uapi::NAME_LEN]) -> Result<backend::Name> {
    if *raw == [0; uapi::NAME_LEN] {
        let mut d = [0u8; uapi::NAME_LEN];
        for (d, s) in d.iter_mut().zip(backend::DEFAULT) {
            *d = *s;
        }
        Ok(d)
    } else {
        backend::parse_name(raw)
    }
}

/// The next queue pair of `group`, whose port must have `mac` on switch
/// `name` (else `err`, with `why` logged).
fn join(
    group: Arc<Group>,
    mac: [u8; 6],
    name: &backend::Name,
    why: &str,
    err: Error,
) -> Result<QueuePair> {
    if group.port.mac() != mac || group.backend.name() != name {
        return Err(ratelimited(why, err));
    }
    let index = group.take()?;
    let id = NEXT_ID.fetch_add(1, Relaxed);
    Ok(QueuePair { group, index, id })
}

/// A new port on `backend` and its first queue pair, on `groups`.
fn new_group(
    groups: &mut KVec<Arc<Group>>,
    backend: Arc<dyn Backend>,
    mac: [u8; 6],
    tap: Option<TapName>,
) -> Result<QueuePair> {
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let group = Arc::pin_init(
        try_pin_init!(Group {
            port: QueuePort::new(id, mac)?,
            backend,
            tap,
            link <- new_mutex!(GroupLink::default()),
        }),
        GFP_KERNEL,
    )?;
    let index = group.take()?;
    groups.push(group.clone(), GFP_KERNEL)?;
    Ok(QueuePair { group, index, id })
}

/// The interface name of the tap behind `fd`, or `None` if `fd` is not a
/// tap (or a queue detached from its interface). EBADF if not open.
fn tap_name(fd: i32) -> Result<Option<TapName>> {
    let mut name: TapName = [0; uapi::NAME_LEN];
    // SAFETY: `name` has room for IFNAMSIZ (16) bytes, as the glue needs.
    match unsafe { glue::pvpass_tap_name(fd, name.as_mut_ptr()) } {
        0 => Ok(Some(name)),
        r if r == -(kernel::bindings::EINVAL as i32) => Ok(None),
        r => Err(Error::from_errno(r)),
    }
}

/// The next queue pair of the port made from `tap`'s rule: the port its
/// other files made, or a new one. ENOENT without a rule.
fn rule_port(tap: &TapName) -> Result<QueuePair> {
    let Some(rule) = RULES.lock().iter().find(|r| r.tap == *tap).copied() else {
        if kvm::ratelimit() {
            pr_info!(
                "vhost: no vhost rule for tap {} (pvpassctl vhost-rule add --tap {} --mac ...)\n",
                shown(tap),
                shown(tap)
            );
        }
        return Err(ENOENT);
    };
    // Under GROUPS from the lookup to the push, so that two files of one
    // tap never make two ports.
    let mut groups = GROUPS.lock();
    if let Some(group) = groups.iter().find(|g| g.tap == Some(*tap)).cloned() {
        drop(groups);
        return join(
            group,
            rule.mac,
            &rule.backend,
            "the tap's port was made from an older rule (another MAC or switch): close its files first",
            EBUSY,
        );
    }
    let backend = backend::find(&rule.backend).ok_or(ENODEV)?;
    new_group(&mut groups, backend, rule.mac, Some(*tap))
}

/// A NUL-padded name for a log line.
fn shown(name: &[u8; uapi::NAME_LEN]) -> &kernel::str::BStr {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    kernel::str::BStr::from_bytes(name.get(..len).unwrap_or(&[]))
}

/// A rule's tap name, checked as the kernel checks an interface name
/// (`dev_valid_name`): 1 to 15 bytes, NUL padded, not "." or "..", no '/',
/// ':' or whitespace.
fn valid_tap(raw: &[u8; uapi::NAME_LEN]) -> Result<TapName> {
    let len = raw.iter().position(|&b| b == 0).ok_or(EINVAL)?;
    let (name, rest) = raw.split_at(len);
    let bad = |b: &u8| matches!(*b, b'/' | b':' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    if len == 0
        || name == b"."
        || name == b".."
        || name.iter().any(bad)
        || rest.iter().any(|&b| b != 0)
    {
        return Err(EINVAL);
    }
    Ok(*raw)
}

/// PVPASS_VHOST_RULE_ADD.
pub(crate) fn rule_add(req: &uapi::VhostRule) -> Result {
    if req.flags != 0 || req.reserved != 0 || req.pad != [0; 2] {
        return Err(EINVAL);
    }
    let tap = valid_tap(&req.tap)?;
    if req.mac == [0; 6] || req.mac[0] & 1 != 0 {
        return Err(EINVAL);
    }
    let name = switch_of(&req.backend)?;
    backend::find(&name).ok_or(ENODEV)?;
    let mut rules = RULES.lock();
    if rules.iter().any(|r| r.tap == tap) {
        return Err(EEXIST);
    }
    if rules.len() >= uapi::MAX_VHOST_RULES {
        return Err(ENOSPC);
    }
    rules.push(
        Rule {
            tap,
            backend: name,
            mac: req.mac,
        },
        GFP_KERNEL,
    )?;
    drop(rules);
    pr_info!(
        "vhost rule: tap {} -> switch {}\n",
        shown(&tap),
        shown(&name)
    );
    Ok(())
}

/// PVPASS_VHOST_RULE_DEL: by tap name.
pub(crate) fn rule_del(req: &uapi::VhostRule) -> Result {
    let tap = valid_tap(&req.tap)?;
    let gone = {
        let mut rules = RULES.lock();
        let i = rules.iter().position(|r| r.tap == tap).ok_or(ENOENT)?;
        rules.remove(i)
    };
    drop(gone);
    pr_info!("vhost rule for tap {} deleted\n", shown(&tap));
    Ok(())
}

/// Call `f` with every rule as VHOST_RULE_LIST gives it, oldest first.
pub(crate) fn for_each_rule(mut f: impl FnMut(uapi::VhostRule)) {
    for r in RULES.lock().iter() {
        f(uapi::VhostRule {
            tap: r.tap,
            backend: r.backend,
            mac: r.mac,
            ..Default::default()
        });
    }
}

/// Stop everything `o` started, in the order the lock order needs: the
/// kicks (no new work), the work (waited for; `inner` must not be held),
/// the switch, the device's pins.
fn teardown(mut o: Owned) {
    for r in o.rings.iter_mut() {
        drop(r.kick.take());
    }
    o.signals.work().stop();
    let Some(b) = o.bound.take() else { return };
    if core::mem::take(&mut o.started) {
        b.qp.group.stop(b.qp.index);
    }
    b.dev.shutdown();
    unlist(b.dev.id);
}

#[vtable]
impl MiscDevice for VhostFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                inner <- new_mutex!(Vhost::default()),
            }),
            GFP_KERNEL,
        )
    }

    fn release(me: Pin<KBox<Self>>, _file: &File) {
        let (owned, port) = {
            let mut v = me.inner.lock();
            (v.owned.take(), v.port.take())
        };
        if let Some(o) = owned {
            teardown(o);
        }
        if let Some(qp) = port {
            qp.group.leave(qp.index);
        }
    }

    fn ioctl(me: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let ptr = UserPtr::from_addr(arg);
        let user = UserSlice::new(ptr, _IOC_SIZE(cmd));
        let mut v = me.inner.lock();
        match cmd {
            uapi::VHOST_SET_PORT => {
                super::file::require_admin()?;
                if v.owned.is_some() {
                    return Err(EBUSY);
                }
                let (mut reader, mut writer) = user.reader_writer();
                let mut req: uapi::VhostPort = reader.read()?;
                let qp = set_port(&req)?;
                req.id = qp.id;
                // A file names its port once more: the old queue pair goes.
                if let Some(old) = v.port.replace(qp) {
                    old.group.leave(old.index);
                }
                writer.write(&req)?;
            }
            vhost::SET_OWNER => me.set_owner(&mut v)?,
            vhost::GET_FEATURES => user.writer().write(&FEATURES)?,
            vhost::GET_BACKEND_FEATURES => user.writer().write(&0u64)?,
            vhost::SET_BACKEND_FEATURES => {
                let f: u64 = user.reader().read()?;
                if f != 0 {
                    return Err(eopnotsupp());
                }
            }
            vhost::RESET_OWNER => {
                Self::require_owner(&v.owned)?;
                let o = v.owned.take();
                drop(v);
                if let Some(o) = o {
                    teardown(o);
                }
            }
            vhost::SET_FEATURES => {
                let f: u64 = user.reader().read()?;
                Self::require_owner(&v.owned)?;
                if f & !FEATURES != 0 {
                    return Err(eopnotsupp());
                }
                if let Some(o) = v.owned.as_mut() {
                    let log_changed = (o.features ^ f) & VHOST_F_LOG_ALL != 0;
                    o.features = f;
                    if log_changed {
                        o.bump();
                    }
                }
            }
            vhost::SET_MEM_TABLE => {
                Self::require_owner(&v.owned)?;
                if let Some(o) = v.owned.as_mut() {
                    Self::set_mem_table(o, ptr)?;
                }
            }
            vhost::SET_LOG_BASE => {
                let base: u64 = user.reader().read()?;
                Self::require_owner(&v.owned)?;
                if let Some(o) = v.owned.as_mut() {
                    o.log_base = Some(base);
                    o.bump();
                }
            }
            vhost::SET_LOG_FD => {
                let fd: i32 = user.reader().read()?;
                Self::require_owner(&v.owned)?;
                let e = match fd {
                    -1 => None,
                    fd => Some(EventFd::from_fd(fd)?),
                };
                if let Some(o) = v.owned.as_mut() {
                    o.log_fd = e;
                }
            }
            vhost::NET_SET_BACKEND => {
                let f: vhost::VringFile = user.reader().read()?;
                Self::require_owner(&v.owned)?;
                let Vhost { port, owned } = &mut *v;
                let Some(o) = owned.as_mut() else {
                    return Err(EPERM);
                };
                if f.fd != -1 {
                    Self::bind_tap(port, o, f.fd)?;
                }
                Self::set_backend(o, f)?;
            }
            _ => {
                Self::require_owner(&v.owned)?;
                let Some(o) = v.owned.as_mut() else {
                    return Err(EPERM);
                };
                Self::ring_ioctl(o, cmd, user)?;
            }
        }
        Ok(0)
    }
}

/// The device's work (glue/vhost.c), on a thread in the owner's address
/// space: serve both queues.
///
/// # Safety
///
/// `ctx` is the `VhostFile` the work was created for (`set_owner`), valid
/// until the work is stopped, which `release` does before freeing it.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_vhost_run(ctx: *const c_void) {
    // SAFETY: Per the function's contract.
    let f = unsafe { &*ctx.cast::<VhostFile>() };
    let v = f.inner.lock();
    let Some(o) = v.owned.as_ref() else { return };
    if !o.running() || !kvm::current_mm_is(&o.mm) {
        return;
    }
    if let Some(b) = o.bound.as_ref() {
        b.dev.serve(&o.own());
    }
}
