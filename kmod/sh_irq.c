// SPDX-License-Identifier: GPL-2.0
/*
 * Lost interrupts, for any class whose device is a PCI function (or sits
 * under one): the function's INTx is masked in its PCI command register,
 * which silences this device alone even on a line other devices share,
 * and its message-signalled vectors, which belong to it alone, are
 * disabled. Undone exactly once; a vector the driver freed meanwhile (a
 * suspend frees its interrupt) is left as the driver left it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/pci.h>

#include "sh_irq.h"

static struct pci_dev *sh_irq_pci_of(struct device *dev)
{
	for (; dev; dev = dev->parent)
		if (dev_is_pci(dev))
			return to_pci_dev(dev);
	return NULL;
}

int sh_irq_silence(struct device *dev, struct sh_irq_mask *mask, char *msg,
		   size_t len)
{
	struct pci_dev *pdev = sh_irq_pci_of(dev);
	unsigned int i;
	int vec;

	if (mask->dev)
		return 0;
	if (!pdev) {
		scnprintf(msg, len,
			  "%s is not on PCI: lost-irq silences a PCI function's interrupts",
			  dev_name(dev));
		return -EOPNOTSUPP;
	}
	mask->n = 0;
	if (pdev->msi_enabled || pdev->msix_enabled) {
		for (i = 0; i < 64 && mask->n < SH_IRQ_VECTORS; i++) {
			vec = pci_irq_vector(pdev, i);
			if (vec <= 0)
				break;
			if (irq_has_action(vec))
				mask->vector[mask->n++] = vec;
		}
		if (!mask->n) {
			scnprintf(msg, len,
				  "%s has no interrupt vector in use to silence",
				  pci_name(pdev));
			return -EOPNOTSUPP;
		}
		for (i = 0; i < mask->n; i++)
			disable_irq(mask->vector[i]);
	} else {
		pci_intx(pdev, 0);
		mask->intx = true;
	}
	mask->dev = get_device(&pdev->dev);
	return 0;
}

void sh_irq_restore(struct sh_irq_mask *mask)
{
	unsigned int i;

	if (!mask->dev)
		return;
	if (mask->intx)
		pci_intx(to_pci_dev(mask->dev), 1);
	for (i = 0; i < mask->n; i++) {
		if (irq_has_action(mask->vector[i]))
			enable_irq(mask->vector[i]);
		else
			pr_info("irq %u was freed while silenced: not enabled again\n",
				mask->vector[i]);
	}
	put_device(mask->dev);
	mask->dev = NULL;
	mask->intx = false;
	mask->n = 0;
}
