// SPDX-License-Identifier: GPL-2.0-or-later
//
// Debian's dracut, hostonly: the image kabi updates holds what a fresh run makes (inclusion-generators.ts).

import { describeInclusion, dracut } from './inclusion-generators.js';

describeInclusion(dracut(true));
