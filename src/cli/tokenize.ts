// `wgserve tokenize`: one JSON string per stdin line in, one JSON array of ids per line out.
import { createInterface } from 'node:readline';
import { Metadata } from '../model/gguf.js';
import { openModelSource, Tokenizer } from '../model/index.js';
import { readGgufHeader } from '../model/loader.js';
import { DEFAULT_MODEL } from './session.js';

export async function tokenizeCommand(opts: { model?: string }): Promise<number> {
  // Only the header is needed: no GPU, no weights.
  const reader = await openModelSource(opts.model ?? DEFAULT_MODEL);
  const header = await readGgufHeader(reader).finally(() => reader.close());
  const tokenizer = Tokenizer.fromMetadata(new Metadata(header.metadata, reader.name));
  let lineNo = 0;
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    lineNo++;
    if (!line.trim()) continue;
    let text: unknown;
    try {
      text = JSON.parse(line);
    } catch {
      throw new Error(`line ${lineNo} is not JSON: ${line.slice(0, 60)}`);
    }
    if (typeof text !== 'string') throw new Error(`line ${lineNo} is not a JSON string`);
    process.stdout.write(JSON.stringify(tokenizer.encode(text, { addBos: false })) + '\n');
  }
  return 0;
}
