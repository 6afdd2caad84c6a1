import type { KabiFs } from '../../fs.js';
import type { InitramfsStyle } from '../../kernel/discover.js';
import type { ModuleFile } from '../../kernel/module-tree.js';
import { findProgram } from '../find-program.js';
import type { GeneratorName } from '../generators.js';
import type { ImageTree } from '../image-tree.js';
import { dracutModel, readText } from './dracut.js';
import type { HostView } from './host-view.js';
import { initramfsToolsModel } from './initramfs-tools.js';
import type { InstalledModules } from './installed-modules.js';
import { mkinitcpioModel } from './mkinitcpio.js';
import type { GeneratorModel, Verdict } from './model.js';

export { realHostView, fixedHostView, type HostView } from './host-view.js';
export { InstalledModules, type ModuleFacts } from './installed-modules.js';
export type { GeneratorModel, Verdict } from './model.js';

/*
 * Which generator made (or would make) a kernel's image, and its model. The image says it
 * best: dracut leaves lib/dracut/modules.txt, initramfs-tools conf/initramfs.conf, mkinitcpio
 * its config and VERSION at the top; on Debian dracut writes /boot/initrd.img-K too, so the
 * file name alone does not tell. Without an image, the kernel's naming and the installed
 * tools decide.
 */

export type GeneratorFamily = 'dracut' | 'initramfs-tools' | 'mkinitcpio' | 'mkosi-initrd';

export interface ModelContext {
  readonly root: string;
  readonly fs: KabiFs;
  readonly release: string;
  readonly style: InitramfsStyle;
  readonly installed: InstalledModules;
  readonly host: HostView;
  /** The current image's tree, if there is an image. */
  readonly tree: ImageTree | undefined;
  /** Module names the current image holds. */
  readonly imageModules: ReadonlySet<string>;
  /** The rebuild passes the image's own build parameters again (`dracut --rebuild`); weak-modules' plain `dracut -f` does not. */
  readonly rebuildWithParameters?: boolean;
}

export function familyOfImage(tree: ImageTree): GeneratorFamily | undefined {
  if (tree.lookup('usr/lib/dracut/modules.txt') ?? tree.lookup('lib/dracut/modules.txt')) return 'dracut';
  if (tree.lookup('conf/initramfs.conf')) return 'initramfs-tools';
  if (tree.lookup('VERSION') && tree.lookup('config') && tree.lookup('hooks')) return 'mkinitcpio';
  if (tree.lookup('usr/lib/mkosi-initrd') ?? (tree.lookup('etc/initrd-release') && !tree.lookup('usr/lib/dracut'))) return 'mkosi-initrd';
  return undefined;
}

export const FAMILY_GENERATOR: Record<GeneratorFamily, GeneratorName | undefined> = {
  dracut: 'dracut',
  'initramfs-tools': 'initramfs-tools',
  mkinitcpio: 'mkinitcpio',
  'mkosi-initrd': undefined,
};

/** The family for a kernel without an image: what its naming and the root's tools say. */
export async function familyOfSystem(fs: KabiFs, root: string, style: InitramfsStyle): Promise<GeneratorFamily | undefined> {
  if (style === 'dracut' || style === 'suse') return 'dracut';
  if (style === 'mkinitcpio') return 'mkinitcpio';
  if (style === 'initramfs-tools') return (await findProgram(fs, root, 'update-initramfs')) ? 'initramfs-tools' : (await findProgram(fs, root, 'dracut')) ? 'dracut' : 'initramfs-tools';
  // kernel-install: the plugin that builds the initrd.
  const conf = (await readText(fs, root, '/etc/kernel/install.conf')) ?? (await readText(fs, root, '/usr/lib/kernel/install.conf')) ?? '';
  const gen = /^\s*initrd_generator\s*=\s*(\S+)/m.exec(conf)?.[1];
  if (gen === 'mkosi-initrd') return 'mkosi-initrd';
  if (gen === 'dracut' || (await readText(fs, root, '/usr/lib/kernel/install.d/50-dracut.install')) !== undefined) return 'dracut';
  if ((await readText(fs, root, '/usr/lib/kernel/install.d/50-mkosi.install')) !== undefined) return 'mkosi-initrd';
  if (await findProgram(fs, root, 'update-initramfs')) return 'initramfs-tools';
  return undefined;
}

export async function loadModel(ctx: ModelContext, family: GeneratorFamily | undefined): Promise<GeneratorModel> {
  switch (family) {
    case 'dracut': {
      const txt = ctx.tree ? (ctx.tree.readFile('usr/lib/dracut/modules.txt') ?? ctx.tree.readFile('lib/dracut/modules.txt')) : undefined;
      const modulesTxt = txt === undefined ? undefined : new TextDecoder().decode(txt).split('\n').map((l) => l.trim()).filter(Boolean);
      const params = ctx.tree?.readFile('usr/lib/dracut/build-parameter.txt') ?? ctx.tree?.readFile('lib/dracut/build-parameter.txt');
      return dracutModel({
        ...ctx,
        modulesTxt: modulesTxt ?? (ctx.tree ? undefined : await defaultDracutModules(ctx)),
        buildParameters: ctx.rebuildWithParameters && params ? new TextDecoder().decode(params) : undefined,
      });
    }
    case 'initramfs-tools':
      return initramfsToolsModel(ctx);
    case 'mkinitcpio':
      return mkinitcpioModel(ctx);
    default:
      return unknownModel(family === 'mkosi-initrd' ? 'mkosi-initrd chooses modules by KernelModules* settings kabi does not evaluate' : 'kabi cannot tell which generator builds this image');
  }
}

/** A model that cannot say: every module not in the image is a reason to run the generator. */
export function unknownModel(why: string): GeneratorModel {
  return {
    description: 'unknown generator',
    selects: async (_f: ModuleFile): Promise<Verdict> => ({ include: undefined, why }),
    omits: () => false,
    strips: undefined,
    unpacks: false,
    softdeps: true,
    weakdeps: false,
    firmwareDirs: [],
    firmwareFromEveryDir: false,
    notes: [why],
  };
}

/** For an image not built yet, dracut's module list is not known: every module is then undecided. */
async function defaultDracutModules(_ctx: ModelContext): Promise<readonly string[] | undefined> {
  return undefined;
}
