// Chained page hashes of the prefix cache: 64-bit FNV-1a over the bytes of the token ids, with
// the parent page's hash (or, for the first page of a chain, the cache salt) hashed first and a
// basis derived from the model fingerprint, so pages of different models or salts never meet.
// FNV-1a is computed in two 32-bit halves (JS numbers are exact below 2^53).

/** 16 hex digits: a Map key. */
export type PageHash = string;

const OFFSET_HI = 0xcbf29ce4;
const OFFSET_LO = 0x84222325;
// The 64-bit FNV prime is 2^40 + 0x1b3.
const PRIME_LO = 0x1b3;

class Fnv64 {
  hi: number;
  lo: number;

  constructor(hi = OFFSET_HI, lo = OFFSET_LO) {
    this.hi = hi;
    this.lo = lo;
  }

  byte(b: number): void {
    const lo = (this.lo ^ (b & 0xff)) >>> 0;
    const product = lo * PRIME_LO; // < 2^41: exact
    const carry = Math.floor(product / 0x100000000);
    this.lo = product >>> 0;
    this.hi = (Math.imul(this.hi, PRIME_LO) + carry + (lo << 8)) >>> 0;
  }

  u32(x: number): void {
    this.byte(x);
    this.byte(x >>> 8);
    this.byte(x >>> 16);
    this.byte(x >>> 24);
  }

  text(s: string): void {
    for (const b of new TextEncoder().encode(s)) this.byte(b);
    this.u32(s.length); // ends the field, so ("ab", "c") and ("a", "bc") differ
  }

  digest(): PageHash {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

/** The 64-bit FNV-1a of some bytes as a PageHash (for tests against published vectors). */
export function fnv1a64(bytes: Iterable<number>): PageHash {
  const h = new Fnv64();
  for (const b of bytes) h.byte(b);
  return h.digest();
}

/** Hashes pages for one model: the fingerprint seeds every page's hash. */
export class PageHasher {
  private readonly basisHi: number;
  private readonly basisLo: number;

  constructor(readonly modelFingerprint: string) {
    const h = new Fnv64();
    h.text(modelFingerprint);
    this.basisHi = h.hi;
    this.basisLo = h.lo;
  }

  /**
   * The hash of a full page: `parent` is the previous page's hash, or null for the first page of
   * a chain, which mixes in `salt` instead.
   */
  hash(parent: PageHash | null, ids: ArrayLike<number>, salt: string): PageHash {
    const h = new Fnv64(this.basisHi, this.basisLo);
    if (parent === null) {
      h.byte(0);
      h.text(salt);
    } else {
      h.byte(1);
      h.u32(parseInt(parent.slice(0, 8), 16));
      h.u32(parseInt(parent.slice(8), 16));
    }
    for (let i = 0; i < ids.length; i++) h.u32(ids[i]);
    h.u32(ids.length);
    return h.digest();
  }
}
