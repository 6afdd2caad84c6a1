// SPDX-License-Identifier: GPL-2.0
/*
 * kabi test corpus: uses a namespaced export WITHOUT importing its namespace.
 *
 * Same as kabi_ns_ok.c but with no MODULE_IMPORT_NS(USB_STORAGE). The kernel
 * refuses to load it ("module uses symbol ... from namespace USB_STORAGE, but
 * does not import it"), which is what kabi must detect.
 *
 * modpost refuses to build it too, and KBUILD_MODPOST_WARN=1 does not relax
 * that. The Makefile builds with KBUILD_NSDEPS=1 (what `make nsdeps` uses),
 * which turns exactly this error into a warning and lists the module in
 * modules.nsdeps; the corpus build checks that kabi_ns_missing is the only
 * module listed there.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>

struct us_data;
extern void usb_stor_sense_invalidCDB(struct us_data *us);

static int __init kabi_ns_missing_init(void)
{
	pr_info("kabi_ns_missing: usb_stor_sense_invalidCDB at %ps\n",
		usb_stor_sense_invalidCDB);
	return 0;
}

static void __exit kabi_ns_missing_exit(void)
{
	pr_info("kabi_ns_missing: unloaded\n");
}

module_init(kabi_ns_missing_init);
module_exit(kabi_ns_missing_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kabi test corpus");
MODULE_DESCRIPTION("kabi test: uses USB_STORAGE namespace without importing it");
MODULE_VERSION("1.0");
