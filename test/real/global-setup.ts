// SPDX-License-Identifier: GPL-2.0-or-later
//
// Global setup of the vitest `real` project: make the Debian kernel corpus available.
//
// Runs corpus/debian/fetch.mjs (downloads, extracts and builds on the first run, seconds when
// everything is cached) with its progress shown, then provides the manifest's path to the tests
// as inject('kabiCorpusManifest') (see ./corpus.ts). If the corpus cannot be prepared, the whole
// project fails: no real test is skipped for want of data.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the corpus manifest.json written by corpus/debian/fetch.mjs. */
    kabiCorpusManifest: string;
  }
}

const FETCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'corpus', 'debian', 'fetch.mjs');

function runFetch(): Promise<string> {
  return new Promise((resolve, reject) => {
    // stderr (the progress) goes straight to the terminal; stdout is the manifest path.
    const child = spawn(process.execPath, [FETCH], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    child.on('error', (err) => reject(new Error(`cannot run ${FETCH}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out.trim().split('\n').pop() ?? '');
      else {
        reject(
          new Error(
            `node corpus/debian/fetch.mjs failed (${signal ?? `exit code ${code}`}); the real test project ` +
              'needs the Debian kernel corpus, see the messages above',
          ),
        );
      }
    });
  });
}

export default async function setup(project: TestProject): Promise<void> {
  const manifest = await runFetch();
  if (!path.isAbsolute(manifest) || !fs.existsSync(manifest)) {
    throw new Error(`corpus/debian/fetch.mjs succeeded but printed no usable manifest path (got "${manifest}")`);
  }
  project.provide('kabiCorpusManifest', manifest);
}
