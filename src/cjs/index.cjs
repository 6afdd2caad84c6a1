'use strict';
// `require('kabi')`: kabi is an ES module, and Node loads one with require() from 20.19 and
// 22.12 on (require(esm)), giving the same module instance `import` gives: one KabiError class,
// one module cache. Older Node cannot; say so instead of ERR_REQUIRE_ESM.
if (!process.features.require_module) {
  const err = new Error(
    `kabi is an ES module and this Node (${process.version}) cannot require() one: ` +
      "use `const kabi = await import('kabi')`, or Node >= 20.19 (or >= 22.12), where require('kabi') works.",
  );
  err.code = 'KABI_REQUIRE_ESM';
  throw err;
}
module.exports = require('./index.js');
