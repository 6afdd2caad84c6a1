// SPDX-License-Identifier: GPL-2.0
/*
 * kabi test corpus: a consumer module.
 *
 * Uses the GPL-only symbol kabi_provider_value exported by kabi_provider.ko,
 * so depmod must record kabi_provider as its dependency. Built in the same
 * M= directory as the provider so modpost resolves the symbol and its CRC.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>

#include "kabi_provider.h"

static int __init kabi_consumer_init(void)
{
	pr_info("kabi_consumer: provider says %d\n", kabi_provider_value());
	return 0;
}

static void __exit kabi_consumer_exit(void)
{
	pr_info("kabi_consumer: unloaded\n");
}

module_init(kabi_consumer_init);
module_exit(kabi_consumer_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kabi test corpus");
MODULE_DESCRIPTION("kabi test: uses a GPL-only symbol of kabi_provider");
MODULE_VERSION("1.0");
