/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Silencing one device's interrupts, for a lost-irq fault, whatever its
 * class: a PCI function's INTx is masked in its command register (only this
 * device goes quiet, even on a shared line); its MSI or MSI-X vectors, which
 * are its own, are disabled.
 */
#ifndef SH_IRQ_H
#define SH_IRQ_H

#include <linux/device.h>

#define SH_IRQ_VECTORS	16

struct sh_irq_mask {
	struct device *dev;		/* the PCI function silenced, or NULL */
	bool intx;			/* its INTx masked */
	unsigned int n;			/* its vectors disabled */
	unsigned int vector[SH_IRQ_VECTORS];
};

int sh_irq_silence(struct device *dev, struct sh_irq_mask *mask, char *msg,
		   size_t len);
void sh_irq_restore(struct sh_irq_mask *mask);

#endif /* SH_IRQ_H */
