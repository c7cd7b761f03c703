/**
 * Reading back the index that `extract` writes (`row,source,frame,time_s`, see feature-writer.ts),
 * for merge: only that format, strictly, so that a part edited or cut short is found out.
 */
import { INDEX_HEADER } from './feature-writer';

/** One line of an index: the row, the source as written, the frame and time (empty for an image). */
export interface IndexRow {
  row: number;
  source: string;
  frame: string;
  time: string;
}

/** Parses an index; throws an Error naming the first line that is not as `extract` writes it. */
export function parseIndex(text: string): IndexRow[] {
  if (!text.startsWith(INDEX_HEADER)) throw new Error(`its first line is not ${INDEX_HEADER.trim()}`);
  const rows: IndexRow[] = [];
  let at = INDEX_HEADER.length;
  while (at < text.length) {
    const line = rows.length + 2;
    const bad = (what: string) => new Error(`line ${line}: ${what}`);
    const comma = text.indexOf(',', at);
    if (comma < 0) throw bad('no source');
    const row = text.slice(at, comma);
    if (row !== String(rows.length)) throw bad(`row ${JSON.stringify(row.slice(0, 20))} where ${rows.length} comes next`);
    at = comma + 1;
    let source: string;
    if (text[at] === '"') {
      // A quoted field, "" for a quote; it may hold commas and line breaks.
      let value = '';
      let i = at + 1;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote < 0) throw bad('a quoted source that never ends');
        value += text.slice(i, quote);
        if (text[quote + 1] === '"') {
          value += '"';
          i = quote + 2;
          continue;
        }
        at = quote + 1;
        break;
      }
      source = value;
    } else {
      const end = text.indexOf(',', at);
      if (end < 0) throw bad('no frame');
      source = text.slice(at, end);
      at = end;
    }
    const newline = text.indexOf('\n', at);
    if (text[at] !== ',' || newline < 0) throw bad('not row,source,frame,time_s');
    const fields = text.slice(at + 1, newline).split(',');
    if (fields.length !== 2) throw bad('not row,source,frame,time_s');
    const [frame, time] = fields;
    const image = frame === '' && time === '';
    const video = /^(0|[1-9]\d{0,11})$/.test(frame) && /^\d{1,12}\.\d{3}$/.test(time);
    if (!image && !video) throw bad(`frame ${JSON.stringify(frame.slice(0, 20))} and time ${JSON.stringify(time.slice(0, 20))}`);
    rows.push({ row: rows.length, source, frame, time });
    at = newline + 1;
  }
  return rows;
}
