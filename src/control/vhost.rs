// SPDX-License-Identifier: GPL-2.0

//! `/dev/pvpass-vhost-net`: the vhost-net ioctl protocol
//! (include/uapi/linux/vhost.h), so that a stock QEMU drives a pvpass device
//! as it drives vhost-net (`-netdev tap,...,vhost=on,vhostfd=N`). QEMU
//! emulates the virtio-net-pci function, its config space, MSI-X and the
//! control queue; this file serves the data queues (one receive and one
//! transmit queue: one queue pair per file).
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
//! What is not offered: `VHOST_F_LOG_ALL` (QEMU then blocks migration
//! instead of migrating a guest whose writes it cannot see), indirect
//! descriptors, packed rings, multiqueue (one file, one queue pair, one
//! port), backend features.
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
        Port, //
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
    net::Device,
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
/// What `VHOST_GET_FEATURES` offers (QEMU asks the backend only about ring
/// and layout bits; the offloads come from the tap).
const FEATURES: u64 =
    feature::VERSION_1 | feature::NET_F_MRG_RXBUF | feature::RING_EVENT_IDX | NET_F_VIRTIO_NET_HDR;
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
    rings: [Ring; 2],
    signals: Arc<Signals>,
    dev: Arc<Device>,
    /// On the switch: while the device runs.
    link: Option<Link>,
}

#[derive(Default)]
struct Vhost {
    /// PVPASS_VHOST_SET_PORT: the backend and MAC.
    port: Option<(Arc<dyn Backend>, [u8; 6], u32)>,
    owned: Option<Owned>,
}

/// The device's own thread on this transport: a thread in the owner's
/// address space (see glue/vhost.c), with the memory table.
struct VhostThread<'a> {
    map: &'a GuestMap,
    generation: &'a Atomic<u64>,
}

impl OwnThread for VhostThread<'_> {
    fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    fn snapshot(&self, map: &mut GuestMap) -> Result<bool> {
        map.clone_from(self.map);
        // No dirty log: VHOST_F_LOG_ALL is not offered.
        Ok(false)
    }

    fn mark_dirty(&self, _gfn: u64) {}

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
        }
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

    /// Both rings have a backend: join the switch and start the queues.
    fn start(&mut self, backend: &Arc<dyn Backend>) -> Result {
        if !self.map_set {
            return Err(ratelimited("backend set before the memory table", EINVAL));
        }
        let queues = [self.queue(0)?, self.queue(1)?];
        let port: Arc<dyn Port> = self.dev.clone();
        let (link, uplink) = Link::connect(backend, port)
            .map_err(|e| ratelimited("the port cannot join its switch (MAC in use?)", e))?;
        self.dev.set_uplink(uplink);
        self.link = Some(link);
        let f = self.features | OFFLOADS;
        let bases = [self.rings[0].base, self.rings[1].base];
        let own = self.own();
        self.dev.vhost_start(&own, f, queues, bases);
        Ok(())
    }

    /// A ring lost its backend: stop both, leave the switch, keep the bases.
    fn stop(&mut self) {
        if self.link.take().is_none() {
            return;
        }
        let bases = self.dev.vhost_stop();
        for (r, b) in self.rings.iter_mut().zip(bases) {
            if let Some(b) = b {
                r.base = b;
            }
        }
    }

    fn running(&self) -> bool {
        self.link.is_some()
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
        let Some((backend, mac, id)) = v.port.as_ref() else {
            return Err(ratelimited(
                "SET_OWNER on a file without a port (PVPASS_VHOST_SET_PORT first: pvpassctl vhost-exec)",
                EINVAL,
            ));
        };
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
        let owner = Owner::Mm {
            mm: mm.clone(),
            generation: generation.clone(),
        };
        let dev = Device::new_vhost(*id, *mac, VhostIrq(signals.clone()), owner)?;
        // SAFETY: The all-zero map is the empty map of generation 0.
        let map = unsafe { crate::mem::new_zeroed::<GuestMap>() }?;
        LISTED.lock().push(
            Listed {
                dev: dev.clone(),
                owner_pid: kvm::current_tgid(),
                backend: *backend.name(),
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
        v.owned = Some(Owned {
            mm,
            generation,
            map,
            map_set: false,
            features: 0,
            rings: Default::default(),
            signals,
            dev,
            link: None,
        });
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

    fn set_backend(o: &mut Owned, backend: &Arc<dyn Backend>, f: vhost::VringFile) -> Result {
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
            if let Err(e) = o.start(backend) {
                if let Some(r) = o.rings.get_mut(i) {
                    r.backend = false;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn ring_ioctl(o: &mut Owned, backend: &Arc<dyn Backend>, cmd: u32, user: UserSlice) -> Result {
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
                if a.flags & vhost::VRING_F_LOG != 0 {
                    return Err(ratelimited(
                        "ring logging asked for (no LOG_ALL)",
                        eopnotsupp(),
                    ));
                }
                if a.desc_user_addr % 16 != 0
                    || a.avail_user_addr % 2 != 0
                    || a.used_user_addr % 4 != 0
                {
                    return Err(EINVAL);
                }
                if o.running() {
                    return Err(EBUSY);
                }
                if let Some(r) = o.rings.get_mut(i) {
                    r.addr = Some(a);
                }
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
            vhost::NET_SET_BACKEND => {
                let f: vhost::VringFile = reader.read()?;
                Self::set_backend(o, backend, f)?;
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

/// Stop everything `o` started, in the order the lock order needs: the
/// kicks (no new work), the work (waited for; `inner` must not be held),
/// the switch, the device's pins.
fn teardown(mut o: Owned) {
    for r in o.rings.iter_mut() {
        drop(r.kick.take());
    }
    o.signals.work().stop();
    drop(o.link.take());
    o.dev.shutdown();
    unlist(o.dev.id);
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
        let owned = me.inner.lock().owned.take();
        if let Some(o) = owned {
            teardown(o);
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
                if req.flags != 0 || req.pad != [0; 2] {
                    return Err(EINVAL);
                }
                if req.mac == [0; 6] || req.mac[0] & 1 != 0 {
                    return Err(ratelimited("port MAC zero or multicast", EINVAL));
                }
                let name = if req.backend == [0; uapi::NAME_LEN] {
                    let mut d = [0u8; uapi::NAME_LEN];
                    for (d, s) in d.iter_mut().zip(backend::DEFAULT) {
                        *d = *s;
                    }
                    d
                } else {
                    backend::parse_name(&req.backend)?
                };
                let b = backend::find(&name).ok_or(ENODEV)?;
                let id = match &v.port {
                    Some((_, _, id)) => *id,
                    None => NEXT_ID.fetch_add(1, Relaxed),
                };
                v.port = Some((b, req.mac, id));
                req.id = id;
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
                    o.features = f;
                }
            }
            vhost::SET_MEM_TABLE => {
                Self::require_owner(&v.owned)?;
                if let Some(o) = v.owned.as_mut() {
                    Self::set_mem_table(o, ptr)?;
                }
            }
            vhost::SET_LOG_BASE | vhost::SET_LOG_FD => {
                Self::require_owner(&v.owned)?;
                return Err(eopnotsupp());
            }
            _ => {
                Self::require_owner(&v.owned)?;
                let Vhost { port, owned } = &mut *v;
                let (Some(o), Some((b, _, _))) = (owned.as_mut(), port.as_ref()) else {
                    return Err(EPERM);
                };
                Self::ring_ioctl(o, b, cmd, user)?;
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
    o.dev.serve(&o.own());
}
