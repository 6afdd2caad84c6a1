// SPDX-License-Identifier: GPL-2.0
/*
 * kabi test corpus: the smallest useful module (init/exit with a printk).
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>

static int __init kabi_minimal_init(void)
{
	pr_info("kabi_minimal: hello\n");
	return 0;
}

static void __exit kabi_minimal_exit(void)
{
	pr_info("kabi_minimal: bye\n");
}

module_init(kabi_minimal_init);
module_exit(kabi_minimal_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kabi test corpus");
MODULE_DESCRIPTION("kabi test: minimal module");
MODULE_VERSION("1.0");
