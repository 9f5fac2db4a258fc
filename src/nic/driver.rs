// SPDX-License-Identifier: GPL-2.0

//! The PCI driver of the 82576 physical function: probe brings the NIC up
//! (reset, MAC, VMDq with no pool open, link), unbind quiesces it before
//! anything it could DMA into is freed.
//!
//! The driver binds only a function whose `driver_override` names it
//! (`echo pvpass > /sys/bus/pci/devices/<bdf>/driver_override`, then unbind
//! the function from igb and bind it here): its id table entry is
//! override-only, and the module exports no PCI alias, so loading pvpass
//! never takes a NIC from the stock igb driver by itself.

use kernel::{
    device::{
        Bound,
        Core, //
    },
    dma::{
        Device as _,
        DmaMask, //
    },
    irq,
    pci,
    prelude::*,
    sync::Arc,
    time::{
        delay::fsleep,
        Delta, //
    }, //
};

use super::{
    bar::{
        Bar0,
        BarRegs,
        Wait,
        BAR0_SIZE, //
    },
    host::HostIf,
    vm::{
        NicBackend,
        NicPools,
        VmIrq, //
    },
};
use crate::{
    backend,
    glue,
    pvcore::igb::{
        pools::{
            Nic,
            NicConfig,
            NicError, //
        },
        regs, //
    }, //
};

/// The 82576's PCI device id (QEMU's `igb`).
pub(crate) const DEVICE_82576: u16 = 0x10c9;

/// Times CTRL.RST is checked after a reset, a millisecond apart.
const RESET_TRIES: u32 = 100;
/// Times STATUS.LU is checked after the link was started, 10 ms apart.
const LINK_TRIES: u32 = 300;
/// Largest frame the NIC takes (without FCS): a 1500-byte MTU with one
/// VLAN tag.
const MAX_FRAME: u16 = 1518;

/// `pci_device_id.override_only`: match only a device whose
/// driver_override names this driver (`PCI_ID_F_VFIO_DRIVER_OVERRIDE`).
const OVERRIDE_ONLY: u32 = 1;

const fn override_only(id: pci::DeviceId) -> pci::DeviceId {
    // SAFETY: `pci::DeviceId` is a `#[repr(transparent)]` wrapper of
    // `struct pci_device_id` (its `RawDeviceId` contract), so the two have
    // the same layout and every value of one is a value of the other.
    let mut raw: kernel::bindings::pci_device_id = unsafe { core::mem::transmute(id) };
    raw.override_only = OVERRIDE_ONLY;
    // SAFETY: As above; only a plain integer field was changed.
    unsafe { core::mem::transmute(raw) }
}

/// The id table. Not exported as a module alias (no `module_device_table!`):
/// the module is not loaded for an 82576 it was not asked to drive.
const PCI_TABLE: kernel::device_id::IdArray<pci::DeviceId, (), 1> =
    kernel::device_id::IdArray::new([(
        override_only(pci::DeviceId::from_id(
            pci::Vendor::INTEL,
            DEVICE_82576 as u32,
        )),
        (),
    )]);

/// The pvpass driver of the 82576 physical function.
pub(crate) struct NicDriver;

/// The plan's state and whether the NIC was quiesced for good.
pub(crate) struct Plan {
    pub(super) nic: Nic,
    pub(super) quiesced: bool,
}

/// The NIC as a backend: its VM pools, their interrupt and the backend's
/// registration.
struct VmPart {
    /// Kept for its drop (the interrupt freed, its thread stopped).
    _irq: Pin<KBox<irq::ThreadedRegistration<VmIrq>>>,
    pools: Arc<NicPools>,
    backend: Arc<NicBackend>,
}

/// A bound 82576. Dropped in field order: the VM pools' interrupt and
/// memory (revoked and quiesced by `release` before), the host pool (its
/// interrupt, interface, rings and buffers), then BAR0, which both point
/// into.
pub(crate) struct NicDev<'bound> {
    pdev: &'bound pci::Device<Bound>,
    vm: Option<VmPart>,
    host: Pin<KBox<HostIf<'bound>>>,
    bar: KBox<Bar0<'bound>>,
    mac: [u8; 6],
}

