// SPDX-License-Identifier: GPL-2.0-or-later
//
// Debian's initramfs-tools, MODULES=dep: the image kabi updates holds what a fresh run makes (inclusion-generators.ts).

import { describeInclusion, initramfsTools } from './inclusion-generators.js';

describeInclusion(initramfsTools('dep'));
