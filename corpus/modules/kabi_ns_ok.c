// SPDX-License-Identifier: GPL-2.0
/*
 * kabi test corpus: uses a namespaced export and imports its namespace.
 *
 * usb_stor_sense_invalidCDB is exported by usb-storage.ko into the
 * USB_STORAGE symbol namespace (EXPORT_SYMBOL_NS_GPL) in 6.1 and 6.12.
 * The module only takes the symbol's address (it never calls it), so it is
 * harmless to load.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/version.h>

struct us_data;
extern void usb_stor_sense_invalidCDB(struct us_data *us);

static int __init kabi_ns_ok_init(void)
{
	pr_info("kabi_ns_ok: usb_stor_sense_invalidCDB at %ps\n",
		usb_stor_sense_invalidCDB);
	return 0;
}

static void __exit kabi_ns_ok_exit(void)
{
	pr_info("kabi_ns_ok: unloaded\n");
}

module_init(kabi_ns_ok_init);
module_exit(kabi_ns_ok_exit);

/* Linux 6.13 turned the namespace argument into a string literal. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("USB_STORAGE");
#else
MODULE_IMPORT_NS(USB_STORAGE);
#endif

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kabi test corpus");
MODULE_DESCRIPTION("kabi test: uses USB_STORAGE namespace and imports it");
MODULE_VERSION("1.0");