/// The raw `struct pci_dev` of `pdev`, for the glue.
fn raw_pdev(pdev: &pci::Device<Bound>) -> *mut glue::PciDev {
    // `pci::Device` is a `#[repr(transparent)]` wrapper of `struct pci_dev`:
    // its address is the C object's.
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// Clears bus mastering and disables the function (undoes probe's
/// `enable_device_mem` and `set_master`).
fn disable(pdev: &pci::Device<Bound>) {
    // SAFETY: `pdev` is a bound PCI device, enabled by this driver's probe;
    // nothing of this driver uses it for DMA any more.
    unsafe { glue::pvpass_nic_pci_disable(raw_pdev(pdev)) };
}

/// The MAC address the NIC loaded into receive address 0 (QEMU: its `mac=`
/// property; hardware: the NVM), if valid.
fn rar0_mac(r: &mut BarRegs<'_, '_>) -> Option<[u8; 6]> {
    use crate::pvcore::igb::Regs;
    let e = regs::Rar::new(0)?;
    let lo = r.read32(regs::ral(e)).to_le_bytes();
    let hi = r.read32(regs::rah(e));
    if hi & regs::RAH_AV == 0 {
        return None;
    }
    let [h0, h1, _, _] = hi.to_le_bytes();
    let mac = [lo[0], lo[1], lo[2], lo[3], h0, h1];
    crate::pvcore::igb::pools::valid_unicast(&mac).then_some(mac)
}

/// Resets the NIC and waits (bounded) for the reset to complete.
fn reset(nic: &mut Nic, r: &mut BarRegs<'_, '_>) -> Result {
    nic.reset(r);
    for _ in 0..RESET_TRIES {
        fsleep(Delta::from_millis(1));
        if nic.reset_done(r) {
            return Ok(());
        }
    }
    Err(ETIMEDOUT)
}

/// What probe found.
struct Found {
    nic: Nic,
    mac: [u8; 6],
    link_ms: Option<u32>,
}

/// Reset, MAC, VMDq set up with no pool receiving, link started and
/// waited for (bounded; a link that stays down is reported, not an error).
fn bring_up(pdev: &pci::Device<Bound>, bar: &Bar0<'_>) -> Result<Found> {
    let mut r = BarRegs::new(bar, Wait::Sleep);
    let mut nic = Nic::new();
    reset(&mut nic, &mut r).inspect_err(|_| {
        dev_err!(pdev, "the reset did not complete (CTRL.RST still set)\n");
    })?;
    let Some(mac) = rar0_mac(&mut r) else {
        dev_err!(pdev, "no valid MAC address in receive address 0\n");
        return Err(ENODEV);
    };
    let cfg = NicConfig {
        host_mac: mac,
        max_frame: MAX_FRAME,
        loopback: true,
    };
    nic.init(&mut r, &cfg).map_err(|e| {
        dev_err!(pdev, "setup failed: {:?}\n", e);
        nic_errno(e)
    })?;
    if let Err(e) = nic.start_link(&mut r) {
        dev_warn!(pdev, "PHY autonegotiation not started: {:?}\n", e);
    }
    let mut link_ms = None;
    for i in 0..LINK_TRIES {
        if nic.link_up(&mut r) {
            link_ms = Some(i.saturating_mul(10));
            break;
        }
        fsleep(Delta::from_millis(10));
    }
    Ok(Found { nic, mac, link_ms })
}

fn nic_errno(e: NicError) -> Error {
    match e {
        NicError::ResetPending | NicError::PhyTimeout => ETIMEDOUT,
        NicError::RxStuck(_) | NicError::TxStuck(_) => EIO,
        NicError::QueueBusy | NicError::MacInUse => EBUSY,
        _ => EINVAL,
    }
}

impl pci::Driver for NicDriver {
    type IdInfo = ();
    type Data<'bound> = NicDev<'bound>;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            // driver_override binds any function to the driver named in it:
            // take only the one this driver knows.
            if pdev.vendor_id() != pci::Vendor::INTEL || pdev.device_id() != DEVICE_82576 {
                dev_err!(
                    pdev,
                    "not an 82576 ({}:{:04x}): not taken\n",
                    pdev.vendor_id(),
                    pdev.device_id()
                );
                return Err(ENODEV);
            }
            pdev.enable_device_mem()?;
            pdev.set_master();
            let bound: &'bound pci::Device<Bound> = pdev;
            let dev = (|| -> Result<NicDev<'bound>> {
                // SAFETY: In probe, before this driver allocates or maps any
                // DMA memory of the device.
                unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<64>())? };
                let bar = KBox::new(
                    pdev.iomap_region_sized::<BAR0_SIZE>(0, c"pvpass")?,
                    GFP_KERNEL,
                )?;
                // SAFETY: The bar is boxed, so it does not move with `bar`;
                // `NicDev` drops `host`, the only holder of this reference,
                // before `bar`.
                let bar_ref: &'bound Bar0<'bound> = unsafe { &*core::ptr::from_ref(&*bar) };
                let stop = || {
                    let mut nic = Nic::new();
                    let mut r = BarRegs::new(bar_ref, Wait::Sleep);
                    let _ = reset(&mut nic, &mut r);
                    let _ = nic.stop_all(&mut r);
                };
                let found = bring_up(bound, bar_ref).inspect_err(|_| stop())?;
                // Vector 0 for the host pool, vector 1 for the VM pools; with
                // one vector only, no VM pools.
                let msix = pci::IrqTypes::default().with(pci::IrqType::MsiX);
                let (vectors, two) = match bound.alloc_irq_vectors(2, 2, msix) {
                    Ok(v) => (v, true),
                    Err(_) => (
                        bound
                            .alloc_irq_vectors(1, 1, msix)
                            .inspect_err(|_| stop())?,
                        false,
                    ),
                };
                let host = KBox::pin_init(
                    HostIf::new(bound, bar_ref, found.nic, found.mac, *vectors.start()),
                    GFP_KERNEL,
                )
                .inspect_err(|e| {
                    dev_err!(pdev, "host pool interface not made: {:?}\n", e);
                    stop();
                })?;
                let name = host.name();
                let vm = if two {
                    vm_part(bound, bar_ref, &host, *vectors.end(), &name)
                        .inspect_err(|e| {
                            dev_warn!(
                                pdev,
                                "no VM pools ({:?}): the NIC serves the host only\n",
                                e
                            )
                        })
                        .ok()
                } else {
                    dev_warn!(
                        pdev,
                        "one MSI-X vector only: the NIC serves the host only\n"
                    );
                    None
                };
                let m = found.mac;
                let name = CStr::from_bytes_until_nul(&name).unwrap_or(c"?");
                match found.link_ms {
                    Some(ms) => dev_info!(
                        pdev,
                        "82576 (igb) taken: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link up (STATUS.LU after {} ms), VMDq on, host pool 0 on {}\n",
                        m[0], m[1], m[2], m[3], m[4], m[5], ms, name
                    ),
                    None => dev_info!(
                        pdev,
                        "82576 (igb) taken: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link down (STATUS.LU clear after {} ms), VMDq on, host pool 0 on {}\n",
                        m[0], m[1], m[2], m[3], m[4], m[5], LINK_TRIES.saturating_mul(10), name
                    ),
                }
                Ok(NicDev {
                    pdev: bound,
                    vm,
                    host,
                    bar,
                    mac: found.mac,
                })
            })();
            Ok::<_, Error>(dev.inspect_err(|_: &Error| disable(bound)))
        })
    }

    fn unbind<'bound>(_pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        this.release();
    }
}

