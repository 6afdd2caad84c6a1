import { describe, expect, it } from 'vitest';
import { rpmvercmp, sortReleases } from '../../src/kernel/rpmvercmp.js';

// Expected values are RPM's own documented/tested results for rpmvercmp().
const cases: [string, string, -1 | 0 | 1][] = [
  ['1.0', '1.0', 0],
  ['1.0', '2.0', -1],
  ['2.0', '1.0', 1],
  ['2.0.1', '2.0.1', 0],
  ['2.0', '2.0.1', -1],
  ['2.0.1a', '2.0.1', 1],
  ['5.5p1', '5.5p2', -1],
  ['5.5p10', '5.5p1', 1],
  ['10xyz', '10.1xyz', -1],
  ['xyz10', 'xyz10.1', -1],
  ['xyz.4', '8', -1],
  ['1.0a', '1.0', 1],
  ['1.a', '1.1', -1],
  ['2.0', '2_0', 0],
  ['2_0', '2_0', 0],
  ['a', 'a', 0],
  ['a+', 'a+', 0],
  ['a+', 'a_', 0],
  ['+a', '+a', 0],
  ['010', '10', 0],
  ['1.0~rc1', '1.0', -1],
  ['1.0~rc1', '1.0~rc2', -1],
  ['1.0~rc1~git123', '1.0~rc1', -1],
  ['1.0^', '1.0', 1],
  ['1.0^git1', '1.0', 1],
  ['1.0^git1', '1.0^git2', -1],
  ['1.0^git1', '1.01', -1],
  ['1.0^20160101', '1.0.1', -1],
  ['1.0~rc1^git1', '1.0~rc1', 1],
];

describe('rpmvercmp', () => {
  for (const [a, b, want] of cases) {
    it(`${a} vs ${b} = ${want}`, () => {
      expect(rpmvercmp(a, b)).toBe(want);
      expect(rpmvercmp(b, a)).toBe(want === 0 ? 0 : -want);
    });
  }

  it('orders real kernel releases the way a packager expects', () => {
    const releases = [
      '6.12.107+deb12-amd64',
      '6.1.0-56-amd64',
      '6.1.0-47-amd64',
      '5.14.0-427.13.1.el9_4.x86_64',
      '5.14.0-362.8.1.el9_3.x86_64',
      '6.12.9+deb12-amd64',
      '6.1.0~rc3-amd64',
    ];
    expect(sortReleases(releases)).toEqual([
      '5.14.0-362.8.1.el9_3.x86_64',
      '5.14.0-427.13.1.el9_4.x86_64',
      '6.1.0~rc3-amd64',
      '6.1.0-47-amd64',
      '6.1.0-56-amd64',
      '6.12.9+deb12-amd64',
      '6.12.107+deb12-amd64',
    ]);
  });
});
