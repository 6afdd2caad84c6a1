import { processIo } from '../cli/io.js';
import { weakModulesCommand } from '../cli/commands/weak-modules.js';

process.exitCode = await weakModulesCommand.run(process.argv.slice(2), processIo());
