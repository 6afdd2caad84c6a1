// SPDX-License-Identifier: GPL-2.0
/*
 * kabi test corpus: a provider module.
 *
 * Exports one GPL-only symbol (kabi_provider_value) and one plain symbol
 * (kabi_provider_plain). kabi_consumer.ko depends on the GPL-only one.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>

#include "kabi_provider.h"

static int kabi_provider_counter = 42;

int kabi_provider_value(void)
{
	return kabi_provider_counter;
}
EXPORT_SYMBOL_GPL(kabi_provider_value);

int kabi_provider_plain(int x)
{
	return x + kabi_provider_counter;
}
EXPORT_SYMBOL(kabi_provider_plain);

static int __init kabi_provider_init(void)
{
	pr_info("kabi_provider: loaded\n");
	return 0;
}

static void __exit kabi_provider_exit(void)
{
	pr_info("kabi_provider: unloaded\n");
}

module_init(kabi_provider_init);
module_exit(kabi_provider_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kabi test corpus");
MODULE_DESCRIPTION("kabi test: exports a GPL-only and a plain symbol");
MODULE_VERSION("1.0");
