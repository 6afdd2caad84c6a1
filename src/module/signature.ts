import { KabiError } from '../errors.js';
import { DerReader, type Der } from './der.js';

/** What scripts/sign-file appends after the ELF image (include/uapi/linux/module_signature.h). */
export const SIGNATURE_MARKER = '~Module signature appended~\n';
const MARKER_BYTES = new TextEncoder().encode(SIGNATURE_MARKER);
const HEADER_SIZE = 12;
const PKEY_ID_PKCS7 = 2;

/** The signature appended to a module (scripts/sign-file), as far as kabi reads it. */
export interface ModuleSignature {
  /** struct module_signature fields. */
  readonly algo: number;
  readonly hash: number;
  readonly idType: number;
  readonly signerLength: number;
  readonly keyIdLength: number;
  readonly signatureLength: number;
  /** File offset of the signature blob (the ELF image ends here). */
  readonly offset: number;
  /**
   * Whether the header passes the kernel's mod_check_sig(): PKCS#7 id type with every other
   * field zero. A malformed trailer makes the loader refuse the module even when signatures
   * are not enforced.
   */
  readonly wellFormed: boolean;
  readonly problem: string | undefined;
  /** From the PKCS#7 SignerInfo, as modinfo shows them; absent when the blob cannot be parsed. */
  readonly signer: string | undefined;
  readonly keyId: string | undefined;
  readonly hashAlgorithm: string | undefined;
}

/** A module file split into its ELF image and its signature trailer. */
export interface SplitModule {
  /** The ELF image: everything before the signature. */
  readonly elf: Uint8Array;
  readonly signature: ModuleSignature | undefined;
}

/**
 * Separate the appended signature from the ELF image. The kernel validates section bounds
 * against the length after stripping the signature, so the ELF view must end there too.
 */
export function splitSignature(bytes: Uint8Array, file?: string): SplitModule {
  const n = bytes.length;
  if (n < MARKER_BYTES.length || !endsWith(bytes, MARKER_BYTES)) return { elf: bytes, signature: undefined };
  const headerAt = n - MARKER_BYTES.length - HEADER_SIZE;
  if (headerAt < 0) {
    throw new KabiError('SIGNATURE_FORMAT', 'signature marker present but the file is too short for a signature header', { file, offset: 0 });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const algo = bytes[headerAt]!;
  const hash = bytes[headerAt + 1]!;
  const idType = bytes[headerAt + 2]!;
  const signerLength = bytes[headerAt + 3]!;
  const keyIdLength = bytes[headerAt + 4]!;
  const signatureLength = view.getUint32(headerAt + 8, false);
  if (signatureLength > headerAt) {
    throw new KabiError(
      'SIGNATURE_FORMAT',
      `signature length ${signatureLength} is larger than the ${headerAt} bytes before the signature header`,
      { file, offset: headerAt + 8 },
    );
  }
  const offset = headerAt - signatureLength;
  let problem: string | undefined;
  if (idType !== PKEY_ID_PKCS7) problem = `signature type ${idType} is not PKCS#7 (${PKEY_ID_PKCS7})`;
  else if (algo || hash || signerLength || keyIdLength || bytes[headerAt + 5] || bytes[headerAt + 6] || bytes[headerAt + 7]) {
    problem = 'PKCS#7 signature header has non-zero algo/hash/signer/key-id fields';
  }
  let info: Pkcs7Info = {};
  if (idType === PKEY_ID_PKCS7 && signatureLength > 0) {
    try {
      info = parsePkcs7(bytes.subarray(offset, headerAt), file, offset);
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      problem ??= e.detail;
    }
  }
  return {
    elf: bytes.subarray(0, offset),
    signature: {
      algo,
      hash,
      idType,
      signerLength,
      keyIdLength,
      signatureLength,
      offset,
      wellFormed: problem === undefined,
      problem,
      signer: info.signer,
      keyId: info.keyId,
      hashAlgorithm: info.hashAlgorithm,
    },
  };
}

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  const off = bytes.length - tail.length;
  for (let i = 0; i < tail.length; i++) if (bytes[off + i] !== tail[i]) return false;
  return true;
}

interface Pkcs7Info {
  signer?: string;
  keyId?: string;
  hashAlgorithm?: string;
}

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_COMMON_NAME = '2.5.4.3';
const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.2.8': 'sha3-256',
  '2.16.840.1.101.3.4.2.9': 'sha3-384',
  '2.16.840.1.101.3.4.2.10': 'sha3-512',
  '1.2.156.10197.1.401': 'sm3',
};

const SEQ = 0x30;
const SET = 0x31;
const OID = 0x06;
const INT = 0x02;

/**
 * ContentInfo → SignedData → first SignerInfo: the issuer's CN (what modinfo calls the
 * signer), the serial number (sig_key) and the digest algorithm (sig_hashalgo).
 */
function parsePkcs7(blob: Uint8Array, file: string | undefined, base: number): Pkcs7Info {
  const r = new DerReader(blob, file, base);
  const ci = r.expect(r.read(0, blob.length), SEQ, 'ContentInfo SEQUENCE');
  const [type, explicit] = r.children(ci);
  if (r.oid(r.expect(type, OID, 'content type')) !== OID_SIGNED_DATA) throw new KabiError('SIGNATURE_FORMAT', 'PKCS#7 content is not SignedData', { file, offset: base });
  const sd = r.expect(r.children(r.expect(explicit, 0xa0, '[0] content'))[0], SEQ, 'SignedData');
  const fields = r.children(sd);
  const signerInfos = fields[fields.length - 1];
  const si = r.children(r.expect(signerInfos, SET, 'signerInfos SET'))[0];
  if (!si) return {};
  const [, sid, digestAlg] = r.children(r.expect(si, SEQ, 'SignerInfo'));
  const out: Pkcs7Info = {};
  const digest = r.children(r.expect(digestAlg, SEQ, 'digestAlgorithm'))[0];
  if (digest) {
    const oid = r.oid(r.expect(digest, OID, 'digest OID'));
    out.hashAlgorithm = HASHES[oid] ?? oid;
  }
  if (sid?.tag === SEQ) {
    const [issuer, serial] = r.children(sid);
    if (issuer) out.signer = commonName(r, issuer);
    // OpenSSL (and so modinfo) shows the serial as a minimal big number: no sign-padding zeros.
    if (serial?.tag === INT) out.keyId = hexColon(stripLeadingZeros(r.content(serial)));
  } else if (sid?.tag === 0x80) {
    out.keyId = hexColon(r.content(sid)); // subjectKeyIdentifier
  }
  return out;
}

function commonName(r: DerReader, name: Der): string | undefined {
  for (const rdn of r.children(r.expect(name, SEQ, 'issuer Name'))) {
    for (const atv of r.children(rdn)) {
      const [oid, value] = r.children(atv);
      if (oid?.tag === OID && value && r.oid(oid) === OID_COMMON_NAME) return r.text(value);
    }
  }
  return undefined;
}

function stripLeadingZeros(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

function hexColon(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(':');
}
