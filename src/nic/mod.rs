// SPDX-License-Identifier: GPL-2.0

//! The NIC backend's device: pvpass drives an Intel 82576 (igb) physical
//! function itself, to share it between the host and the guests through
//! VMDq pools (no SR-IOV, no IOMMU). The register programming is the core's
//! (`pvcore::igb`, tested against QEMU's igb over qtest); this folder is
//! what binds it to the kernel:
//!
//! - `bar`: BAR0 as the core's `Regs`.
//! - `driver`: the PCI driver (override-only id table), probe (reset, MAC
//!   from receive address 0, VMDq set up, link) and unbind (the host's
//!   interface closed, then the NIC quiesced, before anything is freed).
//! - `host`: the host's pool 0: its rings, its interface (`pvpnic<n>`,
//!   glue/nic.c) and the NIC's interrupt (MSI-X through `kernel::irq`).
//! - `ring`: the DMA memory the NIC sees (descriptor rings, buffers).
//! - `vm`: the NIC as a backend: a VMDq pool (1 to 7) per attached device,
//!   named after the host interface (`pvpassctl attach --backend pvpnic0`).
//!
//! Registered at module load (`Registration`); with no 82576 whose
//! driver_override names pvpass, it does nothing.

pub(crate) mod bar;
pub(crate) mod driver;
pub(crate) mod host;
pub(crate) mod ring;
pub(crate) mod vm;

/// The driver's registration with the PCI core (named "pvpass").
pub(crate) type Registration =
    kernel::driver::Registration<kernel::pci::Adapter<driver::NicDriver>>;
