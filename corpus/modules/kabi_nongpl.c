// SPDX-License-Identifier: GPL-2.0
/*
 * kabi test corpus: a module that breaks the GPL-only export rule.
 *
 * Its MODULE_LICENSE is deliberately not GPL-compatible, yet it calls
 * ktime_get_mono_fast_ns(), which the core kernel (vmlinux) exports with
 * EXPORT_SYMBOL_GPL in both 6.1 and 6.12. The kernel refuses to load such a
 * module (the GPL-only symbol does not resolve for it: "Unknown symbol"),
 * which is what kabi must detect.
 *
 * modpost refuses to build it too, and that check is unconditional:
 * KBUILD_MODPOST_WARN=1 does not relax "GPL-incompatible module ... uses
 * GPL-only symbol" (checked on 6.1 and 6.12). So Kbuild compiles this file
 * with -DKABI_NONGPL_MODPOST_SEES_GPL, which makes the .o declare "GPL" to
 * modpost, and the Makefile afterwards rewrites the license string in the
 * finished .ko's .modinfo section to "Proprietary" (objcopy --update-section,
 * target nongpl-license). The result is
 * the module a vendor would ship: a "Proprietary" license, an undefined
 * reference to the GPL-only symbol and its CRC in __versions.
 *
 * (The source file itself is GPL-2.0; only the license string the module
 * declares is "Proprietary", for testing.)
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/timekeeping.h>

static int __init kabi_nongpl_init(void)
{
	pr_info("kabi_nongpl: mono fast ns %llu\n",
		(unsigned long long)ktime_get_mono_fast_ns());
	return 0;
}

static void __exit kabi_nongpl_exit(void)
{
	pr_info("kabi_nongpl: unloaded\n");
}

module_init(kabi_nongpl_init);
module_exit(kabi_nongpl_exit);

#ifdef KABI_NONGPL_MODPOST_SEES_GPL
MODULE_LICENSE("GPL");		/* rewritten to "Proprietary" after modpost */
#else
MODULE_LICENSE("Proprietary");
#endif
MODULE_AUTHOR("kabi test corpus");
MODULE_DESCRIPTION("kabi test: non-GPL module using a GPL-only kernel export");
MODULE_VERSION("1.0");
