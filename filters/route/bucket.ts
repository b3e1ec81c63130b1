// Sticky canary buckets: the same key always lands in the same bucket 0-99.
// FNV-1a spreads short keys poorly in its low bits, so its result goes
// through murmur3's finalizer before the modulo.

export function bucketOf(salt: string, key: string): i32 {
  let h: u32 = 0x811c9dc5;
  h = fnv(h, salt);
  h = (h ^ 58) * 0x01000193; // ':' separates salt and key
  h = fnv(h, key);
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return <i32>(h % 100);
}

function fnv(seed: u32, s: string): u32 {
  let h = seed;
  const bytes = String.UTF8.encode(s);
  const p = changetype<usize>(bytes);
  for (let i = 0; i < bytes.byteLength; i++) h = (h ^ <u32>load<u8>(p + i)) * 0x01000193;
  return h;
}

/** The value of cookie `name` in a Cookie header, or null. */
export function cookieValue(header: string, name: string): string | null {
  const parts = header.split(';');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i].trim();
    const eq = part.indexOf('=');
    if (eq > 0 && part.substring(0, eq) == name) return part.substring(eq + 1);
  }
  return null;
}
