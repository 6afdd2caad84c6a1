// Issue 16: start-up as a user meets it, against a bare `node -e 0` measured in the same run:
// the `kabi` bin printing its help (goal: within 40 ms of bare node; its --version and one
// command's help beside it), and a program loading the library with `import('kabi')` (goal:
// within 60 ms), resolved through package.json "exports" (by self-reference here, so the bundle
// `npm pack` ships is what loads), and, for reference, `require('kabi')`. The goals are on wall
// time (medians); CPU time (user + system, means) is shown beside it because it holds still on
// a machine other work is loading.
import { fmtMs, hyperfineResult, quick, table } from './lib.mjs';

const node = process.execPath;
const runs = quick ? { runs: 10, warmup: 2 } : { runs: 30, warmup: 5 };
const GOALS = { help: 40, import: 60 };

function measure(cmd) {
  const r = hyperfineResult(cmd, runs);
  return { wall: r.median * 1000, cpu: (r.user + r.system) * 1000 };
}
const bare = measure(`${node} -e 0`);
const help = measure(`${node} dist/bin/kabi.js --help`);
// For reference: the version (the dispatch alone, as --help) and one command's help (that
// command's code is loaded; the others' is not).
const version = measure(`${node} dist/bin/kabi.js --version`);
const checkHelp = measure(`${node} dist/bin/kabi.js check --help`);
const imp = measure(`${node} -e "import('kabi')"`);
const req = measure(`${node} -e "require('kabi')"`);

const over = (m) => ({ wall: m.wall - bare.wall, cpu: m.cpu - bare.cpu });
const cell = (m) => `${fmtMs(m.wall)} (CPU ${fmtMs(m.cpu)})`;
const verdict = (m, goal) => {
  const o = over(m);
  return `+${fmtMs(o.wall)} over bare node (CPU +${fmtMs(o.cpu)}); goal ≤ ${goal} ms: ${o.wall <= goal ? 'met' : 'MISSED'}`;
};
const rows = [
  { what: '`kabi --help`', kabi: cell(help), reference: `node -e 0: ${cell(bare)}`, ratio: verdict(help, GOALS.help) },
  { what: '`kabi --version`', kabi: cell(version), reference: `node -e 0: ${cell(bare)}`, ratio: `+${fmtMs(over(version).wall)} over bare node (CPU +${fmtMs(over(version).cpu)})` },
  { what: '`kabi check --help`', kabi: cell(checkHelp), reference: `node -e 0: ${cell(bare)}`, ratio: `+${fmtMs(over(checkHelp).wall)} over bare node (CPU +${fmtMs(over(checkHelp).cpu)})` },
  { what: "`import('kabi')`", kabi: cell(imp), reference: `node -e 0: ${cell(bare)}`, ratio: verdict(imp, GOALS.import) },
  { what: "`require('kabi')`", kabi: cell(req), reference: `node -e 0: ${cell(bare)}`, ratio: `+${fmtMs(over(req).wall)} over bare node (CPU +${fmtMs(over(req).cpu)})` },
];
console.log(table(rows));
console.log(
  'BENCH-JSON ' +
    JSON.stringify({
      node: bare,
      help,
      version,
      checkHelp,
      import: imp,
      require: req,
      helpOverNode: over(help),
      importOverNode: over(imp),
      goalsMs: GOALS,
      goalsMet: over(help).wall <= GOALS.help && over(imp).wall <= GOALS.import,
    }),
);
