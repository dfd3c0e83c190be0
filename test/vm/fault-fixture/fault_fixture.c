// SPDX-License-Identifier: GPL-2.0
/*
 * Test fixture for the guest rig only: a module that makes the kernel report
 * a problem on purpose, so the rig's own tests can prove that a WARN or an
 * oops caused by a test fails that test. Never installed with shadowd.
 */
#include <linux/bug.h>
#include <linux/module.h>
#include <linux/string.h>

static char *mode = "warn";
/* Never set: a global so the compiler cannot prove the load below faults. */
static int *nowhere;
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "warn: WARN and load; oops: dereference NULL and die in init");

static int __init fault_fixture_init(void)
{
	if (!strcmp(mode, "warn")) {
		WARN(1, "fault_fixture: deliberate warning\n");
		return 0;
	}
	if (!strcmp(mode, "oops")) {
		pr_info("fault_fixture: deliberate oops\n");
		return READ_ONCE(*nowhere);
	}
	return -EINVAL;
}

static void __exit fault_fixture_exit(void)
{
}

module_init(fault_fixture_init);
module_exit(fault_fixture_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Guest rig test fixture: deliberate WARN or oops");
