/* SPDX-License-Identifier: GPL-2.0 */
/* kabi test corpus: the symbols kabi_provider.ko exports. */
#ifndef KABI_PROVIDER_H
#define KABI_PROVIDER_H

int kabi_provider_value(void);	/* EXPORT_SYMBOL_GPL */
int kabi_provider_plain(int x);	/* EXPORT_SYMBOL */

#endif
