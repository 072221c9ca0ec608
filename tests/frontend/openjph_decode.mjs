// Decode HTJ2K codestreams with @cornerstonejs/codec-openjph (OpenJPH as WebAssembly), the decoder
// OHIF's viewer uses, called the way Cornerstone3D's dicom-image-loader calls it
// (shared/decoders/decodeHTJ2K.ts): one HTJ2KDecoder, getEncodedBuffer(n).set(codestream),
// decode(), getFrameInfo(), getDecodedBuffer() read as 8- or 16-bit samples.
//
//   node openjph_decode.mjs        (a long-lived process: tests/codec/openjph.py drives it)
//
// One process decodes many codestreams (starting the WebAssembly module costs more than a frame).
// Requests on stdin, answered in order as each arrives: [uint32 LE length][codestream].
// Answer on stdout: [uint32 LE length][JSON header][uint32 LE length][decoded bytes], the header
// {width, height, bitsPerSample, isSigned, componentCount, error}, the bytes the decoder's buffer
// (samples interleaved, 16-bit little endian above 8 bits). A codestream the decoder rejects gets
// {error: "..."} and no bytes. The process ends when stdin closes.
import { writeSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const openJphFactory = require("@cornerstonejs/codec-openjph");

// The module logs ("ojph info … HTJ2K Decoder") with print: stdout is kept for the answers.
const log = (text) => process.stderr.write(`${text}\n`);
const codec = await openJphFactory({ print: log, printErr: log });
const decoder = new codec.HTJ2KDecoder();

function send(header, pixels) {
  const json = Buffer.from(JSON.stringify(header));
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32LE(json.length, 0);
  lengths.writeUInt32LE(pixels.length, 4);
  // Synchronous writes, in order: the caller reads each answer before it sends the next request.
  for (const part of [lengths.subarray(0, 4), json, lengths.subarray(4), pixels]) {
    for (let done = 0; done < part.length; ) done += writeSync(1, part, done);
  }
}

function decode(codestream) {
  try {
    decoder.getEncodedBuffer(codestream.length).set(codestream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const decoded = decoder.getDecodedBuffer();
    const header = {
      width: info.width,
      height: info.height,
      bitsPerSample: info.bitsPerSample,
      isSigned: info.isSigned,
      componentCount: info.componentCount,
      error: null,
    };
    send(header, Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength));
  } catch (error) {
    // Emscripten throws a bare number for a C++ exception: the caller names the codestream.
    send({ error: `decoder threw ${String(error)}` }, Buffer.alloc(0));
  }
}

let pending = Buffer.alloc(0);
process.stdin.on("data", (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  while (pending.length >= 4) {
    const size = pending.readUInt32LE(0);
    if (pending.length < 4 + size) break;
    decode(pending.subarray(4, 4 + size));
    pending = pending.subarray(4 + size);
  }
});
