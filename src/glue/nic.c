// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass NIC backend glue: what the Rust PCI driver of the 82576
 * (src/nic/) needs that the kernel crate of 7.2 does not offer.
 *
 * Why C: `kernel::pci` enables a function and its bus mastering but has no
 * counterpart (pci_clear_master, pci_disable_device).
 */
#include <linux/pci.h>

#include "glue.h"

/* Bus mastering off and the function disabled: the end of probe's enable. */
void pvpass_nic_pci_disable(struct pci_dev *pdev)
{
	pci_clear_master(pdev);
	pci_disable_device(pdev);
}
