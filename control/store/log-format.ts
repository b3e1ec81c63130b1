// The revision log's line format: `<checksum> <json>\n`, checksum = first 16
// hex digits of SHA-256 over the JSON. A line whose checksum does not match
// was never acknowledged (torn by a crash mid-write) or is corrupt.

import { createHash } from 'node:crypto';
import { changeRef, type RevisionRecord } from './memory-store.ts';

interface LogLine {
  revision: number;
  time: string;
  actor: string;
  summary: string;
  changes: RevisionRecord['changes'];
}

function checksum(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}

export function encodeRecord(record: RevisionRecord): string {
  const line: LogLine = { revision: record.info.revision, time: record.info.time, actor: record.info.actor, summary: record.info.summary, changes: record.changes };
  const json = JSON.stringify(line);
  return `${checksum(json)} ${json}\n`;
}

/** Decodes one line (without its newline); undefined when torn or corrupt. */
export function decodeRecord(line: string): RevisionRecord | undefined {
  const space = line.indexOf(' ');
  if (space !== 16) return undefined;
  const json = line.slice(17);
  if (checksum(json) !== line.slice(0, 16)) return undefined;
  const parsed = JSON.parse(json) as LogLine;
  return {
    info: {
      revision: parsed.revision,
      time: parsed.time,
      actor: parsed.actor,
      summary: parsed.summary,
      changes: parsed.changes.map(changeRef),
    },
    changes: parsed.changes,
  };
}

function intact(line: string): boolean {
  try {
    return decodeRecord(line) !== undefined;
  } catch {
    return false;
  }
}

export interface SegmentRead {
  records: RevisionRecord[];
  /** Byte length of the intact prefix; shorter than the file when its tail was torn. */
  validBytes: number;
  /** Set when the tail was dropped: what was wrong with it. */
  tornTail?: string;
  /** The dropped tail's first line (1-based), with tornTail. */
  tornLine?: number;
}

/**
 * Reads a segment's records. Only the final line may be bad (a write the
 * crash interrupted, never acknowledged); a bad line followed by good ones is
 * corruption, and throws rather than silently losing acknowledged revisions.
 */
export function readSegment(bytes: Buffer, file: string): SegmentRead {
  const records: RevisionRecord[] = [];
  let offset = 0;
  let lineNo = 0;
  while (offset < bytes.length) {
    lineNo++;
    const newline = bytes.indexOf(0x0a, offset);
    const end = newline < 0 ? bytes.length : newline;
    const text = bytes.subarray(offset, end).toString('utf8');
    let record: RevisionRecord | undefined;
    try {
      record = newline < 0 ? undefined : decodeRecord(text);
    } catch {
      record = undefined;
    }
    if (!record) {
      // Torn means nothing acknowledged follows (a crash can leave partial
      // lines or zero-filled blocks at the end); an intact record after it means
      // acknowledged history is damaged, which must not be silently dropped.
      const rest = newline < 0 ? [] : bytes.subarray(newline + 1).toString('utf8').split('\n');
      if (rest.some((later) => intact(later))) {
        throw new Error(`store log ${file} is corrupt at line ${lineNo}: checksum mismatch before later intact records`);
      }
      return { records, validBytes: offset, tornTail: newline < 0 ? `incomplete line ${lineNo}` : `bad checksum on line ${lineNo}`, tornLine: lineNo };
    }
    records.push(record);
    offset = end + 1;
  }
  return { records, validBytes: offset };
}
