import { main } from '../cli/dispatch.js';
import { processIo } from '../cli/io.js';

process.exitCode = await main(process.argv.slice(2), processIo());
