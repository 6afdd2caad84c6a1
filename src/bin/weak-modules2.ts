import { processIo } from '../cli/io.js';
import { weakModules2Command } from '../cli/commands/weak-modules2.js';

process.exitCode = await weakModules2Command.run(process.argv.slice(2), processIo());
