import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/sequencer.js';

// Two projects: `unit` runs on synthetic modules and fixture roots built under a temp dir
// (kmod, readelf and openssl serve as oracles there; .ci/run installs them); `real` runs against the Debian corpus (downloaded and cached by corpus/debian/fetch.mjs
// in its global setup) and kmod/dracut/initramfs-tools as oracles. A missing corpus fails the
// run loudly; nothing is skipped silently.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 1_800_000,
    reporters: ['default'],
    // Longest files first, by the durations of the last CI run (test/sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/real/**', 'test/hosts/**', 'test/package-install/install.test.ts'],
          globalSetup: ['test/temp-dir-setup.ts'],
          // Vitest's default is one worker less than the cores: one, on the two-core CI machine.
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          name: 'real',
          // test/hosts: real package managers (rpm, dpkg, pacman, kernel-install) on chroots, with corpus kernels.
          // test/package-install/install.test.ts: kabi installed by npm into empty projects (minutes of npm).
          include: ['test/real/**/*.test.ts', 'test/hosts/**/*.test.ts', 'test/package-install/install.test.ts'],
          globalSetup: ['test/temp-dir-setup.ts', 'test/real/global-setup.ts'],
          testTimeout: 1_800_000,
          // The corpus tests are CPU-bound and spawn many kmod processes; two cores. Run them
          // after the unit project.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