/// The VM pools over the bound NIC, their interrupt on `vector`, and the
/// backend named after the host interface, registered.
fn vm_part<'bound>(
    pdev: &'bound pci::Device<Bound>,
    bar: &'bound Bar0<'bound>,
    host: &HostIf<'bound>,
    vector: pci::IrqVector<'bound>,
    name: &[u8],
) -> Result<VmPart> {
    // SAFETY: BAR0, the plan (inside `host`) and the device stay valid
    // until `NicDev::release` revokes the pools, which every way out of the
    // binding runs before `host` and the bar are dropped (`NicDev::drop`).
    let pools = unsafe { NicPools::new(bar, host.plan(), pdev.as_ref())? };
    let irq = KBox::pin_init(
        pdev.request_threaded_irq(
            vector,
            irq::Flags::TRIGGER_NONE,
            c"pvpass-vm",
            Ok::<_, Error>(VmIrq(pools.clone())),
        ),
        GFP_KERNEL,
    )?;
    let backend = NicBackend::new(name, pools.clone())?;
    let dynb: Arc<dyn backend::Backend> = backend.clone();
    backend::add(dynb)?;
    Ok(VmPart {
        _irq: irq,
        pools,
        backend,
    })
}

impl NicDev<'_> {
    /// The backend taken out of the list (no new attachment finds it), the
    /// VM pools stopped and their ports let go, the host's interface
    /// unregistered (closing it stops its pool), then the NIC quiesced.
    /// Idempotent.
    fn release(&self) {
        if let Some(vm) = &self.vm {
            backend::remove(backend::Backend::name(&*vm.backend));
            vm.pools.revoke();
        }
        self.host.unregister();
        self.quiesce();
    }

    /// Stops the NIC for good (interrupts masked, every queue disabled and
    /// confirmed stopped, a full reset, bus mastering off), bounded; only
    /// then may what it could DMA into be freed. Idempotent.
    fn quiesce(&self) {
        let mut plan = self.host.plan().lock();
        if plan.quiesced {
            return;
        }
        let mut r = BarRegs::new(&self.bar, Wait::Sleep);
        let mut ok = plan.nic.stop_all(&mut r).is_ok();
        ok &= reset(&mut plan.nic, &mut r).is_ok();
        // The reset turns queue 0's receive back on (with no ring and the
        // receiver off): turn it off again.
        ok &= plan.nic.stop_all(&mut r).is_ok();
        let quiet = plan.nic.quiet(&mut r);
        disable(self.pdev);
        plan.quiesced = true;
        let m = self.mac;
        if ok && quiet {
            dev_info!(
                self.pdev,
                "82576 {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} released: reset, queues and interrupts off, bus mastering off\n",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
        } else {
            dev_err!(
                self.pdev,
                "82576 did not quiesce (queue enable stuck or reset pending): bus mastering off\n"
            );
        }
    }
}

impl Drop for NicDev<'_> {
    fn drop(&mut self) {
        // Unbind released it already; this covers any other way out.
        self.release();
    }
}
